//! Element types. `F32` is the compute type; `F16`/`BF16` are storage types converted with the
//! `half` crate; integers and `Bool` hold indices, labels and masks.

use half::{bf16, f16};

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    I64,
    I32,
    U8,
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size_of(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::I64 => 8,
            DType::U8 | DType::Bool => 1,
        }
    }

    /// True for `F32`, `F16` and `BF16`.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }

    /// True for `I64`, `I32` and `U8`.
    pub fn is_int(self) -> bool {
        matches!(self, DType::I64 | DType::I32 | DType::U8)
    }
}

/// A Rust scalar type that can be stored in a tensor.
pub trait Element:
    crate::tensor::BufferElement + Copy + Send + Sync + PartialEq + std::fmt::Debug + 'static
{
    /// The tensor dtype of this Rust type.
    const DTYPE: DType;
    /// Converts to f64 (used for printing and casting).
    fn to_f64(self) -> f64;
    /// Converts from f64 (saturating/truncating like `as`).
    fn from_f64(v: f64) -> Self;
}

macro_rules! impl_element {
    ($t:ty, $d:expr, $to:expr, $from:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            #[inline]
            fn to_f64(self) -> f64 {
                $to(self)
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                $from(v)
            }
        }
    };
}

impl_element!(f32, DType::F32, |x: f32| x as f64, |v: f64| v as f32);
impl_element!(f16, DType::F16, |x: f16| x.to_f64(), f16::from_f64);
impl_element!(bf16, DType::BF16, |x: bf16| x.to_f64(), bf16::from_f64);
impl_element!(i64, DType::I64, |x: i64| x as f64, |v: f64| v as i64);
impl_element!(i32, DType::I32, |x: i32| x as f64, |v: f64| v as i32);
impl_element!(u8, DType::U8, |x: u8| x as f64, |v: f64| v as u8);
impl_element!(
    bool,
    DType::Bool,
    |x: bool| if x { 1.0 } else { 0.0 },
    |v: f64| v != 0.0
);
