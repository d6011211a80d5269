//! The [`Tensor`] type: a cheap-to-clone handle to shared storage plus a strided layout and,
//! when gradients are recorded, its place in the autodiff graph (an `AutogradMeta` that only
//! `autograd` reads or writes; this module records no ops).

use crate::autograd::AutogradMeta;
use crate::shape::{numel, Layout};
use crate::storage::{pool, Buffer, Storage};
use crate::{DType, Device, Element, Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Inner {
    pub(crate) id: u64,
    pub(crate) storage: Arc<Storage>,
    pub(crate) layout: Layout,
    pub(crate) dtype: DType,
    pub(crate) autograd: Option<AutogradMeta>,
}

/// An n-dimensional array on a device, with optional gradient tracking.
///
/// Cloning is cheap (reference counted). Views (`reshape`, `permute`, `narrow`, `expand`, ...)
/// share memory with their source. Logical layout of images is NCHW.
///
/// ```
/// use ferrovision_tensor::Tensor;
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
/// assert_eq!(x.shape(), &[2, 2]);
/// assert_eq!(x.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
/// ```
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

impl Tensor {
    pub(crate) fn from_parts(
        storage: Arc<Storage>,
        layout: Layout,
        dtype: DType,
        autograd: Option<AutogradMeta>,
    ) -> Tensor {
        Tensor(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            storage,
            layout,
            dtype,
            autograd,
        }))
    }

    pub(crate) fn from_buffer(buffer: Buffer, shape: &[usize]) -> Tensor {
        let dtype = buffer.dtype();
        // Every kernel trusts numel(shape) == buffer length: enforce it in release too.
        assert_eq!(
            crate::shape::checked_numel(shape),
            Some(buffer.len()),
            "tensor buffer does not match shape {shape:?}"
        );
        Tensor::from_parts(
            Arc::new(Storage::new(buffer)),
            Layout::contiguous(shape),
            dtype,
            None,
        )
    }

    /// Wraps an f32 vector whose length the caller guarantees equals `numel(shape)`.
    pub(crate) fn from_f32(data: Vec<f32>, shape: &[usize]) -> Tensor {
        Tensor::from_buffer(Buffer::F32(data), shape)
    }

    /// A tensor of `shape` from a vector in row-major order.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        let Some(expected) = crate::shape::checked_numel(shape) else {
            return Err(Error::invalid(
                "from_vec",
                format!("the element count of shape {shape:?} overflows usize"),
            ));
        };
        if data.len() != expected {
            return Err(Error::DataLength {
                op: "from_vec",
                len: data.len(),
                shape: shape.to_vec(),
                expected,
            });
        }
        Ok(Tensor::from_buffer(T::into_buffer(data), shape))
    }

    /// A tensor of `shape` copied from a slice in row-major order.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape)
    }

    /// A 0-d (scalar) f32 tensor.
    pub fn scalar(v: f32) -> Tensor {
        Tensor::from_f32(vec![v], &[])
    }

    /// A tensor filled with `value`, of dtype `T`.
    ///
    /// # Panics
    /// If the element count of `shape` overflows `usize` or the allocation fails (as do
    /// `zeros`, `ones` and `zeros_dtype`).
    pub fn full<T: Element>(shape: &[usize], value: T) -> Tensor {
        if T::DTYPE == DType::F32 {
            let mut v = pool::take_uninit(numel(shape));
            v.fill(value.to_f64() as f32);
            return Tensor::from_f32(v, shape);
        }
        Tensor::from_buffer(T::into_buffer(vec![value; numel(shape)]), shape)
    }

    /// Zeros of dtype f32.
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::from_f32(pool::take_zeroed(numel(shape)), shape)
    }

    /// Ones of dtype f32.
    pub fn ones(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 1.0f32)
    }

    /// Zeros with the shape of `self` (f32).
    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.shape())
    }

    /// Ones with the shape of `self` (f32).
    pub fn ones_like(&self) -> Tensor {
        Tensor::ones(self.shape())
    }

    /// Zeros of a given dtype.
    pub fn zeros_dtype(shape: &[usize], dtype: DType) -> Tensor {
        let n = numel(shape);
        let buf = match dtype {
            DType::F32 => Buffer::F32(pool::take_zeroed(n)),
            DType::F16 => Buffer::F16(vec![half::f16::ZERO; n]),
            DType::BF16 => Buffer::BF16(vec![half::bf16::ZERO; n]),
            DType::I64 => Buffer::I64(vec![0; n]),
            DType::I32 => Buffer::I32(vec![0; n]),
            DType::U8 => Buffer::U8(vec![0; n]),
            DType::Bool => Buffer::Bool(vec![false; n]),
        };
        Tensor::from_buffer(buf, shape)
    }

    // ----- accessors -----

    /// Dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.0.layout.shape
    }

    /// Alias of [`Tensor::shape`].
    pub fn dims(&self) -> &[usize] {
        self.shape()
    }

    /// Size of one dimension (negative counts from the end).
    pub fn dim(&self, axis: isize) -> Result<usize> {
        let a = crate::shape::normalize_axis("dim", axis, self.rank())?;
        Ok(self.shape()[a])
    }

    /// Strides in elements.
    pub fn strides(&self) -> &[usize] {
        &self.0.layout.strides
    }

    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }

    pub fn rank(&self) -> usize {
        self.0.layout.rank()
    }

    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }

    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    pub fn device(&self) -> Device {
        self.0.storage.device()
    }

    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }

    /// A process-unique id of this tensor handle (views get new ids).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// True when both handles view the same storage.
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    pub(crate) fn storage(&self) -> &Arc<Storage> {
        &self.0.storage
    }

    // ----- data access -----

    /// Runs `f` on this tensor's f32 values in row-major order, borrowing the storage when the
    /// tensor is contiguous and copying otherwise (the engine's raw access; other crates use ops,
    /// e.g. `sum_squares_f64`, `update_with_grad_`).
    pub(crate) fn with_f32<R>(&self, op: &'static str, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
        if self.dtype() != DType::F32 {
            return Err(Error::dtype(op, self.dtype(), "f32"));
        }
        self.check_cpu(op)?;
        let guard = self.0.storage.read();
        let Buffer::F32(data) = &*guard else {
            return Err(Error::dtype(op, self.dtype(), "f32"));
        };
        let l = &self.0.layout;
        if l.is_contiguous() {
            Ok(f(&data[l.offset..l.offset + l.numel()]))
        } else {
            let mut v = pool::take_uninit(l.numel());
            for (dst, o) in v.iter_mut().zip(l.offsets()) {
                *dst = data[o];
            }
            let r = f(&v);
            pool::give_back(v);
            Ok(r)
        }
    }

    /// Mutable access to the f32 values of a contiguous tensor, in place. Every tensor sharing
    /// the storage sees the change (the engine's raw access; other crates use
    /// `assign_from_slice_` / `update_with_grad_`).
    pub(crate) fn with_f32_mut<R>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut [f32]) -> R,
    ) -> Result<R> {
        if self.dtype() != DType::F32 {
            return Err(Error::dtype(op, self.dtype(), "f32"));
        }
        self.check_cpu(op)?;
        if !self.is_contiguous() {
            return Err(Error::invalid(
                op,
                "in-place update needs a contiguous tensor",
            ));
        }
        let mut guard = self.0.storage.write();
        let Buffer::F32(data) = &mut *guard else {
            return Err(Error::dtype(op, self.dtype(), "f32"));
        };
        let l = &self.0.layout;
        Ok(f(&mut data[l.offset..l.offset + l.numel()]))
    }

    /// True when no other tensor handle or view shares this tensor's storage, so writing into
    /// it in place changes no value anyone else can read (an op's fresh output).
    pub(crate) fn is_sole_owner(&self) -> bool {
        Arc::strong_count(&self.0) == 1 && Arc::strong_count(&self.0.storage) == 1
    }

    pub(crate) fn check_cpu(&self, op: &'static str) -> Result<()> {
        match self.device() {
            Device::Cpu => Ok(()),
            d => Err(Error::DeviceMismatch {
                op,
                lhs: d,
                rhs: Device::Cpu,
            }),
        }
    }

    /// The values in row-major order as a `Vec<T>`; `T` must match the dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if self.dtype() != T::DTYPE {
            return Err(Error::dtype(
                "to_vec",
                self.dtype(),
                format!("{:?}", T::DTYPE),
            ));
        }
        self.check_cpu("to_vec")?;
        let guard = self.0.storage.read();
        let slice = T::slice_of(&guard).ok_or_else(|| Error::dtype("to_vec", self.dtype(), "?"))?;
        let l = &self.0.layout;
        if l.is_contiguous() {
            Ok(slice[l.offset..l.offset + l.numel()].to_vec())
        } else {
            Ok(l.offsets().map(|o| slice[o]).collect())
        }
    }

    /// The values converted to f64 in row-major order, whatever the dtype.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        self.check_cpu("to_f64_vec")?;
        let guard = self.0.storage.read();
        let l = &self.0.layout;
        fn collect<T: Element>(s: &[T], l: &Layout) -> Vec<f64> {
            l.offsets().map(|o| s[o].to_f64()).collect()
        }
        Ok(match &*guard {
            Buffer::F32(s) => collect(s, l),
            Buffer::F16(s) => collect(s, l),
            Buffer::BF16(s) => collect(s, l),
            Buffer::I64(s) => collect(s, l),
            Buffer::I32(s) => collect(s, l),
            Buffer::U8(s) => collect(s, l),
            Buffer::Bool(s) => collect(s, l),
        })
    }

    /// The single value of a one-element tensor, as f64.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::bad_shape(
                "item",
                self.shape(),
                "exactly one element",
            ));
        }
        Ok(self.to_f64_vec()?[0])
    }

    /// A fresh contiguous copy of the data, without autodiff.
    pub(crate) fn copy_data(&self) -> Result<Tensor> {
        self.check_cpu("contiguous")?;
        let guard = self.0.storage.read();
        let l = &self.0.layout;
        fn gather<T: Element>(s: &[T], l: &Layout) -> Vec<T> {
            if l.is_contiguous() {
                s[l.offset..l.offset + l.numel()].to_vec()
            } else {
                l.offsets().map(|o| s[o]).collect()
            }
        }
        let buf = match &*guard {
            Buffer::F32(s) => {
                let mut v = pool::take_uninit(l.numel());
                if l.is_contiguous() {
                    v.copy_from_slice(&s[l.offset..l.offset + l.numel()]);
                } else {
                    for (d, o) in v.iter_mut().zip(l.offsets()) {
                        *d = s[o];
                    }
                }
                Buffer::F32(v)
            }
            Buffer::F16(s) => Buffer::F16(gather(s, l)),
            Buffer::BF16(s) => Buffer::BF16(gather(s, l)),
            Buffer::I64(s) => Buffer::I64(gather(s, l)),
            Buffer::I32(s) => Buffer::I32(gather(s, l)),
            Buffer::U8(s) => Buffer::U8(gather(s, l)),
            Buffer::Bool(s) => Buffer::Bool(gather(s, l)),
        };
        Ok(Tensor::from_buffer(buf, &l.shape))
    }

    /// A new handle on the same data with a different layout (a view); no autodiff.
    pub(crate) fn view_with_layout(&self, layout: Layout) -> Tensor {
        Tensor::from_parts(self.0.storage.clone(), layout, self.dtype(), None)
    }

    /// Errors unless the dtype is f32 (the compute type of float ops).
    pub(crate) fn expect_f32(&self, op: &'static str) -> Result<()> {
        if self.dtype() != DType::F32 {
            return Err(Error::dtype(
                op,
                self.dtype(),
                "f32 (convert with to_dtype)",
            ));
        }
        self.check_cpu(op)
    }
}

/// Moves typed vectors in and out of [`Buffer`]s.
pub trait BufferElement: Sized {
    fn into_buffer(v: Vec<Self>) -> Buffer;
    fn slice_of(b: &Buffer) -> Option<&[Self]>;
}

macro_rules! buffer_element {
    ($t:ty, $variant:ident) => {
        impl BufferElement for $t {
            fn into_buffer(v: Vec<Self>) -> Buffer {
                Buffer::$variant(v)
            }
            fn slice_of(b: &Buffer) -> Option<&[Self]> {
                match b {
                    Buffer::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
buffer_element!(f32, F32);
buffer_element!(half::f16, F16);
buffer_element!(half::bf16, BF16);
buffer_element!(i64, I64);
buffer_element!(i32, I32);
buffer_element!(u8, U8);
buffer_element!(bool, Bool);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor(shape={:?}, dtype={:?}, device={:?}{})\n{}",
            self.shape(),
            self.dtype(),
            self.device(),
            if self.requires_grad() {
                ", requires_grad"
            } else {
                ""
            },
            self
        )
    }
}

impl std::fmt::Display for Tensor {
    /// Nested brackets like NumPy, eliding the middle of long dimensions.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Ok(vals) = self.to_f64_vec() else {
            return write!(f, "<tensor on {:?}>", self.device());
        };
        let is_float = self.dtype().is_float();
        let fmt_val = |v: f64| -> String {
            if self.dtype() == DType::Bool {
                (v != 0.0).to_string()
            } else if is_float {
                format!("{v:.4}")
            } else {
                format!("{v}")
            }
        };
        fn rec(
            f: &mut std::fmt::Formatter<'_>,
            vals: &[f64],
            shape: &[usize],
            depth: usize,
            fmt_val: &dyn Fn(f64) -> String,
        ) -> std::fmt::Result {
            if shape.is_empty() {
                return write!(f, "{}", fmt_val(vals[0]));
            }
            const EDGE: usize = 3;
            let n = shape[0];
            let inner: usize = shape[1..].iter().product();
            write!(f, "[")?;
            let mut i = 0;
            while i < n {
                if n > 2 * EDGE + 1 && i == EDGE {
                    write!(f, "...")?;
                    i = n - EDGE;
                    if shape.len() > 1 {
                        write!(f, ",\n{}", " ".repeat(depth + 1))?;
                    } else {
                        write!(f, ", ")?;
                    }
                    continue;
                }
                rec(
                    f,
                    &vals[i * inner..(i + 1) * inner],
                    &shape[1..],
                    depth + 1,
                    fmt_val,
                )?;
                if i + 1 < n {
                    if shape.len() > 1 {
                        write!(f, ",\n{}", " ".repeat(depth + 1))?;
                    } else {
                        write!(f, ", ")?;
                    }
                }
                i += 1;
            }
            write!(f, "]")
        }
        if vals.is_empty() {
            return write!(f, "[] (shape {:?})", self.shape());
        }
        rec(f, &vals, self.shape(), 0, &fmt_val)
    }
}
