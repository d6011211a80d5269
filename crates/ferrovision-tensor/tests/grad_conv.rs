//! Convolutions: values against naive reference loops (1-d/2-d/3-d, stride, padding modes,
//! dilation, groups, depthwise, pointwise, batching of images into one GEMM), finite-difference
//! gradient checks, transposed convolutions, fused bias+ReLU and error messages.

mod common;
use common::{assert_close, uniform};
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::ops::conv::{self, ConvOpts, ConvTransposeOpts, Padding};
use ferrovision_tensor::{Result, Tensor};

fn check(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    GradCheck::default().run(f, inputs).unwrap();
}

/// Runs `f` with images batched into GEMMs of at least `cols` columns (1 = one GEMM per
/// image). The setting is process-wide, so tests that choose it take turns.
fn with_gemm_columns<R>(cols: usize, f: impl FnOnce() -> R) -> R {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    conv::set_min_gemm_columns(cols);
    let r = f();
    conv::set_min_gemm_columns(256);
    r
}

/// The batching modes worth covering: per image, a few images, the whole batch.
const MODES: [usize; 3] = [1, 40, 100_000];

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &s)| acc * s + i)
}

/// Direct convolution: `pads` are (before, after) per spatial dim.
fn ref_conv(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: &[usize],
    pads: &[(usize, usize)],
    dil: &[usize],
    groups: usize,
) -> (Vec<f32>, Vec<usize>) {
    let (xs, ws) = (x.shape(), w.shape());
    let (xv, wv) = (x.to_vec::<f32>().unwrap(), w.to_vec::<f32>().unwrap());
    let bv = b.map(|b| b.to_vec::<f32>().unwrap());
    let d = xs.len() - 2;
    let (n, cout, cin_g) = (xs[0], ws[0], ws[1]);
    let cout_g = cout / groups;
    let ksp = &ws[2..];
    let osp: Vec<usize> = (0..d)
        .map(|i| (xs[2 + i] + pads[i].0 + pads[i].1 - dil[i] * (ksp[i] - 1) - 1) / stride[i] + 1)
        .collect();
    let mut oshape = vec![n, cout];
    oshape.extend(&osp);
    let total: usize = oshape.iter().product();
    let kn: usize = ksp.iter().product();
    let mut out = vec![0.0f32; total];
    for (flat, o) in out.iter_mut().enumerate() {
        let idx = unravel(flat, &oshape);
        let (ni, co) = (idx[0], idx[1]);
        let g = co / cout_g;
        let mut acc = bv.as_ref().map_or(0.0, |b| b[co]) as f64;
        for ci in 0..cin_g {
            for kf in 0..kn {
                let k = unravel(kf, ksp);
                let mut pos = vec![ni, g * cin_g + ci];
                let mut inside = true;
                for i in 0..d {
                    let p = (idx[2 + i] * stride[i] + k[i] * dil[i]) as isize - pads[i].0 as isize;
                    if p < 0 || p >= xs[2 + i] as isize {
                        inside = false;
                    }
                    pos.push(p.max(0) as usize);
                }
                if inside {
                    let mut widx = vec![co, ci];
                    widx.extend(&k);
                    acc += xv[ravel(&pos, xs)] as f64 * wv[ravel(&widx, ws)] as f64;
                }
            }
        }
        *o = acc as f32;
    }
    (out, oshape)
}

/// Direct transposed convolution (PyTorch semantics).
#[allow(clippy::too_many_arguments)]
fn ref_conv_t(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: &[usize],
    pad: &[usize],
    out_pad: &[usize],
    dil: &[usize],
    groups: usize,
) -> (Vec<f32>, Vec<usize>) {
    let (xs, ws) = (x.shape(), w.shape());
    let (xv, wv) = (x.to_vec::<f32>().unwrap(), w.to_vec::<f32>().unwrap());
    let d = xs.len() - 2;
    let (n, cin, cout_g) = (xs[0], xs[1], ws[1]);
    let cin_g = cin / groups;
    let ksp = &ws[2..];
    let osp: Vec<usize> = (0..d)
        .map(|i| (xs[2 + i] - 1) * stride[i] + dil[i] * (ksp[i] - 1) + out_pad[i] + 1 - 2 * pad[i])
        .collect();
    let mut oshape = vec![n, cout_g * groups];
    oshape.extend(&osp);
    let mut out = vec![0.0f64; oshape.iter().product()];
    if let Some(b) = b {
        let bv = b.to_vec::<f32>().unwrap();
        for (flat, o) in out.iter_mut().enumerate() {
            *o = bv[unravel(flat, &oshape)[1]] as f64;
        }
    }
    let kn: usize = ksp.iter().product();
    for (flat, &xval) in xv.iter().enumerate() {
        let idx = unravel(flat, xs);
        let (ni, ci) = (idx[0], idx[1]);
        let g = ci / cin_g;
        for cog in 0..cout_g {
            for kf in 0..kn {
                let k = unravel(kf, ksp);
                let mut pos = vec![ni, g * cout_g + cog];
                let mut inside = true;
                for i in 0..d {
                    let p = (idx[2 + i] * stride[i] + k[i] * dil[i]) as isize - pad[i] as isize;
                    if p < 0 || p >= osp[i] as isize {
                        inside = false;
                    }
                    pos.push(p.max(0) as usize);
                }
                if inside {
                    let mut widx = vec![ci, cog];
                    widx.extend(&k);
                    out[ravel(&pos, &oshape)] += xval as f64 * wv[ravel(&widx, ws)] as f64;
                }
            }
        }
    }
    (out.into_iter().map(|v| v as f32).collect(), oshape)
}

/// TF/Keras SAME padding of one dim.
fn same_pad(input: usize, k: usize, s: usize, d: usize) -> (usize, usize) {
    let out = input.div_ceil(s);
    let total = ((out - 1) * s + d * (k - 1) + 1).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// One forward configuration: shapes and options.
struct Case {
    x: Vec<usize>,
    w: Vec<usize>,
    stride: Vec<usize>,
    padding: Padding,
    dil: Vec<usize>,
    groups: usize,
    bias: bool,
}

fn case(
    x: &[usize],
    w: &[usize],
    stride: &[usize],
    padding: Padding,
    dil: &[usize],
    groups: usize,
    bias: bool,
) -> Case {
    Case {
        x: x.to_vec(),
        w: w.to_vec(),
        stride: stride.to_vec(),
        padding,
        dil: dil.to_vec(),
        groups,
        bias,
    }
}

impl Case {
    fn opts(&self) -> ConvOpts {
        ConvOpts::new()
            .stride(&self.stride)
            .padding(self.padding.clone())
            .dilation(&self.dil)
            .groups(self.groups)
    }
    fn pads(&self) -> Vec<(usize, usize)> {
        let d = self.x.len() - 2;
        match &self.padding {
            Padding::Valid => vec![(0, 0); d],
            Padding::Explicit(p) if p.len() == 1 => vec![p[0]; d],
            Padding::Explicit(p) => p.clone(),
            Padding::Same => (0..d)
                .map(|i| same_pad(self.x[2 + i], self.w[2 + i], self.stride[i], self.dil[i]))
                .collect(),
        }
    }
    fn inputs(&self, seed: u64) -> Vec<Tensor> {
        let mut v = vec![
            uniform(&self.x, -1.0, 1.0, seed),
            uniform(&self.w, -1.0, 1.0, seed + 1),
        ];
        if self.bias {
            v.push(uniform(&[self.w[0]], -1.0, 1.0, seed + 2));
        }
        v
    }
    fn run(&self, t: &[Tensor]) -> Result<Tensor> {
        let b = t.get(2);
        match self.x.len() {
            3 => t[0].conv1d(&t[1], b, &self.opts()),
            4 => t[0].conv2d(&t[1], b, &self.opts()),
            _ => t[0].conv3d(&t[1], b, &self.opts()),
        }
    }
}

fn cases() -> Vec<Case> {
    use Padding::*;
    vec![
        // 2-d: plain, strided, SAME (odd and even sizes), asymmetric explicit padding, dilation.
        case(
            &[2, 3, 7, 6],
            &[4, 3, 3, 3],
            &[1, 1],
            Valid,
            &[1, 1],
            1,
            true,
        ),
        case(
            &[2, 2, 7, 6],
            &[3, 2, 3, 2],
            &[2, 1],
            Valid,
            &[1, 1],
            1,
            false,
        ),
        case(
            &[1, 2, 7, 7],
            &[3, 2, 3, 3],
            &[2, 2],
            Same,
            &[1, 1],
            1,
            true,
        ),
        case(
            &[2, 2, 6, 8],
            &[2, 2, 4, 3],
            &[2, 3],
            Same,
            &[1, 1],
            1,
            true,
        ),
        case(
            &[1, 2, 6, 6],
            &[2, 2, 2, 2],
            &[1, 1],
            Same,
            &[1, 1],
            1,
            false,
        ),
        case(
            &[2, 2, 5, 6],
            &[3, 2, 3, 3],
            &[1, 2],
            Explicit(vec![(2, 0), (1, 3)]),
            &[1, 1],
            1,
            true,
        ),
        case(
            &[1, 2, 9, 8],
            &[2, 2, 3, 3],
            &[1, 1],
            Explicit(vec![(1, 1)]),
            &[2, 3],
            1,
            true,
        ),
        case(
            &[1, 2, 7, 7],
            &[2, 2, 3, 2],
            &[2, 1],
            Same,
            &[2, 2],
            1,
            false,
        ),
        // Groups, depthwise (multiplier 1 and 2), pointwise.
        case(
            &[2, 4, 5, 5],
            &[6, 2, 3, 3],
            &[1, 1],
            Explicit(vec![(1, 1)]),
            &[1, 1],
            2,
            true,
        ),
        case(
            &[2, 3, 6, 5],
            &[3, 1, 3, 3],
            &[1, 1],
            Same,
            &[1, 1],
            3,
            true,
        ),
        case(
            &[2, 2, 7, 6],
            &[4, 1, 3, 2],
            &[2, 2],
            Explicit(vec![(1, 0), (0, 1)]),
            &[1, 2],
            2,
            false,
        ),
        case(
            &[3, 4, 3, 4],
            &[5, 4, 1, 1],
            &[1, 1],
            Valid,
            &[1, 1],
            1,
            true,
        ),
        case(
            &[2, 4, 3, 3],
            &[6, 2, 1, 1],
            &[1, 1],
            Valid,
            &[1, 1],
            2,
            false,
        ),
        case(
            &[2, 3, 5, 5],
            &[4, 3, 1, 1],
            &[2, 2],
            Valid,
            &[1, 1],
            1,
            true,
        ),
        // Output rows of 16 or more use the row-wise im2col (shorter ones an offset table):
        // stride 1 with equal row lengths, stride 2, stride 1 valid.
        case(
            &[2, 2, 3, 20],
            &[3, 2, 2, 3],
            &[1, 1],
            Same,
            &[1, 1],
            1,
            true,
        ),
        case(
            &[1, 2, 4, 40],
            &[2, 2, 3, 3],
            &[1, 2],
            Explicit(vec![(1, 1), (2, 1)]),
            &[1, 2],
            1,
            true,
        ),
        case(
            &[1, 2, 3, 19],
            &[2, 2, 2, 3],
            &[1, 1],
            Valid,
            &[1, 1],
            1,
            false,
        ),
        // 1-d.
        case(
            &[2, 2, 60],
            &[3, 2, 4],
            &[3],
            Explicit(vec![(2, 1)]),
            &[1],
            1,
            true,
        ),
        case(&[1, 2, 30], &[2, 2, 3], &[1], Valid, &[1], 1, false),
        case(
            &[2, 3, 9],
            &[4, 3, 3],
            &[2],
            Explicit(vec![(1, 2)]),
            &[1],
            1,
            true,
        ),
        case(&[2, 4, 8], &[4, 1, 3], &[1], Same, &[2], 4, false),
        case(&[1, 2, 10], &[2, 2, 4], &[3], Same, &[1], 1, true),
        // 3-d, including grouped and a long last dim.
        case(
            &[1, 1, 2, 3, 18],
            &[2, 1, 2, 2, 3],
            &[1, 1, 1],
            Same,
            &[1, 1, 1],
            1,
            true,
        ),
        case(
            &[1, 2, 4, 5, 4],
            &[3, 2, 2, 3, 2],
            &[1, 2, 1],
            Explicit(vec![(1, 0), (0, 1), (1, 1)]),
            &[1, 1, 2],
            1,
            true,
        ),
        case(
            &[2, 2, 4, 4, 3],
            &[2, 1, 3, 3, 1],
            &[1, 1, 1],
            Same,
            &[1, 1, 1],
            2,
            false,
        ),
    ]
}

#[test]
fn conv_forward_matches_reference() {
    // Also exercise every batching of images into GEMMs: per image, a few, the whole batch.
    for cols in MODES {
        with_gemm_columns(cols, || {
            for (i, c) in cases().iter().enumerate() {
                let t = c.inputs(10 * i as u64);
                let y = c.run(&t).unwrap();
                let (want, shape) = ref_conv(
                    &t[0],
                    &t[1],
                    t.get(2),
                    &c.stride,
                    &c.pads(),
                    &c.dil,
                    c.groups,
                );
                assert_eq!(y.shape(), shape.as_slice(), "case {i}");
                assert_close(&y.to_vec::<f32>().unwrap(), &want, 1e-4, 1e-5);
            }
        });
    }
}

#[test]
fn conv_gradients() {
    for cols in MODES {
        with_gemm_columns(cols, || {
            for (i, c) in cases().iter().enumerate() {
                let t = c.inputs(100 + 10 * i as u64);
                GradCheck::default()
                    .run(|t| c.run(t), &t)
                    .unwrap_or_else(|e| panic!("case {i} (columns {cols}): {e}"));
            }
        });
    }
}

#[test]
fn conv_gradients_non_contiguous_inputs() {
    // Input given as a permuted view, weight as a sliced view.
    let x = uniform(&[5, 2, 3, 4], -1.0, 1.0, 1);
    let w = uniform(&[3, 3, 6, 3], -1.0, 1.0, 2);
    let b = uniform(&[3], -1.0, 1.0, 3);
    check(
        |t| {
            t[0].permute(&[1, 2, 0, 3])?.conv2d(
                &t[1].slice(2, 0, 6, 2)?,
                Some(&t[2]),
                &ConvOpts::new().pad(1),
            )
        },
        &[x, w, b],
    );
}

#[test]
fn conv_batching_modes_agree_on_gradients() {
    // The same backward with one GEMM per image and with the whole batch in one GEMM.
    let x = uniform(&[5, 3, 4, 4], -1.0, 1.0, 7).requires_grad_(true);
    let w = uniform(&[4, 3, 3, 3], -1.0, 1.0, 8).requires_grad_(true);
    let b = uniform(&[4], -1.0, 1.0, 9).requires_grad_(true);
    let gy = uniform(&[5, 4, 2, 2], -1.0, 1.0, 10);
    let grads = |cols: usize| {
        with_gemm_columns(cols, || {
            let y = x
                .conv2d(&w, Some(&b), &ConvOpts::new().stride(&[2]).pad(1))
                .unwrap();
            let l = y.mul(&gy).unwrap().sum_all().unwrap();
            let g = ferrovision_tensor::grad(&l, &[&x, &w, &b]).unwrap();
            g.into_iter()
                .map(|t| t.unwrap().to_vec::<f32>().unwrap())
                .collect::<Vec<_>>()
        })
    };
    let (a, c) = (grads(1), grads(100_000));
    for (p, q) in a.iter().zip(&c) {
        assert_close(p, q, 1e-5, 1e-5);
    }
}

#[test]
fn conv2d_relu_forward_and_backward() {
    let x = uniform(&[2, 3, 6, 5], -1.0, 1.0, 20);
    let w = uniform(&[4, 3, 3, 3], -1.0, 1.0, 21);
    let b = uniform(&[4], -1.0, 1.0, 22);
    for (opts, w) in [
        (ConvOpts::new().pad(1), w.clone()),
        (
            ConvOpts::new().stride(&[2]).padding(Padding::Same),
            w.clone(),
        ),
        // Depthwise path.
        (
            ConvOpts::new().pad(1).groups(3),
            uniform(&[6, 1, 3, 3], -1.0, 1.0, 23),
        ),
        // Pointwise path.
        (ConvOpts::new(), uniform(&[4, 3, 1, 1], -1.0, 1.0, 24)),
    ] {
        let b = b.narrow(0, 0, 4).unwrap();
        let b = if w.shape()[0] == 6 {
            uniform(&[6], -1.0, 1.0, 25)
        } else {
            b
        };
        let plain = x.conv2d(&w, Some(&b), &opts).unwrap().relu().unwrap();
        let fused = x.conv2d_relu(&w, Some(&b), &opts).unwrap();
        assert_close(
            &fused.to_vec::<f32>().unwrap(),
            &plain.to_vec::<f32>().unwrap(),
            1e-6,
            1e-6,
        );
        // Analytic gradients agree with conv2d followed by relu.
        let (xs, ws, bs) = (
            x.clone().requires_grad_(true),
            w.clone().requires_grad_(true),
            b.clone().requires_grad_(true),
        );
        let gy = uniform(plain.shape(), -1.0, 1.0, 26);
        let l1 = xs
            .conv2d_relu(&ws, Some(&bs), &opts)
            .unwrap()
            .mul(&gy)
            .unwrap()
            .sum_all()
            .unwrap();
        let l2 = xs
            .conv2d(&ws, Some(&bs), &opts)
            .unwrap()
            .relu()
            .unwrap()
            .mul(&gy)
            .unwrap()
            .sum_all()
            .unwrap();
        let g1 = ferrovision_tensor::grad(&l1, &[&xs, &ws, &bs]).unwrap();
        let g2 = ferrovision_tensor::grad(&l2, &[&xs, &ws, &bs]).unwrap();
        for (p, q) in g1.iter().zip(&g2) {
            assert_close(
                &p.as_ref().unwrap().to_vec::<f32>().unwrap(),
                &q.as_ref().unwrap().to_vec::<f32>().unwrap(),
                1e-5,
                1e-6,
            );
        }
    }
}

#[test]
fn conv2d_relu_gradcheck() {
    // Finite differences need pre-activations away from the ReLU kink: perturbing one value by
    // 0.01 moves a pre-activation by at most 0.01 here, so they must stay > 0.02 from 0.
    let opts = ConvOpts::new().stride(&[2]).pad(1);
    // The first seed (deterministic) whose pre-activations are all > 0.02 from 0, some negative.
    let (x, w, b) = (30u64..)
        .map(|s| {
            (
                uniform(&[1, 2, 4, 4], -1.0, 1.0, s),
                uniform(&[2, 2, 2, 2], -1.0, 1.0, s + 1000),
                uniform(&[2], -1.0, 1.0, s + 2000),
            )
        })
        .find(|(x, w, b)| {
            let pre = x
                .conv2d(w, Some(b), &opts)
                .unwrap()
                .to_vec::<f32>()
                .unwrap();
            pre.iter().all(|v| v.abs() > 0.02) && pre.iter().any(|&v| v < 0.0)
        })
        .unwrap();
    check(|t| t[0].conv2d_relu(&t[1], Some(&t[2]), &opts), &[x, w, b]);
}

/// One transposed-convolution configuration.
struct TCase {
    x: Vec<usize>,
    w: Vec<usize>,
    stride: Vec<usize>,
    pad: Vec<usize>,
    out_pad: Vec<usize>,
    dil: Vec<usize>,
    groups: usize,
    bias: bool,
}

#[allow(clippy::too_many_arguments)]
fn tcase(
    x: &[usize],
    w: &[usize],
    stride: &[usize],
    pad: &[usize],
    out_pad: &[usize],
    dil: &[usize],
    groups: usize,
    bias: bool,
) -> TCase {
    TCase {
        x: x.to_vec(),
        w: w.to_vec(),
        stride: stride.to_vec(),
        pad: pad.to_vec(),
        out_pad: out_pad.to_vec(),
        dil: dil.to_vec(),
        groups,
        bias,
    }
}

impl TCase {
    fn opts(&self) -> ConvTransposeOpts {
        ConvTransposeOpts::new()
            .stride(&self.stride)
            .padding(&self.pad)
            .output_padding(&self.out_pad)
            .dilation(&self.dil)
            .groups(self.groups)
    }
    fn inputs(&self, seed: u64) -> Vec<Tensor> {
        let mut v = vec![
            uniform(&self.x, -1.0, 1.0, seed),
            uniform(&self.w, -1.0, 1.0, seed + 1),
        ];
        if self.bias {
            v.push(uniform(&[self.w[1] * self.groups], -1.0, 1.0, seed + 2));
        }
        v
    }
    fn run(&self, t: &[Tensor]) -> Result<Tensor> {
        let b = t.get(2);
        match self.x.len() {
            3 => t[0].conv_transpose1d(&t[1], b, &self.opts()),
            4 => t[0].conv_transpose2d(&t[1], b, &self.opts()),
            _ => t[0].conv_transpose3d(&t[1], b, &self.opts()),
        }
    }
}

fn tcases() -> Vec<TCase> {
    vec![
        tcase(
            &[2, 3, 4, 3],
            &[3, 2, 3, 3],
            &[1, 1],
            &[0, 0],
            &[0, 0],
            &[1, 1],
            1,
            true,
        ),
        tcase(
            &[2, 2, 3, 4],
            &[2, 3, 3, 2],
            &[2, 2],
            &[1, 0],
            &[1, 0],
            &[1, 1],
            1,
            true,
        ),
        tcase(
            &[1, 4, 3, 3],
            &[4, 1, 3, 3],
            &[2, 1],
            &[1, 1],
            &[0, 0],
            &[2, 1],
            2,
            false,
        ),
        tcase(
            &[2, 2, 3, 3],
            &[2, 1, 2, 2],
            &[3, 2],
            &[0, 1],
            &[2, 1],
            &[1, 1],
            2,
            true,
        ),
        tcase(
            &[1, 3, 3, 3],
            &[3, 2, 1, 1],
            &[1, 1],
            &[0, 0],
            &[0, 0],
            &[1, 1],
            1,
            false,
        ),
        tcase(
            &[1, 2, 2, 17],
            &[2, 2, 2, 3],
            &[1, 2],
            &[0, 1],
            &[0, 1],
            &[1, 1],
            1,
            true,
        ),
        tcase(&[2, 3, 5], &[3, 2, 3], &[2], &[1], &[1], &[1], 1, true),
        tcase(&[1, 2, 20], &[2, 2, 3], &[2], &[1], &[0], &[1], 1, false),
        tcase(&[1, 4, 4], &[4, 3, 2], &[3], &[0], &[2], &[2], 2, false),
        tcase(&[1, 2, 5], &[2, 2, 3], &[1], &[2], &[1], &[2], 1, true),
        tcase(
            &[1, 2, 2, 3, 2],
            &[2, 2, 2, 2, 3],
            &[2, 1, 2],
            &[0, 1, 1],
            &[1, 0, 0],
            &[1, 1, 1],
            1,
            true,
        ),
    ]
}

#[test]
fn conv_transpose_forward_matches_reference() {
    for (i, c) in tcases().iter().enumerate() {
        let t = c.inputs(300 + 10 * i as u64);
        let y = c.run(&t).unwrap();
        let (want, shape) = ref_conv_t(
            &t[0],
            &t[1],
            t.get(2),
            &c.stride,
            &c.pad,
            &c.out_pad,
            &c.dil,
            c.groups,
        );
        assert_eq!(y.shape(), shape.as_slice(), "case {i}");
        assert_close(&y.to_vec::<f32>().unwrap(), &want, 1e-4, 1e-5);
    }
}

#[test]
fn conv_transpose_gradients() {
    for cols in MODES {
        with_gemm_columns(cols, || {
            for (i, c) in tcases().iter().enumerate() {
                let t = c.inputs(400 + 10 * i as u64);
                GradCheck::default()
                    .run(|t| c.run(t), &t)
                    .unwrap_or_else(|e| panic!("case {i} (columns {cols}): {e}"));
            }
        });
    }
}

#[test]
fn conv_transpose_is_the_adjoint_of_conv() {
    // <conv(x, w), y> == <x, conv_transpose(y, w)> for matching options.
    let x = uniform(&[2, 4, 7, 6], -1.0, 1.0, 50);
    let w = uniform(&[6, 2, 3, 3], -1.0, 1.0, 51);
    let y = x
        .conv2d(&w, None, &ConvOpts::new().stride(&[2]).pad(1).groups(2))
        .unwrap();
    let gy = uniform(y.shape(), -1.0, 1.0, 52);
    let xt = gy
        .conv_transpose2d(
            &w,
            None,
            &ConvTransposeOpts::new()
                .stride(&[2])
                .pad(1)
                .output_padding(&[0, 1])
                .groups(2),
        )
        .unwrap();
    assert_eq!(xt.shape(), x.shape());
    let lhs = y.mul(&gy).unwrap().sum_all().unwrap().item().unwrap();
    let rhs = x.mul(&xt).unwrap().sum_all().unwrap().item().unwrap();
    assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
}

#[test]
fn options_builders() {
    let o = ConvOpts::new()
        .stride(&[2])
        .pad(1)
        .dilation(&[1, 2])
        .groups(3);
    assert_eq!(o.stride, vec![2]);
    assert_eq!(o.padding, Padding::Explicit(vec![(1, 1)]));
    assert_eq!(o.dilation, vec![1, 2]);
    assert_eq!(o.groups, 3);
    assert_eq!(ConvOpts::default(), ConvOpts::new());
    assert_eq!(ConvOpts::new().padding, Padding::Valid);
    let t = ConvTransposeOpts::new()
        .stride(&[2])
        .padding(&[1])
        .output_padding(&[1])
        .dilation(&[1])
        .groups(2);
    assert_eq!(
        (t.stride, t.padding, t.output_padding, t.dilation, t.groups),
        (vec![2], vec![1], vec![1], vec![1], 2)
    );
}

#[test]
fn errors_name_op_and_shapes() {
    let x = Tensor::zeros(&[1, 3, 5, 5]);
    let err = |r: Result<Tensor>| r.unwrap_err().to_string();
    // Channel mismatch.
    let e = err(x.conv2d(&Tensor::zeros(&[4, 2, 3, 3]), None, &ConvOpts::new()));
    assert!(
        e.starts_with("conv2d:") && e.contains("[1, 3, 5, 5]") && e.contains("[4, 2, 3, 3]"),
        "{e}"
    );
    // Groups that do not divide the channels.
    let e = err(x.conv2d(
        &Tensor::zeros(&[4, 1, 3, 3]),
        None,
        &ConvOpts::new().groups(2),
    ));
    assert!(e.starts_with("conv2d:") && e.contains("groups"), "{e}");
    let e = err(x.conv2d(
        &Tensor::zeros(&[4, 3, 3, 3]),
        None,
        &ConvOpts::new().groups(0),
    ));
    assert!(e.starts_with("conv2d:"), "{e}");
    // Kernel larger than the padded input.
    let e = err(x.conv2d(&Tensor::zeros(&[4, 3, 7, 3]), None, &ConvOpts::new()));
    assert!(e.starts_with("conv2d:") && e.contains("larger"), "{e}");
    assert!(x
        .conv2d(&Tensor::zeros(&[4, 3, 7, 3]), None, &ConvOpts::new().pad(1))
        .is_ok());
    let e = err(x.conv2d(
        &Tensor::zeros(&[4, 3, 3, 3]),
        None,
        &ConvOpts::new().dilation(&[3]),
    ));
    assert!(e.contains("larger"), "{e}");
    // Bias shape, ranks, option lengths.
    let e = err(x.conv2d(
        &Tensor::zeros(&[4, 3, 3, 3]),
        Some(&Tensor::zeros(&[3])),
        &ConvOpts::new(),
    ));
    assert!(e.starts_with("conv2d:") && e.contains("[3]"), "{e}");
    let e = err(x.conv1d(&Tensor::zeros(&[4, 3, 3]), None, &ConvOpts::new()));
    assert!(
        e.starts_with("conv1d:") && e.contains("[1, 3, 5, 5]"),
        "{e}"
    );
    let e = err(x.conv2d(&Tensor::zeros(&[4, 3, 3]), None, &ConvOpts::new()));
    assert!(e.starts_with("conv2d:") && e.contains("[4, 3, 3]"), "{e}");
    let e = err(x.conv2d(
        &Tensor::zeros(&[4, 3, 3, 3]),
        None,
        &ConvOpts::new().stride(&[1, 1, 1]),
    ));
    assert!(e.starts_with("conv2d:") && e.contains("stride"), "{e}");
    let e = err(x.conv2d(
        &Tensor::zeros(&[4, 3, 3, 3]),
        None,
        &ConvOpts::new().stride(&[0]),
    ));
    assert!(e.contains("stride"), "{e}");
    let e = err(x.conv2d(
        &Tensor::zeros(&[4, 3, 3, 3]),
        None,
        &ConvOpts::new().padding(Padding::Explicit(vec![(1, 1); 3])),
    ));
    assert!(e.contains("padding"), "{e}");
    // Transposed: weight's first dim must be Cin; output padding bounds; empty output.
    let e = err(x.conv_transpose2d(
        &Tensor::zeros(&[2, 3, 3, 3]),
        None,
        &ConvTransposeOpts::new(),
    ));
    assert!(
        e.starts_with("conv_transpose2d:") && e.contains("[2, 3, 3, 3]"),
        "{e}"
    );
    let e = err(x.conv_transpose2d(
        &Tensor::zeros(&[3, 2, 3, 3]),
        None,
        &ConvTransposeOpts::new().stride(&[2]).output_padding(&[2]),
    ));
    assert!(e.contains("output_padding"), "{e}");
    let e = err(Tensor::zeros(&[1, 3, 1, 1]).conv_transpose2d(
        &Tensor::zeros(&[3, 2, 1, 1]),
        None,
        &ConvTransposeOpts::new().pad(1),
    ));
    assert!(
        e.starts_with("conv_transpose2d:") && e.contains("padding"),
        "{e}"
    );
    let e = err(x.conv_transpose2d(
        &Tensor::zeros(&[3, 2, 3, 3]),
        None,
        &ConvTransposeOpts::new().groups(2),
    ));
    assert!(e.contains("groups"), "{e}");
}

#[test]
fn empty_batch() {
    let x = Tensor::zeros(&[0, 3, 5, 5]).requires_grad_(true);
    let w = uniform(&[4, 3, 3, 3], -1.0, 1.0, 1).requires_grad_(true);
    let y = x.conv2d(&w, None, &ConvOpts::new()).unwrap();
    assert_eq!(y.shape(), &[0, 4, 3, 3]);
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(w.grad().unwrap().to_vec::<f32>().unwrap(), vec![0.0; 108]);
}

/// Three steps of: `x ⋆ w` with gradients on (training: weights packed per call or per weight
/// version) and off (inference: the filter cache's packed forms) under `algo` give the same
/// bits; then `w` is written in place, which the cached forms must follow.
fn assert_inference_follows_training(
    algo: ferrovision_tensor::ops::conv::ConvAlgo,
    x: &Tensor,
    w: &Tensor,
    opts: &ConvOpts,
    seed: u64,
    case: &str,
) {
    for step in 0..3 {
        let (train, infer) = common::with_algo(algo, || {
            let train = x.conv2d(w, None, opts).unwrap().to_vec::<f32>().unwrap();
            let infer = ferrovision_tensor::no_grad(|| x.conv2d(w, None, opts))
                .unwrap()
                .to_vec::<f32>()
                .unwrap();
            (train, infer)
        });
        assert!(
            train
                .iter()
                .zip(&infer)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{case} ({algo:?}) step {step}: inference differs from training"
        );
        let next = uniform(w.shape(), -0.2, 0.2, seed + 20 + step);
        w.assign_from_slice_(&next.to_vec::<f32>().unwrap())
            .unwrap();
    }
}

/// In inference the im2col and 1×1 GEMMs read the weights packed once (the filter cache's
/// panels); with gradients on they pack per call. Same sums in the same order: the same bits,
/// also after the weights are written in place (the cached panels must follow).
#[test]
fn inference_weight_panels_match_and_follow_updates() {
    use ferrovision_tensor::ops::conv::ConvAlgo;
    // (input shape, out channels, kernel, stride, groups)
    let cases: [([usize; 4], usize, usize, usize, usize); 6] = [
        ([3, 16, 9, 9], 24, 3, 1, 1),
        ([2, 32, 7, 7], 64, 1, 1, 1),
        ([4, 12, 10, 10], 18, 3, 2, 3),
        ([1, 40, 14, 14], 600, 1, 1, 1),
        ([1, 40, 7, 7], 600, 1, 1, 1),
        ([2, 16, 7, 7], 64, 3, 1, 2),
    ];
    for (i, (shape, cout, k, stride, groups)) in cases.into_iter().enumerate() {
        let seed = 900 + 10 * i as u64;
        let x = uniform(&shape, -1.0, 1.0, seed);
        let w = uniform(&[cout, shape[1] / groups, k, k], -0.2, 0.2, seed + 1);
        let opts = ConvOpts::new()
            .stride(&[stride, stride])
            .pad(k / 2)
            .groups(groups);
        let case = format!("case {i} (packed weights)");
        assert_inference_follows_training(ConvAlgo::Im2col, &x, &w, &opts, seed, &case);
    }
}

/// In inference the whole-batch Winograd filters and the dense small-map matrix are kept in
/// the GEMM's B-panel layout; with gradients on they are made per call (or per weight
/// version) in the plain layout. Same sums in the same order: the same bits, also after the
/// weights are written in place.
#[test]
fn inference_b_panels_match_and_follow_updates() {
    use ferrovision_tensor::ops::conv::ConvAlgo;
    // (algorithm, input shape, out channels, padding)
    let cases = [
        (ConvAlgo::WinogradWide, [3, 16, 4, 4], 40, 1),
        (ConvAlgo::WinogradWide, [2, 35, 7, 7], 33, 1),
        (ConvAlgo::Dense, [4, 24, 2, 2], 40, 1),
        (ConvAlgo::Dense, [33, 8, 2, 2], 20, 1),
        (ConvAlgo::Dense, [2, 16, 1, 1], 70, 1),
    ];
    for (i, (algo, shape, cout, pad)) in cases.into_iter().enumerate() {
        let seed = 1300 + 10 * i as u64;
        let x = uniform(&shape, -1.0, 1.0, seed);
        let w = uniform(&[cout, shape[1], 3, 3], -0.2, 0.2, seed + 1);
        let opts = ConvOpts::new().pad(pad);
        let case = format!("case {i} (B panels)");
        assert_inference_follows_training(algo, &x, &w, &opts, seed, &case);
    }
}

/// The automatic choice in inference, where the Winograd filters are cached: the whole-batch
/// layout from 4 tiles in the batch on layers of 64 channels or more (a batch-1 8×8 map), while
/// training (filters transformed every call) keeps im2col there; one tile stays on im2col.
/// Checked by bits against each algorithm forced.
#[test]
fn auto_takes_cached_winograd_on_small_batches_in_inference() {
    use ferrovision_tensor::ops::conv::ConvAlgo;
    let opts = ConvOpts::new().pad(1);
    let run = |algo, x: &Tensor, w: &Tensor, grad: bool| {
        common::with_algo(algo, || {
            let y = if grad {
                x.conv2d(w, None, &opts)
            } else {
                ferrovision_tensor::no_grad(|| x.conv2d(w, None, &opts))
            };
            y.unwrap().to_vec::<f32>().unwrap()
        })
    };
    // (input shape, whether inference takes Winograd)
    for (i, (shape, winograd)) in [([1, 64, 8, 8], true), ([1, 64, 4, 4], false)]
        .into_iter()
        .enumerate()
    {
        let seed = 1500 + 10 * i as u64;
        let x = uniform(&shape, -1.0, 1.0, seed);
        let w = uniform(&[64, 64, 3, 3], -0.2, 0.2, seed + 1);
        let auto = run(ConvAlgo::Auto, &x, &w, false);
        let wide = run(ConvAlgo::WinogradWide, &x, &w, false);
        let i2c = run(ConvAlgo::Im2col, &x, &w, false);
        assert_ne!(wide, i2c, "{shape:?}: the two algorithms round alike");
        assert_eq!(auto == wide, winograd, "{shape:?}: inference");
        assert_eq!(auto == i2c, !winograd, "{shape:?}: inference");
        assert_close(&auto, &i2c, 1e-4, 1e-4);
        let train = run(ConvAlgo::Auto, &x, &w, true);
        assert_eq!(
            train,
            run(ConvAlgo::Im2col, &x, &w, true),
            "{shape:?}: training"
        );
    }
}

#[test]
fn training_on_few_tiles_takes_whole_batch_winograd_with_filters_by_blocks() {
    // ResNet-18's 4 px stage at 64 px input, batch 16: 16 tiles, the filters 8x the tiles'
    // data, so training transforms them block by block (forward, input gradient) and sums the
    // weight gradient by blocks. The values agree with im2col to rounding.
    use ferrovision_tensor::ops::conv::ConvAlgo;
    let opts = ConvOpts::new().pad(1);
    let x0 = uniform(&[16, 256, 4, 4], -1.0, 1.0, 1600);
    let w0 = uniform(&[256, 256, 3, 3], -0.1, 0.1, 1601);
    let dy = uniform(&[16, 256, 4, 4], -1.0, 1.0, 1602);
    let run = |algo| {
        common::with_algo(algo, || {
            let x = x0.clone().requires_grad_(true);
            let w = w0.clone().requires_grad_(true);
            let y = x.conv2d(&w, None, &opts).unwrap();
            y.mul(&dy).unwrap().sum_all().unwrap().backward().unwrap();
            let v = |t: Tensor| t.to_vec::<f32>().unwrap();
            (v(y.detach()), v(x.grad().unwrap()), v(w.grad().unwrap()))
        })
    };
    let auto = run(ConvAlgo::Auto);
    let i2c = run(ConvAlgo::Im2col);
    assert_eq!(
        auto,
        run(ConvAlgo::WinogradWide),
        "Auto takes the whole-batch layout"
    );
    assert_ne!(auto.0, i2c.0, "the two algorithms round alike");
    assert_close(&auto.0, &i2c.0, 1e-4, 1e-4);
    assert_close(&auto.1, &i2c.1, 1e-4, 1e-4);
    assert_close(&auto.2, &i2c.2, 1e-3, 1e-4);
}
