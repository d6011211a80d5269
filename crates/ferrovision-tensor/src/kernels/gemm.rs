//! Single-precision GEMM (placeholder: naive loops, replaced by the packed kernel).

/// What is added and applied to each output element after the product.
#[derive(Debug, Clone, Copy, Default)]
pub enum Bias<'a> {
    #[default]
    None,
    /// One value per output row (length m).
    PerRow(&'a [f32]),
    /// One value per output column (length n).
    PerCol(&'a [f32]),
}

/// Activation fused into the GEMM epilogue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Activation {
    #[default]
    None,
    Relu,
}

/// Epilogue of a GEMM: `C = act(A·B (+ C if accumulate) + bias)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub bias: Bias<'a>,
    pub act: Activation,
}

/// `C[m×n] (+)= A[m×k] · B[k×n]` then bias and activation.
///
/// `A` element (i, p) is at `a[i*rsa + p*csa]`, `B` element (p, j) at `b[p*rsb + j*csb]`
/// (any strides, so transposes are free), `C` element (i, j) at `c[i*ldc + j]`.
/// With `accumulate` the product is added to C's current values, otherwise C is overwritten.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    epilogue: Epilogue<'_>,
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                acc += a[i * rsa + p * csa] * b[p * rsb + j * csb];
            }
            let dst = &mut c[i * ldc + j];
            let mut v = if accumulate { *dst + acc } else { acc };
            match epilogue.bias {
                Bias::None => {}
                Bias::PerRow(bias) => v += bias[i],
                Bias::PerCol(bias) => v += bias[j],
            }
            if epilogue.act == Activation::Relu {
                v = v.max(0.0);
            }
            *dst = v;
        }
    }
}
