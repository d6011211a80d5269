//! Elementwise and reduction kernels: branch-free fast-math functions (exp, log, tanh, sigmoid,
//! erf, GELU, ...) and the ISA-dispatched loops that apply them to slices.
//!
//! # Design
//!
//! The math functions are written with plain `f32` arithmetic, bit casts and selects only (no
//! branches, no libm calls), so that a loop over a slice auto-vectorises. [`map1`], [`map2`],
//! [`map3`], [`reduce`], ... compile that loop three times: inside an AVX-512 and an AVX2
//! `#[target_feature]` wrapper, and as portable Rust, and pick one at run time from
//! [`crate::kernels::isa`]. Polynomials are evaluated with separate multiplies and adds (Rust never
//! contracts them into FMAs), so all three paths return bit-identical results; the tests check this.
//!
//! # Accuracy (measured against f64 references by the tests in `tests/fast_math.rs`)
//!
//! | function | method | max error found by the tests |
//! |---|---|---|
//! | [`exp`] | Cody–Waite reduction by `ln 2`, degree-6 polynomial, two-step `2^n` scaling | 1 ulp (0.99); exact 0 / inf / NaN, correctly scaled subnormal results |
//! | [`expm1`] | `(2^n − 1) + 2^n·(e^r − 1)` with the reduction of `exp` | 2 ulp (1.73) |
//! | [`log`] | mantissa in `[√½, √2)`, `2·atanh(s)` series with fitted tail | 2 ulp (1.93); subnormal inputs, `log(±0) = -inf`, `log(<0) = NaN` |
//! | [`log1p`] | `log(u)·x/(u−1)` with `u = 1+x` | 2.5 ulp (2.24) |
//! | [`tanh`] | odd polynomial for `|x| < 0.625`, `1 − 2/(e^{2|x|}+1)` above | 1.5 ulp (1.28) |
//! | [`sigmoid`] | `1/(1+e^{−|x|})`, numerator `e^{−|x|}` for `x < 0` | 2.5 ulp (2.02), also for subnormal results |
//! | [`erf`] | odd polynomial for `|x| < 1`, `1 − erfc` above | 2.5 ulp (2.30) |
//! | [`erfc`] | `e^{−x²}·R(1/(1+x/2))` for `|x| ≥ 0.5`, `x²` split exactly (hi + lo) | 5 ulp (4.44, ≈5e-7 relative) |
//! | [`gelu`] | `x·Φ(x)`, Φ from erf / erfc (no cancellation in the negative tail) | 6 ulp (5.75, ≈7e-7 relative) for `x ≥ -10` |
//! | [`gelu_tanh`] | `x·σ(2u)` (equal to `0.5x(1+tanh u)`, without its cancellation) | 32 ulp (22.5, ≈3e-6 relative) for `x ≥ -4`, ≈2e-5 relative below (values < 1e-4): the f32 rounding of `u ∝ x³` itself, inherent to the formula |
//!
//! The polynomial coefficients were fitted (Chebyshev interpolation in 40-digit arithmetic) for
//! this file.

// ----- fast-math scalar functions (inline, branch-free) -----

/// Horner evaluation, highest degree first.
#[inline(always)]
fn poly<const N: usize>(c: &[f32; N], x: f32) -> f32 {
    let mut acc = c[0];
    let mut i = 1;
    while i < N {
        acc = acc * x + c[i];
        i += 1;
    }
    acc
}

/// `ln 2` rounded to 9 significant bits (0.693359375), so that `n·LN2_HI` is exact.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -0.000_212_194_44;
/// `(e^r - 1 - r) / r²` on `|r| <= ln2/2`.
const EXP_Q: [f32; 5] = [
    0.001_392_617_6,
    0.008_363_173,
    0.041_666_556,
    0.166_665_78,
    0.5,
];
/// `(log((1+s)/(1-s)) - 2s) / s³` as a polynomial in `s²`, `|s| <= (√2-1)/(√2+1)`.
const LOG_P: [f32; 3] = [0.295_799_5, 0.399_887_8, 0.666_666_87];
/// `(tanh(x) - x) / x³` as a polynomial in `x²`, `|x| < 0.625`.
const TANH_P: [f32; 6] = [
    0.002_292_744_8,
    -0.008_343_945,
    0.021_768_918,
    -0.053_959_258,
    0.133_333_04,
    -0.333_333_34,
];
/// `erf(x) / x` as a polynomial in `x²`, `|x| < 1`. (The fitted constant term is one ulp below
/// the f32 value of 2/√π.)
#[allow(clippy::approx_constant)]
const ERF_P: [f32; 7] = [
    7.875_875e-5,
    -0.000_801_686_43,
    0.005_189_087_2,
    -0.026_854_211,
    0.112_835_94,
    -0.376_126_26,
    1.128_379_1,
];
/// `erfc(x)·e^{x²}` as a polynomial in `s = 1/(1 + x/2)`, `0.5 <= x <= 10.1`.
const ERFC_R: [f32; 10] = [
    -0.077_288_61,
    0.363_435_1,
    -0.633_335_6,
    0.429_647_83,
    -0.123_223_64,
    0.241_752_79,
    0.233_113_99,
    0.283_928_3,
    0.281_953_48,
    4.770_354_7e-6,
];
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_TANH_C: f32 = 0.044_715;

/// `2^n` for `-126 <= n <= 127`.
#[inline(always)]
fn pow2i(n: i32) -> f32 {
    f32::from_bits((n.wrapping_add(127) as u32) << 23)
}

/// Fast `e^x` (≤ 1 ulp; see the module docs).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    exp_hilo(x, 0.0)
}

/// `e^(hi + lo)` where `lo` is a small correction (|lo| ≲ 0.03) below the precision of `hi`,
/// folded into the reduced argument.
#[inline(always)]
fn exp_hilo(hi: f32, lo: f32) -> f32 {
    // Past these bounds the result is inf / 0 anyway; clamping keeps the integer math in range.
    // NaN passes through the clamp and poisons the arithmetic below.
    let xc = hi.clamp(-104.0, 88.8);
    // Round x·log2(e) to the nearest integer with the 1.5·2^23 trick.
    const MAGIC: f32 = 12_582_912.0;
    let t = xc * std::f32::consts::LOG2_E + MAGIC;
    let nf = t - MAGIC;
    let n = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = ((xc - nf * LN2_HI) - nf * LN2_LO) + lo;
    let p = 1.0 + (r + r * r * poly(&EXP_Q, r));
    // Scale in two exact steps so that results in the subnormal range round only once.
    let n1 = n >> 1;
    p * pow2i(n1) * pow2i(n - n1)
}

/// `a²` as an unevaluated sum `hi + lo` (Dekker's split without FMA): `hi` is exact and `lo`
/// carries the bits that a rounded `a * a` would lose. Needs a finite `a`.
#[inline(always)]
fn square_hilo(a: f32) -> (f32, f32) {
    // Keep 12 significant bits so that ah² is exact in f32.
    let ah = f32::from_bits(a.to_bits() & 0xFFFF_F000);
    let al = a - ah;
    (ah * ah, (ah + ah + al) * al)
}

/// `min(a, cap)` that keeps NaN (an `f32::min` would replace it).
#[inline(always)]
fn cap(a: f32, cap: f32) -> f32 {
    if a > cap {
        cap
    } else {
        a
    }
}

/// Fast `e^x - 1`, accurate near 0 (≤ 2 ulp).
#[inline(always)]
pub fn expm1(x: f32) -> f32 {
    // e^x - 1 = (2^n - 1) + 2^n·(e^r - 1) with the reduction of `exp`; 2^n - 1 is exact for the
    // n where cancellation matters, and e^r - 1 comes from the polynomial without its leading 1.
    // Below -30 the result is -1 in f32.
    let xc = x.clamp(-30.0, 88.8);
    const MAGIC: f32 = 12_582_912.0;
    let t = xc * std::f32::consts::LOG2_E + MAGIC;
    let nf = t - MAGIC;
    let n = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = (xc - nf * LN2_HI) - nf * LN2_LO;
    let pm1 = r + r * r * poly(&EXP_Q, r);
    let n1 = n >> 1;
    let (s1, s2) = (pow2i(n1), pow2i(n - n1));
    (s1 * s2 - 1.0) + (s1 * pm1) * s2
}

/// Fast natural logarithm (≤ 2 ulp; `log(±0) = -inf`, `log(x<0) = NaN`, `log(inf) = inf`).
#[inline(always)]
pub fn log(x: f32) -> f32 {
    let sub = x < f32::MIN_POSITIVE;
    let xs = if sub { x * 8_388_608.0 } else { x };
    let bias = if sub { 23 } else { 0 };
    // Split x = 2^e · m with m in [√½, √2).
    const SQRT_HALF_BITS: i32 = 0x3F35_04F3;
    let adj = (xs.to_bits() as i32).wrapping_sub(SQRT_HALF_BITS);
    let e = (adj >> 23) - bias;
    let m = f32::from_bits(((adj & 0x007F_FFFF) + SQRT_HALF_BITS) as u32);
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let logm = 2.0 * s + s * z * poly(&LOG_P, z);
    let ef = e as f32;
    let r = (logm + ef * LN2_LO) + ef * LN2_HI;
    let r = if x == 0.0 { f32::NEG_INFINITY } else { r };
    let r = if x == f32::INFINITY { x } else { r };
    if x >= 0.0 {
        r
    } else {
        f32::NAN
    }
}

/// Fast `ln(1 + x)`, accurate for small `x` (≤ 3 ulp).
#[inline(always)]
pub fn log1p(x: f32) -> f32 {
    let u = 1.0 + x;
    // log(u) is exact up to its own rounding; x/(u-1) corrects for the rounding of 1 + x.
    let r = log(u) * (x / (u - 1.0));
    let r = if u == 1.0 { x } else { r };
    if x == f32::INFINITY {
        x
    } else {
        r
    }
}

/// Fast hyperbolic tangent (≤ 2 ulp).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let small = x + x * z * poly(&TANH_P, z);
    let e = exp(2.0 * a);
    let large = (1.0 - 2.0 / (e + 1.0)).copysign(x);
    if a < 0.625 {
        small
    } else {
        large
    }
}

/// Fast logistic function `1 / (1 + e^-x)` (≤ 2.5 ulp).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    // e^{-|x|} never overflows; for x < 0, σ(x) = e^x / (1 + e^x) keeps subnormal results exact.
    let e = exp(-x.abs());
    let num = if x >= 0.0 { 1.0 } else { e };
    num / (1.0 + e)
}

/// `erfc(a)` for `a >= 0.5` given `a²` as `sq_hi + sq_lo`.
#[inline(always)]
fn erfc_tail_parts(a: f32, sq_hi: f32, sq_lo: f32) -> f32 {
    let s = 1.0 / (1.0 + 0.5 * a);
    exp_hilo(-sq_hi, -sq_lo) * poly(&ERFC_R, s)
}

/// `erfc(a)` for `a >= 0.5` (the callers select it only there).
#[inline(always)]
fn erfc_tail(a: f32) -> f32 {
    // erfc(11) is far below the smallest subnormal.
    let a = cap(a, 11.0);
    let (hi, lo) = square_hilo(a);
    erfc_tail_parts(a, hi, lo)
}

/// Fast error function (≈2e-7 relative).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let small = x * poly(&ERF_P, x * x);
    let large = (1.0 - erfc_tail(a)).copysign(x);
    if a < 1.0 {
        small
    } else {
        large
    }
}

/// Fast complementary error function `1 - erf(x)`, accurate in the right tail.
#[inline(always)]
pub fn erfc(x: f32) -> f32 {
    let a = x.abs();
    let tail = erfc_tail(a);
    let mid = 1.0 - x * poly(&ERF_P, x * x);
    let r = if x < 0.0 { 2.0 - tail } else { tail };
    if a < 0.5 {
        mid
    } else {
        r
    }
}

/// Standard normal CDF `Φ(x) = erfc(-x/√2) / 2`, accurate in both tails.
#[inline(always)]
pub fn normal_cdf(x: f32) -> f32 {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    // Take z² = x²/2 from x itself: rounding z first would cost ~z²·2^-24 relative accuracy.
    let xa = cap(x.abs(), 15.6);
    let (hi, lo) = square_hilo(xa);
    let tail = 0.5 * erfc_tail_parts(xa * std::f32::consts::FRAC_1_SQRT_2, 0.5 * hi, 0.5 * lo);
    let mid = 0.5 + 0.5 * (z * poly(&ERF_P, z * z));
    let far = if z < 0.0 { tail } else { 1.0 - tail };
    if (-0.5..1.0).contains(&z) {
        mid
    } else {
        far
    }
}

/// Standard normal density `φ(x) = e^{-x²/2} / √(2π)`.
#[inline(always)]
pub fn normal_pdf(x: f32) -> f32 {
    let (hi, lo) = square_hilo(cap(x.abs(), 15.6));
    FRAC_1_SQRT_2PI * exp_hilo(-0.5 * hi, -0.5 * lo)
}

/// GELU, exact form `x·Φ(x)`.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    x * normal_cdf(x)
}

/// Derivative of [`gelu`]: `Φ(x) + x·φ(x)`.
#[inline(always)]
pub fn gelu_grad(x: f32) -> f32 {
    normal_cdf(x) + x * normal_pdf(x)
}

/// GELU, tanh approximation `0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))`, computed as `x·σ(2u)`.
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + GELU_TANH_C * (x * x * x));
    x * sigmoid(2.0 * u)
}

/// Derivative of [`gelu_tanh`].
#[inline(always)]
pub fn gelu_tanh_grad(x: f32) -> f32 {
    let x2 = x * x;
    let u = SQRT_2_OVER_PI * (x + GELU_TANH_C * (x2 * x));
    let s = sigmoid(2.0 * u);
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_C * x2);
    // d/dx x·σ(2u) = σ + x·2σ(1-σ)·u'
    s + x * (2.0 * s * (1.0 - s)) * du
}

/// SiLU / swish `x·σ(x)`.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// Derivative of [`silu`]: `σ(x)(1 + x(1 - σ(x)))`.
#[inline(always)]
pub fn silu_grad(x: f32) -> f32 {
    let s = sigmoid(x);
    s * (1.0 + x * (1.0 - s))
}

/// Softplus with β = 1 and PyTorch's threshold 20 (`x` itself above it), computed stably as
/// `max(x, 0) + log1p(e^{-|x|})`.
#[inline(always)]
pub fn softplus(x: f32) -> f32 {
    let r = x.max(0.0) + log1p(exp(-x.abs()));
    if x > 20.0 {
        x
    } else {
        r
    }
}

// ----- ISA dispatch (through `crate::multiversion!`) -----

#[inline(always)]
fn map1_body<F: Fn(f32) -> f32>(src: &[f32], dst: &mut [f32], f: F) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f(s);
    }
}

#[inline(always)]
fn map2_body<F: Fn(f32, f32) -> f32>(a: &[f32], b: &[f32], dst: &mut [f32], f: F) {
    for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
        *d = f(x, y);
    }
}

#[inline(always)]
fn map3_body<F: Fn(f32, f32, f32) -> f32>(a: &[f32], b: &[f32], c: &[f32], dst: &mut [f32], f: F) {
    for (((d, &x), &y), &z) in dst.iter_mut().zip(a).zip(b).zip(c) {
        *d = f(x, y, z);
    }
}

#[inline(always)]
fn apply_body<F: Fn(f32) -> f32>(x: &mut [f32], f: F) {
    for v in x.iter_mut() {
        *v = f(*v);
    }
}

#[inline(always)]
fn zip_apply_body<F: Fn(f32, f32) -> f32>(acc: &mut [f32], b: &[f32], f: F) {
    for (a, &y) in acc.iter_mut().zip(b) {
        *a = f(*a, y);
    }
}

crate::multiversion! {
    /// `dst[i] = f(src[i])` for `i < min(len)`, vectorised with the best ISA.
    pub fn map1<F: Fn(f32) -> f32>(src: &[f32], dst: &mut [f32], f: F) { map1_body(src, dst, f) }
}

crate::multiversion! {
    /// `dst[i] = f(a[i], b[i])`, vectorised with the best ISA.
    pub fn map2<F: Fn(f32, f32) -> f32>(a: &[f32], b: &[f32], dst: &mut [f32], f: F) { map2_body(a, b, dst, f) }
}

crate::multiversion! {
    /// `dst[i] = f(a[i], b[i], c[i])`, vectorised with the best ISA.
    pub fn map3<F: Fn(f32, f32, f32) -> f32>(a: &[f32], b: &[f32], c: &[f32], dst: &mut [f32], f: F) { map3_body(a, b, c, dst, f) }
}

crate::multiversion! {
    /// `x[i] = f(x[i])` in place, vectorised with the best ISA.
    pub fn apply<F: Fn(f32) -> f32>(x: &mut [f32], f: F) { apply_body(x, f) }
}

crate::multiversion! {
    /// `acc[i] = f(acc[i], b[i])` in place, vectorised with the best ISA.
    pub fn zip_apply<F: Fn(f32, f32) -> f32>(acc: &mut [f32], b: &[f32], f: F) { zip_apply_body(acc, b, f) }
}

/// Defines slice kernels `$name(src, dst)` applying the scalar function `$f`. The function is
/// called directly in the dispatched loop, so its `#[inline(always)]` body is always inlined
/// and vectorised (a generic `F` goes through a call shim that LLVM may decline to inline when
/// the body is large).
macro_rules! slice_kernel {
    ($($(#[$meta:meta])* $name:ident => $f:path;)*) => {$(
        crate::multiversion! {
            $(#[$meta])*
            pub fn $name(src: &[f32], dst: &mut [f32]) {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = $f(s);
                }
            }
        }
    )*};
}

/// Defines fused backward kernels `$name(g, s, dst)` with `dst[i] = $f(g[i], s[i])`.
macro_rules! zip_kernel {
    ($($(#[$meta:meta])* $name:ident => $f:path;)*) => {$(
        crate::multiversion! {
            $(#[$meta])*
            pub fn $name(g: &[f32], s: &[f32], dst: &mut [f32]) {
                for ((d, &a), &b) in dst.iter_mut().zip(g).zip(s) {
                    *d = $f(a, b);
                }
            }
        }
    )*};
}

slice_kernel! {
    /// `dst = exp(src)` (see [`exp`]).
    exp_slice => exp;
    /// `dst = exp(src) - 1` (see [`expm1`]).
    expm1_slice => expm1;
    /// `dst = ln(src)` (see [`log`]).
    log_slice => log;
    /// `dst = ln(1 + src)` (see [`log1p`]).
    log1p_slice => log1p;
    /// `dst = tanh(src)` (see [`tanh`]).
    tanh_slice => tanh;
    /// `dst = σ(src)` (see [`sigmoid`]).
    sigmoid_slice => sigmoid;
    /// `dst = erf(src)` (see [`erf`]).
    erf_slice => erf;
    /// `dst = gelu(src)`, exact erf form (see [`gelu`]).
    gelu_slice => gelu;
    /// `dst = gelu_tanh(src)` (see [`gelu_tanh`]).
    gelu_tanh_slice => gelu_tanh;
    /// `dst = silu(src)` (see [`silu`]).
    silu_slice => silu;
    /// `dst = softplus(src)` (see [`softplus`]).
    softplus_slice => softplus;
}

/// `g·(1 - y²)`: tanh backward from its output `y`.
#[inline(always)]
pub fn tanh_backward(g: f32, y: f32) -> f32 {
    g * (1.0 - y * y)
}

/// `g·y(1 - y)`: sigmoid backward from its output `y`.
#[inline(always)]
pub fn sigmoid_backward(g: f32, y: f32) -> f32 {
    g * (y * (1.0 - y))
}

/// `g·gelu'(x)`.
#[inline(always)]
pub fn gelu_backward(g: f32, x: f32) -> f32 {
    g * gelu_grad(x)
}

/// `g·gelu_tanh'(x)`.
#[inline(always)]
pub fn gelu_tanh_backward(g: f32, x: f32) -> f32 {
    g * gelu_tanh_grad(x)
}

/// `g·silu'(x)`.
#[inline(always)]
pub fn silu_backward(g: f32, x: f32) -> f32 {
    g * silu_grad(x)
}

/// `g·σ(x)` below PyTorch's threshold 20, `g` above it.
#[inline(always)]
pub fn softplus_backward(g: f32, x: f32) -> f32 {
    if x > 20.0 {
        g
    } else {
        g * sigmoid(x)
    }
}

zip_kernel! {
    /// Tanh backward from the output (see [`tanh_backward`]).
    tanh_backward_slice => tanh_backward;
    /// Sigmoid backward from the output (see [`sigmoid_backward`]).
    sigmoid_backward_slice => sigmoid_backward;
    /// GELU backward from the input (see [`gelu_backward`]).
    gelu_backward_slice => gelu_backward;
    /// Tanh-GELU backward from the input (see [`gelu_tanh_backward`]).
    gelu_tanh_backward_slice => gelu_tanh_backward;
    /// SiLU backward from the input (see [`silu_backward`]).
    silu_backward_slice => silu_backward;
    /// Softplus backward from the input (see [`softplus_backward`]).
    softplus_backward_slice => softplus_backward;
}

/// Scaled ELU `scale·(x > 0 ? x : alpha·(e^x − 1))` (ELU: scale 1; SELU: its constants).
#[inline(always)]
pub fn scaled_elu(x: f32, alpha: f32, scale: f32) -> f32 {
    scale * if x > 0.0 { x } else { alpha * expm1(x) }
}

/// Backward of [`scaled_elu`] from its input.
#[inline(always)]
pub fn scaled_elu_backward(g: f32, x: f32, alpha: f32, scale: f32) -> f32 {
    if x > 0.0 {
        g * scale
    } else {
        g * (scale * alpha) * exp(x)
    }
}

#[inline(always)]
fn elu_body(src: &[f32], dst: &mut [f32], alpha: f32, scale: f32) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = scaled_elu(x, alpha, scale);
    }
}

#[inline(always)]
fn elu_backward_body(g: &[f32], x: &[f32], dst: &mut [f32], alpha: f32, scale: f32) {
    for ((d, &g), &x) in dst.iter_mut().zip(g).zip(x) {
        *d = scaled_elu_backward(g, x, alpha, scale);
    }
}

crate::multiversion! {
    /// `dst = scaled_elu(src, alpha, scale)`.
    pub fn elu_slice(src: &[f32], dst: &mut [f32], alpha: f32, scale: f32) { elu_body(src, dst, alpha, scale) }
}

crate::multiversion! {
    /// `dst = scaled_elu_backward(g, x, alpha, scale)`.
    pub fn elu_backward_slice(g: &[f32], x: &[f32], dst: &mut [f32], alpha: f32, scale: f32) { elu_backward_body(g, x, dst, alpha, scale) }
}

// ----- reductions -----

/// An associative combine with an identity, for [`reduce`] and [`combine_into`].
pub trait Reducer: Copy + Send + Sync + 'static {
    /// The identity element (`0` for sum, `-inf` for max, ...).
    const IDENTITY: f32;
    /// Combines two partial results.
    fn combine(a: f32, b: f32) -> f32;
}

/// Sum.
#[derive(Debug, Clone, Copy)]
pub struct SumOp;
/// Maximum; NaN wins (propagates) like PyTorch.
#[derive(Debug, Clone, Copy)]
pub struct MaxOp;
/// Minimum; NaN wins (propagates) like PyTorch.
#[derive(Debug, Clone, Copy)]
pub struct MinOp;
/// Product.
#[derive(Debug, Clone, Copy)]
pub struct ProdOp;

impl Reducer for SumOp {
    const IDENTITY: f32 = 0.0;
    #[inline(always)]
    fn combine(a: f32, b: f32) -> f32 {
        a + b
    }
}

impl Reducer for MaxOp {
    const IDENTITY: f32 = f32::NEG_INFINITY;
    #[inline(always)]
    fn combine(a: f32, b: f32) -> f32 {
        #[allow(clippy::eq_op)]
        let b_nan = b != b;
        if b > a || b_nan {
            b
        } else {
            a
        }
    }
}

impl Reducer for MinOp {
    const IDENTITY: f32 = f32::INFINITY;
    #[inline(always)]
    fn combine(a: f32, b: f32) -> f32 {
        #[allow(clippy::eq_op)]
        let b_nan = b != b;
        if b < a || b_nan {
            b
        } else {
            a
        }
    }
}

impl Reducer for ProdOp {
    const IDENTITY: f32 = 1.0;
    #[inline(always)]
    fn combine(a: f32, b: f32) -> f32 {
        a * b
    }
}

/// Lanes of the vector accumulators of [`reduce`].
const LANES: usize = 16;
/// Elements folded into one set of lane accumulators before it is combined into the total; this
/// two-level order keeps the rounding error of long sums at about `(BLOCK/LANES + n/BLOCK)·ε`.
const BLOCK: usize = 4096;

#[inline(always)]
fn reduce_body<R: Reducer>(x: &[f32], _r: R) -> f32 {
    let mut total = R::IDENTITY;
    for block in x.chunks(BLOCK) {
        let mut acc = [R::IDENTITY; LANES];
        let mut it = block.chunks_exact(LANES);
        for c in &mut it {
            for i in 0..LANES {
                acc[i] = R::combine(acc[i], c[i]);
            }
        }
        // Pairwise fold of the lanes.
        let mut width = LANES / 2;
        while width > 0 {
            for i in 0..width {
                acc[i] = R::combine(acc[i], acc[i + width]);
            }
            width /= 2;
        }
        let mut t = acc[0];
        for &v in it.remainder() {
            t = R::combine(t, v);
        }
        total = R::combine(total, t);
    }
    total
}

crate::multiversion! {
    /// Reduces a slice with `R` (identity for an empty slice), vectorised with the best ISA.
    pub fn reduce<R: Reducer>(x: &[f32], r: R) -> f32 { reduce_body(x, r) }
}

#[inline(always)]
fn combine_into_body<R: Reducer>(acc: &mut [f32], x: &[f32], _r: R) {
    for (a, &v) in acc.iter_mut().zip(x) {
        *a = R::combine(*a, v);
    }
}

crate::multiversion! {
    /// `acc[i] = R::combine(acc[i], x[i])`, vectorised with the best ISA.
    pub fn combine_into<R: Reducer>(acc: &mut [f32], x: &[f32], r: R) { combine_into_body(acc, x, r) }
}

#[inline(always)]
fn sum_sq_body(x: &[f32]) -> f32 {
    let mut total = 0.0f32;
    for block in x.chunks(BLOCK) {
        let mut acc = [0.0f32; LANES];
        let mut it = block.chunks_exact(LANES);
        for c in &mut it {
            for i in 0..LANES {
                acc[i] += c[i] * c[i];
            }
        }
        let mut t: f32 = acc.iter().sum();
        for &v in it.remainder() {
            t += v * v;
        }
        total += t;
    }
    total
}

crate::multiversion! {
    /// `Σ x²` of a slice, vectorised with the best ISA.
    pub fn sum_sq(x: &[f32]) -> f32 { sum_sq_body(x) }
}

#[inline(always)]
fn dot_body(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut total = 0.0f32;
    for (ba, bb) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        let mut acc = [0.0f32; LANES];
        let mut ia = ba.chunks_exact(LANES);
        let mut ib = bb.chunks_exact(LANES);
        for (ca, cb) in (&mut ia).zip(&mut ib) {
            for i in 0..LANES {
                acc[i] += ca[i] * cb[i];
            }
        }
        let mut t: f32 = acc.iter().sum();
        for (&x, &y) in ia.remainder().iter().zip(ib.remainder()) {
            t += x * y;
        }
        total += t;
    }
    total
}

crate::multiversion! {
    /// `Σ a[i]·b[i]` over the common length, vectorised with the best ISA.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 { dot_body(a, b) }
}

#[inline(always)]
fn mul_add_into_body(acc: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, &x), &y) in acc.iter_mut().zip(a).zip(b) {
        *o += x * y;
    }
}

crate::multiversion! {
    /// `acc[i] += a[i]·b[i]`, vectorised with the best ISA.
    pub fn mul_add_into(acc: &mut [f32], a: &[f32], b: &[f32]) { mul_add_into_body(acc, a, b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_values() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(log(1.0), 0.0);
        assert_eq!(log(0.0), f32::NEG_INFINITY);
        assert!(log(-1.0).is_nan());
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(reduce(&[], SumOp), 0.0);
        assert!(reduce(&[1.0, f32::NAN, 3.0], MaxOp).is_nan());
    }
}
