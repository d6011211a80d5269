//! What a dataset element can be, and how elements are batched, padded, unbatched and cached.
//!
//! Elements are engine tensors, tuples of elements, named structs ([`crate::Sample`],
//! [`crate::ImageSample`]) or plain Rust values. Each capability is a small trait, so a
//! transformation asks only for what it needs (`batch` needs [`Batchable`], `cache_to_file`
//! needs [`Cacheable`]).

use crate::{Error, Result};
use ferrovision_tensor::{DType, Tensor};

/// Anything that flows through a dataset. `nbytes` feeds the per-stage byte statistics.
pub trait DataElement: Send + 'static {
    /// Approximate payload size in bytes (0 when unknown).
    fn nbytes(&self) -> usize {
        0
    }
}

impl DataElement for Tensor {
    fn nbytes(&self) -> usize {
        self.numel() * self.dtype().size_of()
    }
}
impl DataElement for Vec<u8> {
    fn nbytes(&self) -> usize {
        self.len()
    }
}
impl DataElement for String {
    fn nbytes(&self) -> usize {
        self.len()
    }
}
impl DataElement for std::path::PathBuf {}
impl DataElement for crate::tfrecord::Example {}
macro_rules! plain_element {
    ($($t:ty),*) => {$(impl DataElement for $t { fn nbytes(&self) -> usize { std::mem::size_of::<$t>() } })*};
}
plain_element!(i64, i32, u64, u32, usize, f32, f64, u8, bool);
impl<T: DataElement> DataElement for Vec<T>
where
    Vec<T>: NotBytes,
{
    fn nbytes(&self) -> usize {
        self.iter().map(|x| x.nbytes()).sum()
    }
}
impl<T: DataElement> DataElement for Option<T> {
    fn nbytes(&self) -> usize {
        self.as_ref().map_or(0, |x| x.nbytes())
    }
}

/// Marker that keeps `Vec<u8>` (raw bytes) apart from `Vec<T>` of elements.
pub trait NotBytes {}
impl NotBytes for Vec<Tensor> {}
impl NotBytes for Vec<String> {}
impl NotBytes for Vec<i64> {}
impl NotBytes for Vec<f32> {}

macro_rules! tuple_element {
    ($($n:tt $t:ident),+) => {
        impl<$($t: DataElement),+> DataElement for ($($t,)+) {
            fn nbytes(&self) -> usize { 0 $(+ self.$n.nbytes())+ }
        }
    };
}
tuple_element!(0 A, 1 B);
tuple_element!(0 A, 1 B, 2 C);
tuple_element!(0 A, 1 B, 2 C, 3 D);

/// Elements that can be combined into one batched element (a new leading axis).
pub trait Batchable: Sized {
    /// Combines `items` (at least one) into one batched element.
    fn batch(items: Vec<Self>) -> Result<Self>;
}

/// Elements that can be batched with padding to the largest size along every axis.
pub trait PaddedBatchable: Sized {
    /// Pad value(s): `f64` for a tensor, a tuple of pads for a tuple.
    type Pad: Clone + Send + Sync + 'static;
    /// Pads every item to the common maximal shape with `pad` and stacks them.
    fn padded_batch(items: Vec<Self>, pad: &Self::Pad) -> Result<Self>;
}

/// Batched elements that can be split back into their items.
pub trait Unbatchable: Sized {
    /// Splits along the leading axis.
    fn unbatch(self) -> Result<Vec<Self>>;
}

impl Batchable for Tensor {
    fn batch(items: Vec<Self>) -> Result<Self> {
        let refs: Vec<&Tensor> = items.iter().collect();
        Ok(Tensor::stack(&refs, 0)?)
    }
}

impl Batchable for i64 {
    fn batch(_items: Vec<Self>) -> Result<Self> {
        Err(Error::invalid(
            "batch",
            "scalars cannot be batched into a scalar; map them to tensors first",
        ))
    }
}

fn pad_tensor_typed<T: ferrovision_tensor::Element>(
    items: &[Tensor],
    max: &[usize],
    pad: T,
) -> Result<Tensor> {
    let per: usize = max.iter().product();
    let mut out = vec![pad; per * items.len()];
    for (b, t) in items.iter().enumerate() {
        let data = t.contiguous()?.to_vec::<T>()?;
        let shape = t.shape();
        let base = b * per;
        if shape.is_empty() {
            out[base] = data[0];
            continue;
        }
        // Copy row by row (last axis contiguous) into the padded block.
        let last = shape[shape.len() - 1];
        let rows = data.len().checked_div(last).unwrap_or(0);
        let mut idx = vec![0usize; shape.len()];
        for r in 0..rows {
            // Multi-index of row r over the leading axes.
            let mut rem = r;
            for a in (0..shape.len() - 1).rev() {
                idx[a] = rem % shape[a];
                rem /= shape[a];
            }
            let mut off = 0;
            for a in 0..shape.len() - 1 {
                off = off * max[a] + idx[a];
            }
            off *= max[shape.len() - 1];
            out[base + off..base + off + last].copy_from_slice(&data[r * last..(r + 1) * last]);
        }
    }
    let mut shape = vec![items.len()];
    shape.extend_from_slice(max);
    Ok(Tensor::from_vec(out, &shape)?)
}

impl PaddedBatchable for Tensor {
    type Pad = f64;
    fn padded_batch(items: Vec<Self>, pad: &f64) -> Result<Self> {
        let rank = items[0].rank();
        let dtype = items[0].dtype();
        let mut max = vec![0usize; rank];
        for t in &items {
            if t.rank() != rank || t.dtype() != dtype {
                return Err(Error::invalid(
                    "padded_batch",
                    format!(
                        "items differ in rank or dtype: {:?} {:?} vs {:?} {:?}",
                        items[0].shape(),
                        dtype,
                        t.shape(),
                        t.dtype()
                    ),
                ));
            }
            for (m, &d) in max.iter_mut().zip(t.shape()) {
                *m = (*m).max(d);
            }
        }
        match dtype {
            DType::F32 => pad_tensor_typed(&items, &max, *pad as f32),
            DType::I64 => pad_tensor_typed(&items, &max, *pad as i64),
            DType::I32 => pad_tensor_typed(&items, &max, *pad as i32),
            DType::U8 => pad_tensor_typed(&items, &max, *pad as u8),
            DType::Bool => pad_tensor_typed(&items, &max, *pad != 0.0),
            other => Err(Error::invalid(
                "padded_batch",
                format!("dtype {other:?} is not supported; convert to f32 first"),
            )),
        }
    }
}

impl Unbatchable for Tensor {
    fn unbatch(self) -> Result<Vec<Self>> {
        if self.rank() == 0 {
            return Err(Error::invalid("unbatch", "cannot unbatch a scalar tensor"));
        }
        let n = self.shape()[0];
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let row = self.narrow(0, i, 1)?;
            let shape = self.shape()[1..].to_vec();
            out.push(row.contiguous()?.reshape(&shape)?);
        }
        Ok(out)
    }
}

macro_rules! tuple_batch {
    ($($n:tt $t:ident $v:ident),+) => {
        impl<$($t: Batchable),+> Batchable for ($($t,)+) {
            fn batch(items: Vec<Self>) -> Result<Self> {
                $(let mut $v = Vec::with_capacity(items.len());)+
                for it in items { $($v.push(it.$n);)+ }
                Ok(($($t::batch($v)?,)+))
            }
        }
        impl<$($t: PaddedBatchable),+> PaddedBatchable for ($($t,)+) {
            type Pad = ($($t::Pad,)+);
            fn padded_batch(items: Vec<Self>, pad: &Self::Pad) -> Result<Self> {
                $(let mut $v = Vec::with_capacity(items.len());)+
                for it in items { $($v.push(it.$n);)+ }
                Ok(($($t::padded_batch($v, &pad.$n)?,)+))
            }
        }
        impl<$($t: Unbatchable),+> Unbatchable for ($($t,)+) {
            fn unbatch(self) -> Result<Vec<Self>> {
                $(let $v = self.$n.unbatch()?;)+
                let n = [$($v.len()),+];
                if n.iter().any(|&k| k != n[0]) {
                    return Err(Error::invalid("unbatch", format!("components have different batch sizes {n:?}")));
                }
                #[allow(unused_mut)]
                let mut iters = ($($v.into_iter(),)+);
                Ok((0..n[0]).map(|_| ($(iters.$n.next().unwrap(),)+)).collect())
            }
        }
    };
}
tuple_batch!(0 A a, 1 B b);
tuple_batch!(0 A a, 1 B b, 2 C c);
tuple_batch!(0 A a, 1 B b, 2 C c, 3 D d);

/// Elements that can be written to and read from a cache file.
pub trait Cacheable: Sized {
    /// Serialises the element.
    fn encode(&self, out: &mut Vec<u8>) -> Result<()>;
    /// Parses an element written by `encode`.
    fn decode(buf: &[u8]) -> Result<Self>;
}

fn dtype_code(d: DType) -> u8 {
    match d {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::BF16 => 2,
        DType::I64 => 3,
        DType::I32 => 4,
        DType::U8 => 5,
        DType::Bool => 6,
    }
}

impl Cacheable for Tensor {
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.push(dtype_code(self.dtype()));
        out.push(self.rank() as u8);
        for &d in self.shape() {
            out.extend_from_slice(&(d as u64).to_le_bytes());
        }
        let t = self.contiguous()?;
        match self.dtype() {
            DType::F32 => t
                .to_vec::<f32>()?
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            DType::I64 => t
                .to_vec::<i64>()?
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            DType::I32 => t
                .to_vec::<i32>()?
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            DType::U8 => out.extend_from_slice(&t.to_vec::<u8>()?),
            DType::Bool => t.to_vec::<bool>()?.iter().for_each(|&x| out.push(x as u8)),
            other => {
                return Err(Error::invalid(
                    "cache",
                    format!("dtype {other:?} cannot be cached"),
                ))
            }
        }
        Ok(())
    }

    fn decode(buf: &[u8]) -> Result<Self> {
        let bad = || Error::Proto("cached tensor: truncated or malformed".into());
        if buf.len() < 2 {
            return Err(bad());
        }
        let rank = buf[1] as usize;
        let mut p = 2;
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            let b = buf.get(p..p + 8).ok_or_else(bad)?;
            shape.push(u64::from_le_bytes(b.try_into().unwrap()) as usize);
            p += 8;
        }
        let n: usize = shape.iter().product();
        let body = &buf[p..];
        let t = match buf[0] {
            0 if body.len() == n * 4 => Tensor::from_vec(
                body.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                &shape,
            )?,
            3 if body.len() == n * 8 => Tensor::from_vec(
                body.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                &shape,
            )?,
            4 if body.len() == n * 4 => Tensor::from_vec(
                body.chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                &shape,
            )?,
            5 if body.len() == n => Tensor::from_vec(body.to_vec(), &shape)?,
            6 if body.len() == n => {
                Tensor::from_vec(body.iter().map(|&b| b != 0).collect(), &shape)?
            }
            _ => return Err(bad()),
        };
        Ok(t)
    }
}

impl Cacheable for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(self);
        Ok(())
    }
    fn decode(buf: &[u8]) -> Result<Self> {
        Ok(buf.to_vec())
    }
}

/// Length-prefixed helper for composite cache records.
pub(crate) fn put_chunk(
    out: &mut Vec<u8>,
    f: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    let at = out.len();
    out.extend_from_slice(&[0u8; 8]);
    f(out)?;
    let len = (out.len() - at - 8) as u64;
    out[at..at + 8].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Reads one length-prefixed chunk, advancing `buf`.
pub(crate) fn take_chunk<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8]> {
    let bad = || Error::Proto("cache record: truncated chunk".into());
    let len = u64::from_le_bytes(buf.get(..8).ok_or_else(bad)?.try_into().unwrap()) as usize;
    let body = buf.get(8..8 + len).ok_or_else(bad)?;
    *buf = &buf[8 + len..];
    Ok(body)
}

macro_rules! tuple_cache {
    ($($n:tt $t:ident),+) => {
        impl<$($t: Cacheable),+> Cacheable for ($($t,)+) {
            fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
                $(put_chunk(out, |o| self.$n.encode(o))?;)+
                Ok(())
            }
            fn decode(mut buf: &[u8]) -> Result<Self> {
                Ok(($($t::decode(take_chunk(&mut buf)?)?,)+))
            }
        }
    };
}
tuple_cache!(0 A, 1 B);
tuple_cache!(0 A, 1 B, 2 C);
