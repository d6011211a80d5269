//! Winograd F(4×4, 3×3) against a double-precision direct correlation.

use super::*;
use crate::kernels::{set_isa_override, Isa};

use crate::kernels::test_values as values;

/// Direct correlation in f64: `y[n][k][o] = Σ_c Σ_ij w[k][c][i][j] x[n][c][o + (i, j) − pad]`,
/// and the sum of the absolute products (the scale of the rounding error).
fn direct(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &Geometry) -> (Vec<f64>, Vec<f64>) {
    let [ih, iw] = g.input;
    let [oh, ow] = g.out;
    let mut y = vec![0.0f64; g.n * g.cout * oh * ow];
    let mut scale = vec![0.0f64; y.len()];
    for n in 0..g.n {
        for k in 0..g.cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias.map_or(0.0, |b| b[k] as f64);
                    let mut mag = acc.abs();
                    for c in 0..g.cin {
                        for i in 0..3 {
                            for j in 0..3 {
                                let yy = (oy + i) as isize - g.pad[0] as isize;
                                let xx = (ox + j) as isize - g.pad[1] as isize;
                                if yy < 0 || xx < 0 || yy >= ih as isize || xx >= iw as isize {
                                    continue;
                                }
                                let xv = x[((n * g.cin + c) * ih + yy as usize) * iw + xx as usize];
                                let wv = w[((k * g.cin + c) * 3 + i) * 3 + j];
                                acc += xv as f64 * wv as f64;
                                mag += (xv as f64 * wv as f64).abs();
                            }
                        }
                    }
                    let at = ((n * g.cout + k) * oh + oy) * ow + ox;
                    y[at] = acc;
                    scale[at] = mag;
                }
            }
        }
    }
    (y, scale)
}

fn run(x: &[f32], w: &[f32], bias: Option<&[f32]>, relu: bool, g: &Geometry) -> Vec<f32> {
    let mut u = vec![0.0; g.filter_len()];
    transform_filter(w, g.cout, g.cin, false, false, &mut u);
    let mut y = vec![f32::NAN; g.n * g.cout * g.out[0] * g.out[1]];
    conv3x3(x, &u, bias, None, relu, g, &mut y);
    y
}

/// The largest error relative to the scale of the products (`Σ |w·x|` per output).
fn worst_error(got: &[f32], want: &[f64], scale: &[f64], relu: bool) -> f64 {
    got.iter()
        .zip(want)
        .zip(scale)
        .map(|((&g, &w), &s)| {
            let w = if relu { w.max(0.0) } else { w };
            (g as f64 - w).abs() / s.max(1e-6)
        })
        .fold(0.0, f64::max)
}

/// Every case with no bias, a bias, and a bias + ReLU against the direct correlation: asserts
/// the bound and returns the worst error (inputs seeded from `seed`).
fn check_against_direct(layout: Runner, cases: &[Geometry], seed: u64) -> f64 {
    let mut worst = 0.0f64;
    for (i, g) in cases.iter().enumerate() {
        let x = values(g.n * g.cin * g.input[0] * g.input[1], seed + i as u64);
        let w = values(g.cout * g.cin * 9, seed + 100 + i as u64);
        let b = values(g.cout, seed + 200 + i as u64);
        for (bias, relu) in [(None, false), (Some(&b[..]), false), (Some(&b[..]), true)] {
            let got = layout(&x, &w, bias, relu, g);
            let (want, scale) = direct(&x, &w, bias, g);
            let err = worst_error(&got, &want, &scale, relu);
            assert!(
                err <= TOL,
                "{g:?} bias {} relu {relu}: error {err:e}",
                bias.is_some()
            );
            worst = worst.max(err);
        }
    }
    worst
}

/// Error bound relative to `Σ |w·x|`: F(4×4, 3×3) in f32 measures ~3e-6 on these inputs (direct
/// f32 convolution: ~2e-7); the bound leaves room for longer channel sums.
const TOL: f64 = 4e-5;

fn geometry(n: usize, cin: usize, cout: usize, input: [usize; 2], pad: [usize; 2]) -> Geometry {
    // Stride-1 "same"-style output for padding p on both sides: in + 2p − 2.
    let out = [input[0] + 2 * pad[0] - 2, input[1] + 2 * pad[1] - 2];
    Geometry {
        n,
        cin,
        cout,
        input,
        out,
        pad,
    }
}

/// Small geometries at the edges: one-pixel and exactly-one-tile maps, maps that are not whole
/// tiles, no padding and padding 2.
fn edge_geometries() -> Vec<Geometry> {
    vec![
        geometry(1, 1, 1, [3, 3], [0, 0]),
        geometry(1, 1, 1, [1, 1], [1, 1]),
        geometry(2, 3, 5, [7, 9], [1, 1]),
        geometry(3, 4, 2, [13, 17], [1, 1]),
        geometry(2, 5, 3, [6, 6], [0, 0]),
        geometry(1, 2, 4, [5, 11], [2, 2]),
    ]
}

#[test]
fn matches_direct_correlation_over_shapes_and_padding() {
    let mut cases = edge_geometries();
    cases.extend([
        geometry(2, 16, 16, [32, 32], [1, 1]),
        geometry(9, 8, 8, [8, 8], [1, 1]),
        geometry(1, 3, 3, [70, 37], [1, 0]),
    ]);
    let worst = check_against_direct(run, &cases, 1);
    eprintln!("winograd F(4x4,3x3): worst relative error {worst:e}");
}

#[test]
fn output_larger_and_smaller_than_the_padded_input() {
    // An asymmetric crop (out smaller than in + 2p − 2) and an extension (reads past the input
    // are zero), as the input gradient needs.
    for out in [[4, 5], [9, 10], [1, 1]] {
        let g = Geometry {
            n: 2,
            cin: 3,
            cout: 2,
            input: [6, 7],
            out,
            pad: [2, 1],
        };
        let x = values(g.n * g.cin * 42, 7);
        let w = values(g.cout * g.cin * 9, 8);
        let got = run(&x, &w, None, false, &g);
        let (want, scale) = direct(&x, &w, None, &g);
        let err = worst_error(&got, &want, &scale, false);
        assert!(err <= TOL, "out {out:?}: error {err:e}");
    }
}

#[test]
fn rotated_filters_give_the_input_gradient() {
    // dx[c] = Σ_k rot180(w[k][c]) ⋆ dy[k], padded by 2 − pad: compare with the adjoint of the
    // direct correlation.
    let (n, cin, cout, ih, iw, pad) = (2, 3, 4, 9, 7, 1);
    let fwd = geometry(n, cin, cout, [ih, iw], [pad, pad]);
    let [oh, ow] = fwd.out;
    let w = values(cout * cin * 9, 11);
    let dy = values(n * cout * oh * ow, 12);
    let mut want = vec![0.0f64; n * cin * ih * iw];
    for b in 0..n {
        for k in 0..cout {
            for c in 0..cin {
                for oy in 0..oh {
                    for ox in 0..ow {
                        for i in 0..3 {
                            for j in 0..3 {
                                let yy = (oy + i) as isize - pad as isize;
                                let xx = (ox + j) as isize - pad as isize;
                                if yy < 0 || xx < 0 || yy >= ih as isize || xx >= iw as isize {
                                    continue;
                                }
                                want[((b * cin + c) * ih + yy as usize) * iw + xx as usize] +=
                                    dy[((b * cout + k) * oh + oy) * ow + ox] as f64
                                        * w[((k * cin + c) * 3 + i) * 3 + j] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    let g = Geometry {
        n,
        cin: cout,
        cout: cin,
        input: [oh, ow],
        out: [ih, iw],
        pad: [2 - pad, 2 - pad],
    };
    let scale: f64 = w.iter().map(|v| v.abs() as f64).sum::<f64>() / cin as f64;
    // Tiled, whole-batch, and whole-batch with the filters transformed block by block.
    for (wide, blocks) in [(false, false), (true, false), (true, true)] {
        let mut u = vec![0.0; g.filter_len()];
        transform_filter(&w, cout, cin, true, wide, &mut u);
        let mut dx = vec![f32::NAN; want.len()];
        if blocks {
            let filters = WideFilters::Weights {
                w: &w,
                rotate: true,
            };
            conv3x3_wide(&dy, filters, None, None, false, &g, &mut dx);
        } else if wide {
            conv3x3_wide(&dy, WideFilters::Plain(&u), None, None, false, &g, &mut dx);
        } else {
            conv3x3(&dy, &u, None, None, false, &g, &mut dx);
        }
        for (got, want) in dx.iter().zip(&want) {
            assert!(
                (*got as f64 - want).abs() <= TOL * scale,
                "wide {wide} blocks {blocks}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn filter_layouts_are_transposes_and_thread_independent() {
    let (k, c) = (37, 21);
    let w = values(k * c * 9, 51);
    let plane = k * c;
    for rotate in [false, true] {
        let (outs, ins) = if rotate { (c, k) } else { (k, c) };
        let mut out_major = vec![f32::NAN; XI * plane];
        transform_filter(&w, k, c, rotate, false, &mut out_major);
        let mut in_major = vec![f32::NAN; XI * plane];
        transform_filter(&w, k, c, rotate, true, &mut in_major);
        for xi in 0..XI {
            for o in 0..outs {
                for i in 0..ins {
                    assert_eq!(
                        out_major[xi * plane + o * ins + i].to_bits(),
                        in_major[xi * plane + i * outs + o].to_bits()
                    );
                }
            }
        }
        // A filter transformed alone (plain scalar code) gives the same bits.
        let (o, i) = (outs - 1, ins / 2);
        let (ki, ci) = if rotate { (i, o) } else { (o, i) };
        let f = &w[(ki * c + ci) * 9..][..9];
        let g = |r: usize, s: usize| {
            if rotate {
                f[(2 - r) * 3 + (2 - s)]
            } else {
                f[r * 3 + s]
            }
        };
        let g1 = |v: [f32; 3]| {
            let [g0, g1, g2] = v;
            [
                g0 / 4.0,
                -(g0 + g1 + g2) / 6.0,
                -(g0 - g1 + g2) / 6.0,
                g0 / 24.0 + g1 / 12.0 + g2 / 6.0,
                g0 / 24.0 - g1 / 12.0 + g2 / 6.0,
                g2,
            ]
        };
        let cols: Vec<[f32; A]> = (0..3).map(|s| g1([g(0, s), g(1, s), g(2, s)])).collect();
        for a in 0..A {
            let row = g1([cols[0][a], cols[1][a], cols[2][a]]);
            for b in 0..A {
                assert_eq!(
                    out_major[(a * A + b) * plane + o * ins + i].to_bits(),
                    row[b].to_bits()
                );
            }
        }
        let single = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a one-thread pool")
            .install(|| {
                let mut u = vec![f32::NAN; XI * plane];
                transform_filter(&w, k, c, rotate, false, &mut u);
                u
            });
        assert_eq!(single, out_major);
    }
}

#[test]
fn every_isa_level_and_thread_count_agree() {
    let _guard = crate::kernels::ISA_TEST_LOCK
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // (layout, geometry): the tiled layout on a map of many tiles, the whole-batch one with
    // channel counts that are not multiples of the 16 lanes; and one image (fewer than the
    // threads): the tiled layout's one block with its GEMMs in parallel, the whole-batch
    // layout's transforms split over tiles and output channels.
    let cases: [(Runner, Geometry); 5] = [
        (run, geometry(5, 7, 6, [19, 21], [1, 1])),
        (run_wide, geometry(5, 20, 36, [6, 5], [1, 1])),
        (run_blocks, geometry(2, 150, 70, [4, 4], [1, 1])),
        (run, geometry(1, 40, 24, [28, 28], [1, 1])),
        (run_wide, geometry(1, 40, 36, [14, 14], [1, 1])),
    ];
    for (layout, g) in cases {
        let x = values(g.n * g.cin * g.input[0] * g.input[1], 21);
        let w = values(g.cout * g.cin * 9, 22);
        let b = values(g.cout, 23);
        let (want, scale) = direct(&x, &w, Some(&b), &g);
        let reference = layout(&x, &w, Some(&b), true, &g);
        for level in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
            set_isa_override(Some(level));
            let got = layout(&x, &w, Some(&b), true, &g);
            set_isa_override(None);
            let err = worst_error(&got, &want, &scale, true);
            assert!(err <= TOL, "{g:?} {level:?}: error {err:e}");
        }
        let single = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a one-thread pool")
            .install(|| layout(&x, &w, Some(&b), true, &g));
        assert_eq!(
            single, reference,
            "{g:?}: one thread must give the same bits"
        );
    }
}

/// One layout's convolution: (x, w, bias, relu, geometry) -> y.
type Runner = fn(&[f32], &[f32], Option<&[f32]>, bool, &Geometry) -> Vec<f32>;

fn run_wide(x: &[f32], w: &[f32], bias: Option<&[f32]>, relu: bool, g: &Geometry) -> Vec<f32> {
    let mut u = vec![0.0; g.filter_len()];
    transform_filter(w, g.cout, g.cin, false, true, &mut u);
    let mut y = vec![f32::NAN; g.n * g.cout * g.out[0] * g.out[1]];
    conv3x3_wide(x, WideFilters::Plain(&u), bias, None, relu, g, &mut y);
    y
}

fn run_blocks(x: &[f32], w: &[f32], bias: Option<&[f32]>, relu: bool, g: &Geometry) -> Vec<f32> {
    let mut y = vec![f32::NAN; g.n * g.cout * g.out[0] * g.out[1]];
    let filters = WideFilters::Weights { w, rotate: false };
    conv3x3_wide(x, filters, bias, None, relu, g, &mut y);
    y
}

#[test]
fn filters_by_blocks_match_direct_correlation_and_the_whole_transform() {
    // Several blocks of input channels (more than 128), output channels that end in a partial
    // register panel or a partial 16-lane group, one tile and maps of several, padding 0 to 2.
    let cases = [
        geometry(1, 150, 40, [4, 4], [1, 1]),
        geometry(2, 40, 150, [4, 4], [1, 1]),
        geometry(3, 17, 33, [7, 7], [1, 1]),
        geometry(1, 300, 20, [2, 3], [1, 1]),
        geometry(2, 24, 72, [6, 6], [0, 0]),
        geometry(1, 5, 3, [5, 11], [2, 2]),
    ];
    let worst = check_against_direct(run_blocks, &cases, 61);
    for (i, g) in cases.iter().enumerate() {
        let x = values(g.n * g.cin * g.input[0] * g.input[1], 61 + i as u64);
        let w = values(g.cout * g.cin * 9, 161 + i as u64);
        let whole = run_wide(&x, &w, None, false, g);
        let blocks = run_blocks(&x, &w, None, false, g);
        let (_, scale) = direct(&x, &w, None, g);
        for ((p, q), s) in whole.iter().zip(&blocks).zip(&scale) {
            assert!(
                ((p - q) as f64).abs() <= 2.0 * TOL * s.max(1e-6),
                "{g:?}: {p} vs {q}"
            );
        }
    }
    // The rule: ResNet-18's 4 px stage at batch 16 takes blocks, its 8 px stage does not.
    assert!(filters_by_blocks(&geometry(16, 256, 256, [4, 4], [1, 1])));
    assert!(!filters_by_blocks(&geometry(16, 128, 128, [8, 8], [1, 1])));
    eprintln!("winograd filters by blocks: worst relative error {worst:e}");
}

#[test]
fn wide_layout_matches_direct_correlation() {
    // Channel counts below, at and above the 16 lanes, partial tiles, crops and extensions of
    // the output, padding 0 to 2, and one image.
    let cases = [
        geometry(1, 1, 1, [3, 3], [0, 0]),
        geometry(1, 1, 1, [1, 1], [1, 1]),
        geometry(2, 3, 5, [7, 9], [1, 1]),
        geometry(2, 17, 33, [4, 4], [1, 1]),
        geometry(3, 32, 16, [2, 2], [1, 1]),
        geometry(1, 40, 24, [14, 14], [1, 1]),
        geometry(2, 16, 20, [7, 7], [1, 1]),
        geometry(1, 2, 4, [5, 11], [2, 2]),
        geometry(4, 64, 48, [8, 8], [1, 1]),
        Geometry {
            n: 2,
            cin: 18,
            cout: 3,
            input: [6, 7],
            out: [9, 10],
            pad: [2, 1],
        },
        Geometry {
            n: 2,
            cin: 3,
            cout: 19,
            input: [6, 7],
            out: [4, 5],
            pad: [2, 1],
        },
    ];
    let worst = check_against_direct(run_wide, &cases, 31);
    for (i, g) in cases.iter().enumerate() {
        let x = values(g.n * g.cin * g.input[0] * g.input[1], 31 + i as u64);
        let w = values(g.cout * g.cin * 9, 130 + i as u64);
        let b = values(g.cout, 230 + i as u64);
        // The two layouts agree to rounding.
        let tiled = run(&x, &w, Some(&b), false, g);
        let wide = run_wide(&x, &w, Some(&b), false, g);
        // Filters in the GEMMs' B-panel layout (inference's cached form): the same sums in
        // the same order, so the same bits.
        let mut u = vec![0.0; g.filter_len()];
        transform_filter(&w, g.cout, g.cin, false, true, &mut u);
        let layout = crate::kernels::gemm::BPanelLayout::new(g.cin, g.cout);
        let panels = wide_filter_panels(&u, &layout);
        let mut from_panels = vec![f32::NAN; wide.len()];
        let filters = WideFilters::Panels(&panels, layout);
        conv3x3_wide(&x, filters, Some(&b), None, false, g, &mut from_panels);
        assert!(
            wide.iter()
                .zip(&from_panels)
                .all(|(p, q)| p.to_bits() == q.to_bits()),
            "{g:?}: filter panels give other values"
        );
        let (_, scale) = direct(&x, &w, Some(&b), g);
        for ((t, w), s) in tiled.iter().zip(&wide).zip(&scale) {
            assert!(
                ((t - w) as f64).abs() <= 2.0 * TOL * s.max(1e-6),
                "{g:?}: {t} vs {w}"
            );
        }
    }
    eprintln!("winograd wide layout: worst relative error {worst:e}");
}

/// Weight gradient in f64, `dw[k][c][i][j] = Σ_n Σ_o dy[n][k][o] · x[n][c][o + (i, j) − pad]`,
/// and the sum of the absolute products (the scale of the rounding error).
fn direct_weight_grad(x: &[f32], dy: &[f32], g: &Geometry) -> (Vec<f64>, Vec<f64>) {
    let [ih, iw] = g.input;
    let [oh, ow] = g.out;
    let mut dw = vec![0.0f64; g.cout * g.cin * 9];
    let mut scale = vec![0.0f64; dw.len()];
    for k in 0..g.cout {
        for c in 0..g.cin {
            for i in 0..3 {
                for j in 0..3 {
                    let (mut acc, mut mag) = (0.0f64, 0.0f64);
                    for n in 0..g.n {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let yy = (oy + i) as isize - g.pad[0] as isize;
                                let xx = (ox + j) as isize - g.pad[1] as isize;
                                if yy < 0 || xx < 0 || yy >= ih as isize || xx >= iw as isize {
                                    continue;
                                }
                                let xv = x[((n * g.cin + c) * ih + yy as usize) * iw + xx as usize];
                                let gv = dy[((n * g.cout + k) * oh + oy) * ow + ox];
                                acc += xv as f64 * gv as f64;
                                mag += (xv as f64 * gv as f64).abs();
                            }
                        }
                    }
                    let at = ((k * g.cin + c) * 3 + i) * 3 + j;
                    dw[at] = acc;
                    scale[at] = mag;
                }
            }
        }
    }
    (dw, scale)
}

/// The Winograd weight gradient with chunks of `chunk_floats` transformed floats.
fn run_weight_grad(x: &[f32], dy: &[f32], g: &Geometry, chunk_floats: usize) -> Vec<f32> {
    let mut dw = vec![f32::NAN; g.cout * g.cin * 9];
    wgrad::weight_grad_chunked(x, dy, g, &mut dw, chunk_floats);
    dw
}

/// Error bound of the weight gradient relative to `Σ |dy·x|`: the sums over tiles run in the
/// transformed domain, whose values are up to ~100x the inputs' (A's rows reach 1+2+4+8).
const TOL_WGRAD: f64 = 1e-4;

#[test]
fn weight_gradient_matches_direct_sum() {
    let mut cases = edge_geometries();
    cases.extend([
        geometry(4, 16, 16, [16, 16], [1, 1]),
        geometry(9, 20, 17, [8, 8], [1, 1]),
        geometry(3, 18, 33, [2, 2], [1, 1]),
        geometry(1, 3, 3, [70, 37], [1, 0]),
        geometry(2, 2, 3, [9, 6], [0, 2]),
        // dU by blocks in one chunk (filters >= 8x the tiles' data): several blocks of input
        // channels, a partial block of output channels.
        geometry(2, 150, 40, [4, 4], [1, 1]),
        geometry(1, 40, 300, [3, 4], [1, 1]),
    ]);
    let mut worst = 0.0f64;
    for (i, g) in cases.iter().enumerate() {
        let x = values(g.n * g.cin * g.input[0] * g.input[1], 300 + i as u64);
        let dy = values(g.n * g.cout * g.out[0] * g.out[1], 400 + i as u64);
        let (want, scale) = direct_weight_grad(&x, &dy, g);
        // One chunk, one image a chunk, and two images a chunk (a last, shorter chunk).
        let per_image = g.tiles()[0] * g.tiles()[1] * XI * (g.cin + g.cout);
        for chunk_floats in [usize::MAX, 1, 2 * per_image] {
            let got = run_weight_grad(&x, &dy, g, chunk_floats);
            let err = worst_error(&got, &want, &scale, false);
            assert!(
                err <= TOL_WGRAD,
                "{g:?} chunk {chunk_floats}: error {err:e}"
            );
            worst = worst.max(err);
        }
    }
    eprintln!("winograd weight gradient: worst relative error {worst:e}");
}

#[test]
fn weight_gradient_isa_levels_and_thread_counts_agree() {
    let _guard = crate::kernels::ISA_TEST_LOCK
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // Chunks of two images with dU whole, and one chunk with dU by blocks.
    let g = geometry(5, 20, 36, [10, 7], [1, 1]);
    let two_images = 2 * g.tiles()[0] * g.tiles()[1] * XI * (g.cin + g.cout);
    for (g, chunk) in [
        (g, two_images),
        (geometry(2, 150, 40, [4, 4], [1, 1]), usize::MAX),
    ] {
        let x = values(g.n * g.cin * g.input[0] * g.input[1], 31);
        let dy = values(g.n * g.cout * g.out[0] * g.out[1], 32);
        let (want, scale) = direct_weight_grad(&x, &dy, &g);
        let reference = run_weight_grad(&x, &dy, &g, chunk);
        for level in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
            set_isa_override(Some(level));
            let got = run_weight_grad(&x, &dy, &g, chunk);
            set_isa_override(None);
            let err = worst_error(&got, &want, &scale, false);
            assert!(err <= TOL_WGRAD, "{g:?} {level:?}: error {err:e}");
        }
        let single = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a one-thread pool")
            .install(|| run_weight_grad(&x, &dy, &g, chunk));
        assert_eq!(
            single, reference,
            "{g:?}: one thread must give the same bits"
        );
    }
}

#[test]
fn wide_layout_adds_the_residual_of_each_output_channel() {
    // One image (its output channels split over the threads) and two, 36 output channels (a
    // partial 16-lane group): with the residual fused, each output is the unfused one plus
    // its own residual value, in the same order (so the same bits).
    for n in [1, 2] {
        let g = geometry(n, 20, 36, [14, 14], [1, 1]);
        let x = values(g.n * g.cin * g.input[0] * g.input[1], 71);
        let w = values(g.cout * g.cin * 9, 72);
        let b = values(g.cout, 73);
        let len = g.n * g.cout * g.out[0] * g.out[1];
        let r = values(len, 74);
        let mut u = vec![0.0; g.filter_len()];
        transform_filter(&w, g.cout, g.cin, false, true, &mut u);
        let mut plain = vec![f32::NAN; len];
        conv3x3_wide(
            &x,
            WideFilters::Plain(&u),
            Some(&b),
            None,
            false,
            &g,
            &mut plain,
        );
        let mut fused = vec![f32::NAN; len];
        conv3x3_wide(
            &x,
            WideFilters::Plain(&u),
            Some(&b),
            Some(&r),
            true,
            &g,
            &mut fused,
        );
        for ((p, q), f) in plain.iter().zip(&r).zip(&fused) {
            assert_eq!((p + q).max(0.0).to_bits(), f.to_bits(), "n = {n}");
        }
    }
}
