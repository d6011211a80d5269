//! Shapes, strides and broadcasting rules (NumPy semantics).

use crate::{Error, Result};

/// Row-major (C order) strides of a shape, in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i];
    }
    strides
}

/// Number of elements of a shape (1 for a scalar).
///
/// # Panics
/// If the count overflows `usize` (use [`checked_numel`] for untrusted shapes).
pub fn numel(shape: &[usize]) -> usize {
    checked_numel(shape).expect("the element count of a shape overflows usize")
}

/// Number of elements of a shape, or `None` when it overflows `usize`.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Resolves a possibly negative axis against a rank.
pub fn normalize_axis(op: &'static str, axis: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(Error::AxisOutOfRange { op, axis, rank });
    }
    Ok(a as usize)
}

/// Resolves a list of axes (negative allowed, duplicates rejected), sorted ascending.
pub fn normalize_axes(op: &'static str, axes: &[isize], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = normalize_axis(op, a, rank)?;
        if out.contains(&n) {
            return Err(Error::invalid(
                op,
                format!("axis {a} is repeated in {axes:?}"),
            ));
        }
        out.push(n);
    }
    out.sort_unstable();
    Ok(out)
}

/// The broadcast shape of two shapes, or a `ShapeMismatch` naming `op`.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(Error::ShapeMismatch {
                op,
                lhs: a.to_vec(),
                rhs: b.to_vec(),
                detail: format!("dimension {i} differs ({da} vs {db}) and neither is 1"),
            });
        };
    }
    Ok(out)
}

/// How a tensor's elements sit in its storage: shape, strides (elements) and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
}

impl Layout {
    /// A contiguous row-major layout at offset 0.
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// True when the elements are dense and in row-major order (size-1 dims ignored).
    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1;
        for i in (0..self.shape.len()).rev() {
            if self.shape[i] != 1 {
                if self.strides[i] != acc {
                    return false;
                }
                acc *= self.shape[i];
            }
        }
        true
    }

    /// Strides to read this layout as if it had `target` shape (broadcast view; stride 0 on
    /// expanded dimensions). The caller has checked that the shapes broadcast.
    pub fn broadcast_strides(&self, target: &[usize]) -> Vec<usize> {
        let rank = target.len();
        let mut out = vec![0; rank];
        let off = rank - self.shape.len();
        for i in 0..self.shape.len() {
            out[i + off] = if self.shape[i] == 1 && target[i + off] != 1 {
                0
            } else {
                self.strides[i]
            };
        }
        out
    }

    /// Storage offsets of every element in row-major order of the logical shape.
    pub fn offsets(&self) -> StridedIter {
        StridedIter::new(&self.shape, &self.strides, self.offset)
    }
}

/// Iterates storage offsets of a strided view in row-major logical order.
pub struct StridedIter {
    shape: Vec<usize>,
    strides: Vec<usize>,
    index: Vec<usize>,
    next: usize,
    remaining: usize,
}

impl StridedIter {
    pub fn new(shape: &[usize], strides: &[usize], offset: usize) -> Self {
        StridedIter {
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            index: vec![0; shape.len()],
            next: offset,
            remaining: numel(shape),
        }
    }
}

impl Iterator for StridedIter {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let cur = self.next;
        // Advance the multi-index like an odometer.
        for d in (0..self.shape.len()).rev() {
            self.index[d] += 1;
            if self.index[d] < self.shape[d] {
                self.next += self.strides[d];
                break;
            }
            self.next -= self.strides[d] * (self.shape[d] - 1);
            self.index[d] = 0;
        }
        Some(cur)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for StridedIter {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_rules() {
        assert_eq!(
            broadcast_shapes("t", &[2, 1, 3], &[4, 1]).unwrap(),
            vec![2, 4, 3]
        );
        assert_eq!(broadcast_shapes("t", &[], &[4]).unwrap(), vec![4]);
        assert!(broadcast_shapes("t", &[2, 3], &[3, 2]).is_err());
    }

    #[test]
    fn strided_iter_transposed() {
        // 2x3 matrix viewed transposed (3x2).
        let offs: Vec<usize> = StridedIter::new(&[3, 2], &[1, 3], 0).collect();
        assert_eq!(offs, vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn axes() {
        assert_eq!(normalize_axis("t", -1, 3).unwrap(), 2);
        assert!(normalize_axis("t", 3, 3).is_err());
        assert!(normalize_axis("t", -4, 3).is_err());
        assert_eq!(normalize_axes("t", &[-1, 0], 3).unwrap(), vec![0, 2]);
    }
}
