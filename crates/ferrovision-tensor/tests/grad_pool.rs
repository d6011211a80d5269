//! Pooling: hand-computed cases, comparison with a naive reference implementation of PyTorch's
//! loops on random configurations (values, indices, gradients), finite-difference gradient
//! checks, and argument errors.

mod common;
use common::{assert_close, uniform};
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::ops::pool::PoolOpts;
use ferrovision_tensor::rng::Rng;
use ferrovision_tensor::{no_grad, DType, Result, Tensor};

fn check(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    GradCheck::default().run(f, inputs).unwrap();
}

/// A one-input argument list for [`check`].
fn one(x: &Tensor) -> [Tensor; 1] {
    [x.clone()]
}

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

fn vals(x: &Tensor) -> Vec<f32> {
    x.to_vec::<f32>().unwrap()
}

fn idxs(x: &Tensor) -> Vec<i64> {
    x.to_vec::<i64>().unwrap()
}

/// Distinct values 0.05 apart in random order: finite differences with eps 0.01 never cross a
/// tie, so max pooling is differentiable at every point checked.
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut perm: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed);
    for i in (1..n).rev() {
        perm.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let v = perm
        .iter()
        .map(|&p| (p as f32 - n as f32 / 2.0) * 0.05)
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Naive reference: PyTorch's CPU loops written out over (D, H, W) with unused dims of size 1.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Cfg {
    k: [usize; 3],
    s: [usize; 3],
    p: [usize; 3],
    d: [usize; 3],
    ceil: bool,
    include_pad: bool,
}

impl Cfg {
    fn opts(&self, sp: usize) -> PoolOpts {
        PoolOpts::new(&self.k[3 - sp..])
            .stride(&self.s[3 - sp..])
            .padding(&self.p[3 - sp..])
            .dilation(&self.d[3 - sp..])
            .ceil_mode(self.ceil)
            .count_include_pad(self.include_pad)
    }
}

/// PyTorch's `pooling_output_shape`, `None` when the configuration is rejected.
fn ref_out_len(len: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> Option<usize> {
    if p > k / 2 {
        return None;
    }
    let num =
        len as i64 + 2 * p as i64 - (d * (k - 1) + 1) as i64 + if ceil { s as i64 - 1 } else { 0 };
    let mut out = num.div_euclid(s as i64) + 1;
    if ceil && (out - 1) * s as i64 >= (len + p) as i64 {
        out -= 1;
    }
    (out >= 1).then_some(out as usize)
}

/// Output dims of `c` over `dims`, `None` when invalid or when some max window is empty.
fn ref_out_dims(dims: [usize; 3], c: &Cfg) -> Option<[usize; 3]> {
    let mut o = [0; 3];
    for a in 0..3 {
        o[a] = ref_out_len(dims[a], c.k[a], c.s[a], c.p[a], c.d[a], c.ceil)?;
        for i in 0..o[a] {
            let st = (i * c.s[a]) as i64 - c.p[a] as i64;
            let any = (0..c.k[a]).any(|j| {
                let q = st + (j * c.d[a]) as i64;
                q >= 0 && q < dims[a] as i64
            });
            if !any {
                return None;
            }
        }
    }
    Some(o)
}

/// Max pooling of every plane: values and first-max flat indices.
fn ref_max(x: &[f32], planes: usize, dims: [usize; 3], c: &Cfg) -> (Vec<f32>, Vec<i64>) {
    let od = ref_out_dims(dims, c).unwrap();
    let (ip, op) = (dims.iter().product::<usize>(), od.iter().product::<usize>());
    let (mut out, mut idx) = (vec![0.0; planes * op], vec![0i64; planes * op]);
    for pl in 0..planes {
        for o0 in 0..od[0] {
            for o1 in 0..od[1] {
                for o2 in 0..od[2] {
                    let (mut best, mut bi) = (f32::NEG_INFINITY, -1i64);
                    for j0 in 0..c.k[0] {
                        for j1 in 0..c.k[1] {
                            for j2 in 0..c.k[2] {
                                let q = [
                                    (o0 * c.s[0] + j0 * c.d[0]) as i64 - c.p[0] as i64,
                                    (o1 * c.s[1] + j1 * c.d[1]) as i64 - c.p[1] as i64,
                                    (o2 * c.s[2] + j2 * c.d[2]) as i64 - c.p[2] as i64,
                                ];
                                if (0..3).any(|a| q[a] < 0 || q[a] >= dims[a] as i64) {
                                    continue;
                                }
                                let f = (q[0] * dims[1] as i64 + q[1]) * dims[2] as i64 + q[2];
                                let v = x[pl * ip + f as usize];
                                if bi < 0 || v > best {
                                    best = v;
                                    bi = f;
                                }
                            }
                        }
                    }
                    let o = pl * op + (o0 * od[1] + o1) * od[2] + o2;
                    out[o] = best;
                    idx[o] = bi;
                }
            }
        }
    }
    (out, idx)
}

/// Average pooling of every plane (PyTorch's divisor rules); returns values and, for the
/// gradient, each output's (input flat index, weight) list.
fn ref_avg(
    x: &[f32],
    planes: usize,
    dims: [usize; 3],
    c: &Cfg,
) -> (Vec<f32>, Vec<Vec<(usize, f32)>>) {
    let od = ref_out_dims(dims, c).unwrap();
    let (ip, op) = (dims.iter().product::<usize>(), od.iter().product::<usize>());
    let mut out = vec![0.0; planes * op];
    let mut taps = vec![Vec::new(); op];
    for o0 in 0..od[0] {
        for o1 in 0..od[1] {
            for o2 in 0..od[2] {
                let o = [o0, o1, o2];
                let mut lo = [0i64; 3];
                let mut hi = [0i64; 3];
                let mut pool_size = 1i64;
                for a in 0..3 {
                    let st = (o[a] * c.s[a]) as i64 - c.p[a] as i64;
                    let end = (st + c.k[a] as i64).min((dims[a] + c.p[a]) as i64);
                    pool_size *= end - st;
                    lo[a] = st.max(0);
                    hi[a] = end.min(dims[a] as i64);
                }
                let count: i64 = (0..3).map(|a| hi[a] - lo[a]).product();
                let div = if c.include_pad { pool_size } else { count } as f32;
                let oi = (o0 * od[1] + o1) * od[2] + o2;
                for q0 in lo[0]..hi[0] {
                    for q1 in lo[1]..hi[1] {
                        for q2 in lo[2]..hi[2] {
                            let f = ((q0 * dims[1] as i64 + q1) * dims[2] as i64 + q2) as usize;
                            taps[oi].push((f, 1.0 / div));
                        }
                    }
                }
            }
        }
    }
    for pl in 0..planes {
        for (oi, tp) in taps.iter().enumerate() {
            let s: f32 = tp.iter().map(|&(f, _)| x[pl * ip + f]).sum();
            out[pl * op + oi] = s / tp[0].1.recip();
        }
    }
    (out, taps)
}

/// Adaptive bins of PyTorch: `floor(i*in/out) .. ceil((i+1)*in/out)`.
fn bins(len: usize, out: usize) -> Vec<(usize, usize)> {
    (0..out)
        .map(|i| ((i * len) / out, ((i + 1) * len).div_ceil(out)))
        .collect()
}

/// Adaptive pooling reference: (max values, max indices, avg values).
fn ref_adaptive(
    x: &[f32],
    planes: usize,
    dims: [usize; 3],
    od: [usize; 3],
) -> (Vec<f32>, Vec<i64>, Vec<f32>) {
    let b: Vec<Vec<(usize, usize)>> = (0..3).map(|a| bins(dims[a], od[a])).collect();
    let (ip, op) = (dims.iter().product::<usize>(), od.iter().product::<usize>());
    let (mut mx, mut mi, mut av) = (
        vec![0.0; planes * op],
        vec![0; planes * op],
        vec![0.0; planes * op],
    );
    for pl in 0..planes {
        for o0 in 0..od[0] {
            for o1 in 0..od[1] {
                for o2 in 0..od[2] {
                    let (mut best, mut bi, mut sum, mut n) = (f32::NEG_INFINITY, -1i64, 0.0f32, 0);
                    for q0 in b[0][o0].0..b[0][o0].1 {
                        for q1 in b[1][o1].0..b[1][o1].1 {
                            for q2 in b[2][o2].0..b[2][o2].1 {
                                let f = (q0 * dims[1] + q1) * dims[2] + q2;
                                let v = x[pl * ip + f];
                                if bi < 0 || v > best {
                                    best = v;
                                    bi = f as i64;
                                }
                                sum += v;
                                n += 1;
                            }
                        }
                    }
                    let o = pl * op + (o0 * od[1] + o1) * od[2] + o2;
                    mx[o] = best;
                    mi[o] = bi;
                    av[o] = sum / n as f32;
                }
            }
        }
    }
    (mx, mi, av)
}

/// Pads spatial dims to (D, H, W).
fn dims3(spatial: &[usize]) -> [usize; 3] {
    let mut d = [1; 3];
    d[3 - spatial.len()..].copy_from_slice(spatial);
    d
}

fn max_with_indices(x: &Tensor, sp: usize, o: &PoolOpts) -> (Tensor, Tensor) {
    match sp {
        1 => x.max_pool1d_with_indices(o),
        2 => x.max_pool2d_with_indices(o),
        _ => x.max_pool3d_with_indices(o),
    }
    .unwrap()
}

fn max_pool(x: &Tensor, sp: usize, o: &PoolOpts) -> Result<Tensor> {
    match sp {
        1 => x.max_pool1d(o),
        2 => x.max_pool2d(o),
        _ => x.max_pool3d(o),
    }
}

fn avg_pool(x: &Tensor, sp: usize, o: &PoolOpts) -> Result<Tensor> {
    match sp {
        1 => x.avg_pool1d(o),
        2 => x.avg_pool2d(o),
        _ => x.avg_pool3d(o),
    }
}

/// Gradient of `sum(f(x) * w)` by autodiff.
fn grad_of(x: &Tensor, w: &[f32], f: impl Fn(&Tensor) -> Result<Tensor>) -> Vec<f32> {
    let xv = x.detach().requires_grad_(true);
    let y = f(&xv).unwrap();
    y.backward_with(&Tensor::from_slice(w, y.shape()).unwrap())
        .unwrap();
    vals(&xv.grad().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Hand-computed cases
// ---------------------------------------------------------------------------------------------

#[test]
fn known_4x4_cases() {
    let x = t(
        &(0..16).map(|v| v as f32).collect::<Vec<_>>(),
        &[1, 1, 4, 4],
    );
    let (y, i) = x.max_pool2d_with_indices(&PoolOpts::new(&[2])).unwrap();
    assert_eq!(vals(&y), [5.0, 7.0, 13.0, 15.0]);
    assert_eq!(idxs(&i), [5, 7, 13, 15]);
    assert_eq!(i.dtype(), DType::I64);
    assert_eq!(
        vals(&x.avg_pool2d(&PoolOpts::new(&[2])).unwrap()),
        [2.5, 4.5, 10.5, 12.5]
    );

    // ResNet stem pooling: 3x3, stride 2, padding 1.
    let o = PoolOpts::new(&[3]).stride(&[2]).padding(&[1]);
    let (y, i) = x.max_pool2d_with_indices(&o).unwrap();
    assert_eq!(vals(&y), [5.0, 7.0, 13.0, 15.0]);
    assert_eq!(idxs(&i), [5, 7, 13, 15]);
    assert_close(
        &vals(&x.avg_pool2d(&o).unwrap()),
        &[10.0 / 9.0, 24.0 / 9.0, 51.0 / 9.0, 10.0],
        1e-6,
        1e-6,
    );
    assert_close(
        &vals(&x.avg_pool2d(&o.clone().count_include_pad(false)).unwrap()),
        &[2.5, 4.0, 8.5, 10.0],
        1e-6,
        1e-6,
    );

    // Ties go to the first element of the window in row-major order.
    let (_, i) = Tensor::ones(&[1, 1, 4, 4])
        .max_pool2d_with_indices(&PoolOpts::new(&[2]))
        .unwrap();
    assert_eq!(idxs(&i), [0, 2, 8, 10]);
    let (_, i) = Tensor::ones(&[1, 1, 4, 4])
        .max_pool2d_with_indices(&o)
        .unwrap();
    assert_eq!(idxs(&i), [0, 1, 4, 5]);

    // Gradient of max pooling goes to the argmax; of average pooling is spread evenly.
    let g = grad_of(&x, &[1.0, 2.0, 3.0, 4.0], |x| {
        x.max_pool2d(&PoolOpts::new(&[2]))
    });
    let mut want = vec![0.0; 16];
    want[5] = 1.0;
    want[7] = 2.0;
    want[13] = 3.0;
    want[15] = 4.0;
    assert_eq!(g, want);
    let g = grad_of(&x, &[4.0, 8.0, 12.0, 16.0], |x| {
        x.avg_pool2d(&PoolOpts::new(&[2]))
    });
    assert_eq!(
        g,
        [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0]
    );
}

#[test]
fn known_ceil_mode_and_dilation_cases() {
    let x = t(&[1.0, 5.0, 2.0, 4.0, 3.0], &[1, 1, 5]);
    let o = PoolOpts::new(&[2]);
    assert_eq!(vals(&x.max_pool1d(&o).unwrap()), [5.0, 4.0]);
    assert_eq!(
        vals(&x.max_pool1d(&o.clone().ceil_mode(true)).unwrap()),
        [5.0, 4.0, 3.0]
    );
    // The last ceil-mode window hangs past the input: its divisor counts only the input part.
    assert_eq!(
        vals(&x.avg_pool1d(&o.clone().ceil_mode(true)).unwrap()),
        [3.0, 3.0, 3.0]
    );

    let x = t(&[1.0, 2.0, 3.0, 4.0], &[1, 1, 4]);
    let o = PoolOpts::new(&[2]).padding(&[1]).ceil_mode(true);
    assert_eq!(vals(&x.avg_pool1d(&o).unwrap()), [0.5, 2.5, 2.0]);
    assert_eq!(
        vals(&x.avg_pool1d(&o.clone().count_include_pad(false)).unwrap()),
        [1.0, 2.5, 4.0]
    );
    // A ceil-mode window that would start in the right padding is dropped.
    let o = PoolOpts::new(&[2])
        .stride(&[3])
        .padding(&[1])
        .ceil_mode(true);
    assert_eq!(x.max_pool1d(&o).unwrap().shape(), &[1, 1, 2]);

    // Dilation 2: windows {0,2,4}, {1,3,5}, {2,4,6}.
    let x = t(&[7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0], &[1, 1, 7]);
    let (y, i) = x
        .max_pool1d_with_indices(&PoolOpts::new(&[3]).stride(&[1]).dilation(&[2]))
        .unwrap();
    assert_eq!(vals(&y), [7.0, 6.0, 5.0]);
    assert_eq!(idxs(&i), [0, 1, 2]);

    // NaN propagates through max pooling.
    let x = t(&[1.0, f32::NAN, 3.0, 2.0], &[1, 1, 4]);
    let (y, i) = x.max_pool1d_with_indices(&PoolOpts::new(&[2])).unwrap();
    let y = vals(&y);
    assert!(y[0].is_nan() && y[1] == 3.0);
    assert_eq!(idxs(&i), [1, 2]);
}

#[test]
fn known_adaptive_and_global_cases() {
    // Length 5 into 3 bins: [0,2), [1,4), [3,5).
    let x = t(&[1.0, 2.0, 3.0, 4.0, 5.0], &[1, 1, 5]);
    assert_close(
        &vals(&x.adaptive_avg_pool1d(&[3]).unwrap()),
        &[1.5, 3.0, 4.5],
        1e-6,
        1e-6,
    );
    assert_eq!(vals(&x.adaptive_max_pool1d(&[3]).unwrap()), [2.0, 4.0, 5.0]);
    // More bins than inputs repeats elements (bins [0,1), [0,1), [1,2), [1,2)).
    assert_eq!(
        vals(
            &t(&[1.0, 2.0], &[1, 1, 2])
                .adaptive_avg_pool1d(&[4])
                .unwrap()
        ),
        [1.0, 1.0, 2.0, 2.0]
    );

    let x = t(
        &(0..24).map(|v| v as f32).collect::<Vec<_>>(),
        &[2, 3, 2, 2],
    );
    let g = x.global_avg_pool2d().unwrap();
    assert_eq!(g.shape(), &[2, 3]);
    assert_eq!(vals(&g), [1.5, 5.5, 9.5, 13.5, 17.5, 21.5]);
    let m = x.global_max_pool2d().unwrap();
    assert_eq!(vals(&m), [3.0, 7.0, 11.0, 15.0, 19.0, 23.0]);
    let k = x.adaptive_avg_pool2d(&[1, 1]).unwrap();
    assert_eq!(k.shape(), &[2, 3, 1, 1]);
    let (_, i) = x.adaptive_max_pool2d_with_indices(&[1, 1]).unwrap();
    assert_eq!(idxs(&i), [3; 6]);
    // Whole-plane maximum with ties in different lanes and in the tail: the first one wins.
    for (ties, want) in [([21, 5], 5), ([33, 40], 33), ([2, 18], 2)] {
        let mut v = vec![0.0f32; 41];
        for k in ties {
            v[k] = 1.0;
        }
        let x = t(&v, &[1, 1, 1, 41]);
        let (m, i) = x.adaptive_max_pool2d_with_indices(&[1, 1]).unwrap();
        assert_eq!((vals(&m), idxs(&i)), (vec![1.0], vec![want]));
        let g = grad_of(&x, &[1.0], |x| x.global_max_pool2d());
        assert_eq!(g.iter().position(|&v| v == 1.0), Some(want as usize));
    }
}

#[test]
fn known_unpool_case() {
    let x = t(
        &(0..16).map(|v| v as f32).collect::<Vec<_>>(),
        &[1, 1, 4, 4],
    );
    let (y, i) = x.max_pool2d_with_indices(&PoolOpts::new(&[2])).unwrap();
    let u = y.max_unpool2d(&i, &[4, 4]).unwrap();
    let mut want = vec![0.0; 16];
    for k in [5, 7, 13, 15] {
        want[k] = k as f32;
    }
    assert_eq!(vals(&u), want);
    // A full output shape is accepted too, and so are i32 indices.
    let i32s = i.to_dtype(DType::I32).unwrap();
    assert_eq!(vals(&y.max_unpool2d(&i32s, &[1, 1, 4, 4]).unwrap()), want);
    // Gradient: each input gets the output gradient at its index.
    let w: Vec<f32> = (0..16).map(|v| v as f32 * 10.0).collect();
    assert_eq!(
        grad_of(&y, &w, |y| y.max_unpool2d(&i, &[4, 4])),
        [50.0, 70.0, 130.0, 150.0]
    );
    // Repeated indices: every input still gets the gradient at its index (PyTorch's rule).
    let y = t(&[1.0, 2.0], &[1, 1, 1, 2]);
    let i = Tensor::from_vec(vec![3i64, 3], &[1, 1, 1, 2]).unwrap();
    let u = y.max_unpool2d(&i, &[2, 2]).unwrap();
    assert_eq!(vals(&u)[..3], [0.0, 0.0, 0.0]);
    assert_eq!(
        grad_of(&y, &[0.0, 1.0, 2.0, 3.0], |y| y.max_unpool2d(&i, &[2, 2])),
        [3.0, 3.0]
    );
}

// ---------------------------------------------------------------------------------------------
// Random configurations against the reference
// ---------------------------------------------------------------------------------------------

fn random_cfg(rng: &mut Rng, sp: usize, dilate: bool) -> Cfg {
    let mut c = Cfg {
        k: [1; 3],
        s: [1; 3],
        p: [0; 3],
        d: [1; 3],
        ceil: rng.below(2) == 1,
        include_pad: rng.below(2) == 1,
    };
    for a in 3 - sp..3 {
        c.k[a] = 1 + rng.below(4) as usize;
        c.s[a] = 1 + rng.below(3) as usize;
        c.p[a] = rng.below(c.k[a] as u64 / 2 + 1) as usize;
        if dilate {
            c.d[a] = 1 + rng.below(2) as usize;
        }
    }
    c
}

fn random_dims(rng: &mut Rng, sp: usize) -> Vec<usize> {
    let mut shape = vec![1 + rng.below(2) as usize, 1 + rng.below(3) as usize];
    let hi = if sp == 3 { 6 } else { 10 };
    shape.extend((0..sp).map(|_| 1 + rng.below(hi) as usize));
    shape
}

#[test]
fn max_pool_matches_reference() {
    let mut rng = Rng::new(11);
    let mut tested = 0;
    while tested < 150 {
        let sp = 1 + rng.below(3) as usize;
        let shape = random_dims(&mut rng, sp);
        let c = random_cfg(&mut rng, sp, true);
        let dims = dims3(&shape[2..]);
        let valid =
            (0..3).all(|a| ref_out_len(dims[a], c.k[a], c.s[a], c.p[a], c.d[a], c.ceil).is_some());
        if !valid {
            assert!(
                max_pool(&Tensor::zeros(&shape), sp, &c.opts(sp)).is_err(),
                "{c:?} {shape:?}"
            );
            continue;
        }
        if ref_out_dims(dims, &c).is_none() {
            // A window entirely in padding: PyTorch reads out of bounds there; not compared.
            continue;
        }
        tested += 1;
        // Every third case uses small integers, so windows hold ties.
        let x = if tested % 3 == 0 {
            let v: Vec<f32> = (0..shape.iter().product::<usize>())
                .map(|_| rng.below(3) as f32)
                .collect();
            Tensor::from_vec(v, &shape).unwrap()
        } else {
            uniform(&shape, -1.0, 1.0, tested)
        };
        let planes = shape[0] * shape[1];
        let (want, want_i) = ref_max(&vals(&x), planes, dims, &c);
        let o = c.opts(sp);
        let (y, i) = max_with_indices(&x, sp, &o);
        assert_eq!(vals(&y), want, "{c:?} {shape:?}");
        assert_eq!(idxs(&i), want_i, "{c:?} {shape:?}");
        // The untracked (inference) path gives the same values.
        assert_eq!(vals(&max_pool(&x, sp, &o).unwrap()), want);
        // Gradient: the output gradient scattered to the argmax.
        let w = vals(&uniform(y.shape(), -1.0, 1.0, 99));
        let ip: usize = dims.iter().product();
        let op = want.len() / planes;
        let mut gw = vec![0.0f32; x.numel()];
        for (o, (&wi, &ii)) in w.iter().zip(&want_i).enumerate() {
            gw[(o / op) * ip + ii as usize] += wi;
        }
        assert_close(&grad_of(&x, &w, |x| max_pool(x, sp, &o)), &gw, 1e-6, 1e-6);
    }
}

/// One 2-d max pool case for the dedicated kernels: values, indices, the untracked path and the
/// gradient against the reference; even cases use integer values in 0..3 (many ties).
fn check_2d_max_pool(shape: &[usize], c: &Cfg, case: usize, rng: &mut Rng) {
    let x = if case.is_multiple_of(2) {
        let v: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| rng.below(3) as f32)
            .collect();
        Tensor::from_vec(v, shape).unwrap()
    } else {
        uniform(shape, -1.0, 1.0, case as u64)
    };
    let dims = dims3(&shape[2..]);
    let planes = shape[0] * shape[1];
    let (want, want_i) = ref_max(&vals(&x), planes, dims, c);
    let o = c.opts(2);
    let (y, i) = max_with_indices(&x, 2, &o);
    assert_eq!(vals(&y), want, "{shape:?} {c:?}");
    assert_eq!(idxs(&i), want_i, "{shape:?} {c:?}");
    assert_eq!(vals(&max_pool(&x, 2, &o).unwrap()), want, "{shape:?} {c:?}");
    let w = vals(&uniform(y.shape(), -1.0, 1.0, 7));
    let (ip, op) = (dims.iter().product::<usize>(), want.len() / planes);
    let mut gw = vec![0.0f32; x.numel()];
    for (o, (&wi, &ii)) in w.iter().zip(&want_i).enumerate() {
        gw[(o / op) * ip + ii as usize] += wi;
    }
    assert_close(&grad_of(&x, &w, |x| max_pool(x, 2, &o)), &gw, 1e-6, 1e-6);
}

/// The 2x2 stride-2 pool (LeNet's, VGG's) has its own one-pass kernel: values, indices and the
/// gradient against the reference over odd and even sizes, floor and ceil mode, with ties.
#[test]
fn two_by_two_stride_two_pool_matches_reference() {
    let mut rng = Rng::new(13);
    for (case, shape) in [
        vec![2, 3, 28, 28],
        vec![1, 2, 7, 9],
        vec![3, 1, 2, 2],
        vec![1, 4, 24, 66],
        vec![2, 2, 13, 34],
    ]
    .into_iter()
    .enumerate()
    {
        for ceil in [false, true] {
            let c = Cfg {
                k: [1, 2, 2],
                s: [1, 2, 2],
                p: [0; 3],
                d: [1; 3],
                ceil,
                include_pad: false,
            };
            check_2d_max_pool(&shape, &c, case, &mut rng);
        }
    }
}

/// The 3x3 stride-2 pool (ResNet's and Inception's stems) has its own one-pass kernel too:
/// values, indices and the gradient against the reference with padding 0 and 1, floor and ceil
/// mode, planes wide enough for its vector blocks and too small for them, with ties.
#[test]
fn three_by_three_stride_two_pool_matches_reference() {
    let mut rng = Rng::new(14);
    for (case, shape) in [
        vec![2, 3, 32, 32],
        vec![1, 2, 7, 9],
        vec![3, 1, 3, 3],
        vec![1, 2, 24, 66],
        vec![2, 2, 13, 35],
        vec![1, 1, 56, 56],
    ]
    .into_iter()
    .enumerate()
    {
        for (pad, ceil) in [(0, false), (0, true), (1, false), (1, true)] {
            let c = Cfg {
                k: [1, 3, 3],
                s: [1, 2, 2],
                p: [0, pad, pad],
                d: [1; 3],
                ceil,
                include_pad: false,
            };
            check_2d_max_pool(&shape, &c, case, &mut rng);
        }
    }
}

#[test]
fn avg_pool_matches_reference() {
    let mut rng = Rng::new(12);
    let mut tested = 0;
    while tested < 150 {
        let sp = 1 + rng.below(3) as usize;
        let shape = random_dims(&mut rng, sp);
        let c = random_cfg(&mut rng, sp, false);
        let dims = dims3(&shape[2..]);
        if ref_out_dims(dims, &c).is_none() {
            assert!(
                avg_pool(&Tensor::zeros(&shape), sp, &c.opts(sp)).is_err(),
                "{c:?} {shape:?}"
            );
            continue;
        }
        tested += 1;
        let x = uniform(&shape, -1.0, 1.0, 100 + tested);
        let planes = shape[0] * shape[1];
        let (want, taps) = ref_avg(&vals(&x), planes, dims, &c);
        let o = c.opts(sp);
        let y = avg_pool(&x, sp, &o).unwrap();
        assert_close(&vals(&y), &want, 1e-5, 1e-6);
        let w = vals(&uniform(y.shape(), -1.0, 1.0, 98));
        let ip: usize = dims.iter().product();
        let mut gw = vec![0.0f32; x.numel()];
        for (o, &wi) in w.iter().enumerate() {
            for &(f, wt) in &taps[o % taps.len()] {
                gw[(o / taps.len()) * ip + f] += wi * wt;
            }
        }
        assert_close(&grad_of(&x, &w, |x| avg_pool(x, sp, &o)), &gw, 1e-5, 1e-6);
    }
}

#[test]
fn adaptive_matches_reference() {
    let mut rng = Rng::new(13);
    for case in 0..60 {
        let sp = 1 + rng.below(3) as usize;
        let shape = random_dims(&mut rng, sp);
        let out: Vec<usize> = (0..sp).map(|_| 1 + rng.below(7) as usize).collect();
        let x = if case % 3 == 0 {
            let v: Vec<f32> = (0..shape.iter().product::<usize>())
                .map(|_| rng.below(3) as f32)
                .collect();
            Tensor::from_vec(v, &shape).unwrap()
        } else {
            uniform(&shape, -1.0, 1.0, case)
        };
        let (mx, mi, av) = ref_adaptive(
            &vals(&x),
            shape[0] * shape[1],
            dims3(&shape[2..]),
            dims3(&out),
        );
        let (ya, ym) = match sp {
            1 => (x.adaptive_avg_pool1d(&out), x.adaptive_max_pool1d(&out)),
            2 => (x.adaptive_avg_pool2d(&out), x.adaptive_max_pool2d(&out)),
            _ => (x.adaptive_avg_pool3d(&out), x.adaptive_max_pool3d(&out)),
        };
        assert_close(&vals(&ya.unwrap()), &av, 1e-5, 1e-6);
        assert_eq!(vals(&ym.unwrap()), mx);
        if sp == 2 {
            let (_, i) = x.adaptive_max_pool2d_with_indices(&out).unwrap();
            assert_eq!(idxs(&i), mi);
        }
    }
}

/// The specialised 2x2/2 and 3x3/2 pad 1 width loops, big enough to run in parallel, with odd
/// sizes so that edge windows exist (ceil mode), against the reference.
#[test]
fn fast_paths_and_parallel_planes_match_reference() {
    // Many small planes (grouped, run in parallel), and a few wide ones (full-width blocks).
    for shape in [[4, 16, 23, 21], [2, 2, 7, 45]] {
        fast_paths_case(shape);
    }
}

fn fast_paths_case(shape: [usize; 4]) {
    let x = uniform(&shape, -1.0, 1.0, 5);
    let xv = vals(&x);
    let planes = shape[0] * shape[1];
    let dims = [1, shape[2], shape[3]];
    for (k, s, p) in [(2, 2, 0), (3, 2, 1), (3, 1, 1)] {
        for ceil in [false, true] {
            let c = Cfg {
                k: [1, k, k],
                s: [1, s, s],
                p: [0, p, p],
                d: [1; 3],
                ceil,
                include_pad: true,
            };
            let o = c.opts(2);
            let (want, want_i) = ref_max(&xv, planes, dims, &c);
            let (y, i) = x.max_pool2d_with_indices(&o).unwrap();
            assert_eq!(vals(&y), want);
            assert_eq!(idxs(&i), want_i);
            assert_eq!(vals(&no_grad(|| x.max_pool2d(&o)).unwrap()), want);
            let xg = x.detach().requires_grad_(true);
            assert_eq!(vals(&xg.max_pool2d(&o).unwrap()), want);
            for include_pad in [true, false] {
                let c = Cfg { include_pad, ..c };
                let (want, _) = ref_avg(&xv, planes, dims, &c);
                assert_close(&vals(&x.avg_pool2d(&c.opts(2)).unwrap()), &want, 1e-5, 1e-6);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Finite-difference gradient checks
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_max_pool_1d_2d_3d() {
    let x1 = distinct(&[2, 2, 11], 1);
    for ceil in [false, true] {
        let o = PoolOpts::new(&[3])
            .stride(&[2])
            .padding(&[1])
            .ceil_mode(ceil);
        check(|x| x[0].max_pool1d(&o), &one(&x1));
        let o = PoolOpts::new(&[3])
            .stride(&[1])
            .padding(&[1])
            .dilation(&[2])
            .ceil_mode(ceil);
        check(|x| x[0].max_pool1d(&o), &one(&x1));
    }
    let x2 = distinct(&[2, 3, 7, 9], 2);
    for ceil in [false, true] {
        for o in [
            PoolOpts::new(&[2]),
            PoolOpts::new(&[3]).stride(&[2]).padding(&[1]),
            PoolOpts::new(&[3, 2])
                .stride(&[2, 1])
                .padding(&[1, 1])
                .dilation(&[1, 2]),
            PoolOpts::new(&[2, 4])
                .stride(&[3, 2])
                .padding(&[0, 2])
                .dilation(&[2, 1]),
        ] {
            let o = o.ceil_mode(ceil);
            check(|x| x[0].max_pool2d(&o), &one(&x2));
        }
    }
    let x3 = distinct(&[1, 2, 5, 6, 7], 3);
    for ceil in [false, true] {
        let o = PoolOpts::new(&[2, 3, 2])
            .stride(&[2, 2, 1])
            .padding(&[1, 1, 0])
            .dilation(&[1, 1, 2])
            .ceil_mode(ceil);
        check(|x| x[0].max_pool3d(&o), &one(&x3));
        check(
            |x| x[0].max_pool3d(&PoolOpts::new(&[2]).ceil_mode(ceil)),
            &one(&x3),
        );
    }
    // Values of the with-indices variant carry the gradient too.
    let o = PoolOpts::new(&[3]).stride(&[2]).padding(&[1]);
    check(|x| Ok(x[0].max_pool2d_with_indices(&o)?.0), &one(&x2));
    check(|x| Ok(x[0].max_pool1d_with_indices(&o)?.0), &[x1]);
    check(|x| Ok(x[0].max_pool3d_with_indices(&o)?.0), &[x3]);
}

#[test]
fn grad_avg_pool_1d_2d_3d() {
    let x1 = uniform(&[2, 2, 11], -1.0, 1.0, 4);
    let x2 = uniform(&[2, 3, 7, 9], -1.0, 1.0, 5);
    let x3 = uniform(&[1, 2, 5, 6, 7], -1.0, 1.0, 6);
    for ceil in [false, true] {
        for include_pad in [true, false] {
            let o = PoolOpts::new(&[3])
                .stride(&[2])
                .padding(&[1])
                .ceil_mode(ceil)
                .count_include_pad(include_pad);
            check(|x| x[0].avg_pool1d(&o), &one(&x1));
            check(|x| x[0].avg_pool2d(&o), &one(&x2));
            check(|x| x[0].avg_pool3d(&o), &one(&x3));
            let o = PoolOpts::new(&[2, 4])
                .stride(&[3, 2])
                .padding(&[1, 2])
                .ceil_mode(ceil)
                .count_include_pad(include_pad);
            check(|x| x[0].avg_pool2d(&o), &one(&x2));
            check(
                |x| x[0].avg_pool2d(&PoolOpts::new(&[2]).ceil_mode(ceil)),
                &one(&x2),
            );
        }
    }
}

#[test]
fn grad_adaptive_and_global() {
    let x1 = distinct(&[2, 2, 7], 7);
    let x2 = distinct(&[2, 2, 7, 5], 8);
    let x3 = distinct(&[1, 2, 5, 4, 3], 9);
    for out in [[3], [4], [9]] {
        check(|x| x[0].adaptive_avg_pool1d(&out), &one(&x1));
        check(|x| x[0].adaptive_max_pool1d(&out), &one(&x1));
    }
    for out in [[3, 2], [4, 4], [1, 1], [9, 6]] {
        check(|x| x[0].adaptive_avg_pool2d(&out), &one(&x2));
        check(|x| x[0].adaptive_max_pool2d(&out), &one(&x2));
    }
    check(
        |x| Ok(x[0].adaptive_max_pool2d_with_indices(&[3, 2])?.0),
        &one(&x2),
    );
    for out in [[2, 3, 2], [3, 3, 4]] {
        check(|x| x[0].adaptive_avg_pool3d(&out), &one(&x3));
        check(|x| x[0].adaptive_max_pool3d(&out), &one(&x3));
    }
    check(|x| x[0].global_avg_pool2d(), &one(&x2));
    check(|x| x[0].global_max_pool2d(), &[x2]);
}

#[test]
fn grad_unpool() {
    let x2 = distinct(&[2, 2, 7, 9], 10);
    // Non-overlapping windows, so no index repeats (a repeated index keeps one value only,
    // which finite differences cannot see through).
    let o = PoolOpts::new(&[3]).padding(&[1]).ceil_mode(true);
    let (y, i) = x2.max_pool2d_with_indices(&o).unwrap();
    check(|x| x[0].max_unpool2d(&x[1], &[7, 9]), &[y, i.clone()]);
    // Unpooling into a larger plane than the pooled one (PyTorch allows any size holding the
    // indices), and pooling followed by unpooling end to end.
    let (y, i) = x2.max_pool2d_with_indices(&PoolOpts::new(&[2])).unwrap();
    check(|x| x[0].max_unpool2d(&x[1], &[8, 10]), &[y, i]);
    check(
        |x| {
            let (y, i) = x[0].max_pool2d_with_indices(&PoolOpts::new(&[2]))?;
            y.max_unpool2d(&i, &[7, 9])
        },
        &[x2],
    );
    let x1 = distinct(&[2, 3, 10], 11);
    let (y, i) = x1.max_pool1d_with_indices(&PoolOpts::new(&[3])).unwrap();
    check(|x| x[0].max_unpool1d(&x[1], &[10]), &[y, i]);
    let x3 = distinct(&[1, 2, 4, 4, 5], 12);
    let (y, i) = x3.max_pool3d_with_indices(&PoolOpts::new(&[2])).unwrap();
    check(|x| x[0].max_unpool3d(&x[1], &[4, 4, 5]), &[y, i]);
}

#[test]
fn non_contiguous_and_unbatched_inputs() {
    // (N, H, C, W) permuted to NCHW inside the function.
    let x = distinct(&[2, 7, 3, 6], 13);
    let o = PoolOpts::new(&[3])
        .stride(&[2])
        .padding(&[1])
        .ceil_mode(true);
    check(|x| x[0].permute(&[0, 2, 1, 3])?.max_pool2d(&o), &one(&x));
    check(|x| x[0].permute(&[0, 2, 1, 3])?.avg_pool2d(&o), &one(&x));
    check(
        |x| x[0].permute(&[0, 2, 1, 3])?.adaptive_avg_pool2d(&[4, 5]),
        &one(&x),
    );
    check(
        |x| {
            x[0].slice(3, 1, 6, 2)?
                .permute(&[0, 2, 1, 3])?
                .max_pool2d(&PoolOpts::new(&[2]))
        },
        &one(&x),
    );
    // Strided views give the same values as their contiguous copies.
    let v = x.permute(&[0, 2, 1, 3]).unwrap();
    assert_eq!(
        vals(&v.max_pool2d(&o).unwrap()),
        vals(&v.contiguous().unwrap().max_pool2d(&o).unwrap())
    );
    // Unbatched (C, H, W) and (C, L).
    let u = distinct(&[3, 7, 6], 14);
    let y = u.max_pool2d(&o).unwrap();
    assert_eq!(y.shape(), &[3, 4, 4]);
    assert_eq!(
        vals(&y),
        vals(&u.unsqueeze(0).unwrap().max_pool2d(&o).unwrap())
    );
    check(|x| x[0].avg_pool2d(&o), &one(&u));
    assert_eq!(u.global_avg_pool2d().unwrap().shape(), &[3]);
    // An empty batch gives an empty result.
    let e = Tensor::zeros(&[0, 3, 6, 6]);
    assert_eq!(e.max_pool2d(&o).unwrap().shape(), &[0, 3, 4, 4]);
    assert_eq!(e.avg_pool2d(&o).unwrap().shape(), &[0, 3, 4, 4]);
    assert_eq!(e.global_max_pool2d().unwrap().shape(), &[0, 3]);
    let l = distinct(&[3, 8], 15);
    assert_eq!(l.max_pool1d(&PoolOpts::new(&[2])).unwrap().shape(), &[3, 4]);
    check(
        |x| x[0].avg_pool1d(&PoolOpts::new(&[3]).padding(&[1])),
        &[l],
    );
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_name_the_op() {
    let x = Tensor::zeros(&[1, 2, 5, 5]);
    let err = |r: Result<Tensor>| r.unwrap_err().to_string();
    let e = err(x.max_pool1d(&PoolOpts::new(&[2])));
    assert!(
        e.starts_with("max_pool1d:") && e.contains("[1, 2, 5, 5]"),
        "{e}"
    );
    let e = err(x.avg_pool2d(&PoolOpts::new(&[2]).padding(&[2])));
    assert!(e.starts_with("avg_pool2d:") && e.contains("padding"), "{e}");
    let e = err(x.max_pool2d(&PoolOpts::new(&[7])));
    assert!(
        e.starts_with("max_pool2d:") && e.contains("too small"),
        "{e}"
    );
    let e = err(x.max_pool2d(&PoolOpts::new(&[3]).dilation(&[3])));
    assert!(e.contains("too small"), "{e}");
    let e = err(x.avg_pool2d(&PoolOpts::new(&[2]).dilation(&[2])));
    assert!(e.contains("dilation"), "{e}");
    let e = err(x.max_pool2d(&PoolOpts::new(&[2, 2, 2])));
    assert!(e.contains("kernel") && e.contains("expected 1 or 2"), "{e}");
    let e = err(x.max_pool2d(&PoolOpts::new(&[])));
    assert!(e.contains("kernel"), "{e}");
    let e = err(x.max_pool2d(&PoolOpts::new(&[2]).stride(&[0])));
    assert!(e.contains("positive"), "{e}");
    let e = err(x.adaptive_avg_pool2d(&[2]));
    assert!(e.starts_with("adaptive_avg_pool2d:"), "{e}");
    let e = err(x.adaptive_max_pool2d(&[0, 2]));
    assert!(e.contains("positive"), "{e}");
    let e = err(Tensor::zeros_dtype(&[1, 1, 4, 4], DType::I64).max_pool2d(&PoolOpts::new(&[2])));
    assert!(e.contains("dtype"), "{e}");
    let e = err(Tensor::zeros(&[4, 4]).global_avg_pool2d());
    assert!(e.starts_with("global_avg_pool2d:"), "{e}");

    let (y, i) = x.max_pool2d_with_indices(&PoolOpts::new(&[2])).unwrap();
    let e = err(y.max_unpool2d(&i, &[1, 1]));
    assert!(
        e.starts_with("max_unpool2d:") && e.contains("out of range"),
        "{e}"
    );
    let e = err(y.max_unpool2d(&i, &[5]));
    assert!(e.contains("output_size"), "{e}");
    let e = err(y.max_unpool2d(&y, &[5, 5]));
    assert!(e.contains("dtype"), "{e}");
    let e = err(y.max_unpool2d(&i.reshape(&[2, 1, 2, 2]).unwrap(), &[5, 5]));
    assert!(e.contains("incompatible"), "{e}");
}
