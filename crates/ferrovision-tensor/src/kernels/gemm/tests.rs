//! GEMM tests: every ISA path against a naive reference, all layouts, epilogues and threading.

use super::arch::hw_isa;
use super::*;

/// Deterministic pseudo-random values in [-1, 1).
fn fill(len: usize, seed: u64) -> Vec<f32> {
    crate::kernels::test_values(len, seed)
}

fn isas() -> Vec<Isa> {
    let mut v = vec![Isa::Scalar];
    if hw_isa(Isa::Avx2) >= Isa::Avx2 {
        v.push(Isa::Avx2);
    }
    if hw_isa(Isa::Avx512) >= Isa::Avx512 {
        v.push(Isa::Avx512);
    }
    v
}

#[allow(clippy::type_complexity)]
fn check(
    isa: Isa,
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
    bias_kind: u8,
    relu: bool,
) {
    let seed = (m * 131 + n * 31 + k * 7) as u64 + bias_kind as u64;
    // A stored row-major (m×k, ld k+1) or column-major (k×m, ld m+2).
    let (a, rsa, csa) = if trans_a {
        (fill((m + 2) * k.max(1), seed), 1, m + 2)
    } else {
        (fill(m * (k + 1), seed + 1), k + 1, 1)
    };
    let (b, rsb, csb) = if trans_b {
        (fill((k + 3) * n, seed + 2), 1, k + 3)
    } else {
        (fill(k.max(1) * (n + 1), seed + 3), n + 1, 1)
    };
    let ldc = n + 5;
    let c0 = fill(m * ldc, seed + 4);
    let bias_row = fill(m, seed + 5);
    let bias_col = fill(n, seed + 6);
    // Kinds 3 to 5: the bias of kind % 3 and a residual matrix (row stride n + 2).
    let ldr = n + 2;
    let res = fill(m * ldr, seed + 7);
    let with_res = bias_kind >= 3;
    let bias_kind = bias_kind % 3;
    let bias = match bias_kind {
        0 => Bias::None,
        1 => Bias::PerRow(&bias_row),
        _ => Bias::PerCol(&bias_col),
    };
    let residual = with_res.then_some(Residual {
        values: &res,
        ld: ldr,
    });
    let act = if relu {
        Activation::Relu
    } else {
        Activation::None
    };
    let ep = Epilogue {
        bias,
        act,
        residual,
    };
    let mut c = c0.clone();
    sgemm_isa(
        isa, threads, m, n, k, &a, rsa, csa, &b, rsb, csb, &mut c, ldc, accumulate, ep,
    );
    // With A packed beforehand: the same sums in the same order.
    let layout = PanelLayout::for_isa(isa, m, k);
    let panels = layout.pack(&a, rsa, csa);
    let mut c_packed = c0.clone();
    sgemm_core(
        isa,
        threads,
        m,
        n,
        k,
        &a,
        rsa,
        csa,
        Some((&layout, &panels)),
        BOperand::Strided(&b),
        rsb,
        csb,
        &mut c_packed,
        ldc,
        accumulate,
        ep,
    );
    assert!(
        c.iter()
            .zip(&c_packed)
            .all(|(x, y)| x.to_bits() == y.to_bits()),
        "{isa:?} t={threads} m={m} n={n} k={k}: packed A gives other values"
    );
    // With B written in its panel layout: the same sums in the same order too, except where
    // the strided call took the unpacked dot-product path (A rows and B columns contiguous),
    // which panels never take; there the values are checked against f64 below.
    let b_layout = BPanelLayout::for_isa(isa, k, n);
    let b_panels = b_layout.pack(&b, rsb, csb);
    let mut c_bp = c0.clone();
    sgemm_b_panels_on(
        threads, &b_layout, &b_panels, m, &a, rsa, csa, &mut c_bp, ldc, accumulate, ep,
    );
    let dot_layout = !trans_a && trans_b;
    if !dot_layout {
        assert!(
            c.iter().zip(&c_bp).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{isa:?} t={threads} m={m} n={n} k={k}: B in panels gives other values"
        );
    }
    let tol = 1e-5 * (k.max(1) as f64).sqrt() * 4.0;
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            let mut mag = 0.0f64;
            for p in 0..k {
                let x = a[i * rsa + p * csa] as f64 * b[p * rsb + j * csb] as f64;
                s += x;
                mag += x.abs();
            }
            if accumulate {
                s += c0[i * ldc + j] as f64;
            }
            match bias_kind {
                0 => {}
                1 => s += bias_row[i] as f64,
                _ => s += bias_col[j] as f64,
            }
            if with_res {
                s += res[i * ldr + j] as f64;
            }
            if relu {
                s = s.max(0.0);
            }
            let scale = 1.0 + mag;
            let got_bp = c_bp[i * ldc + j] as f64;
            assert!(
                (got_bp - s).abs() <= tol * scale,
                "{isa:?} t={threads} m={m} n={n} k={k} B panels: C[{i},{j}] = {got_bp}, want {s}"
            );
            let got = c[i * ldc + j] as f64;
            assert!(
                (got - s).abs() <= tol * scale,
                "{isa:?} t={threads} m={m} n={n} k={k} ta={trans_a} tb={trans_b} \
                 acc={accumulate} bias={bias_kind} res={with_res} relu={relu}: C[{i},{j}] = {got}, \
                 want {s}"
            );
        }
        // Padding between rows untouched.
        for j in n..ldc {
            assert_eq!(
                c[i * ldc + j],
                c0[i * ldc + j],
                "padding written at ({i},{j})"
            );
            assert_eq!(
                c_bp[i * ldc + j],
                c0[i * ldc + j],
                "B panels: padding written at ({i},{j})"
            );
        }
    }
}

#[test]
fn all_isas_odd_sizes() {
    let sizes = [1usize, 7, 15, 17, 33, 100];
    for isa in isas() {
        let mut case = 0usize;
        for &m in &sizes {
            for &n in &sizes {
                for &k in &sizes {
                    case += 1;
                    let ta = matches!(case % 2, 0);
                    let tb = matches!(case % 3, 0);
                    let acc = case % 5 < 2;
                    let bias = (case % 6) as u8;
                    let relu = case % 4 == 1;
                    check(isa, 1, m, n, k, ta, tb, acc, bias, relu);
                }
            }
        }
    }
}

#[test]
fn all_isas_all_layouts_and_epilogues() {
    for isa in isas() {
        for ta in [false, true] {
            for tb in [false, true] {
                for acc in [false, true] {
                    for bias in 0..6u8 {
                        for relu in [false, true] {
                            check(isa, 1, 17, 33, 15, ta, tb, acc, bias, relu);
                            check(isa, 2, 33, 100, 7, ta, tb, acc, bias, relu);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn large_dims_one_at_a_time() {
    for isa in isas() {
        // One or two dimensions at 1000, across KC/MC/NC block edges; threaded too.
        check(isa, 2, 1000, 17, 33, false, false, false, 1, true);
        check(isa, 2, 15, 1000, 100, true, false, true, 2, false);
        check(isa, 2, 7, 33, 1000, false, true, true, 0, true);
        check(isa, 2, 1, 1, 1000, true, true, false, 2, false);
        check(isa, 2, 100, 1000, 7, false, false, true, 1, false);
        check(isa, 2, 100, 17, 1000, true, false, false, 2, true);
        check(isa, 2, 17, 100, 1000, false, true, true, 1, false);
        check(isa, 1, 1000, 100, 15, true, true, false, 0, true);
    }
}

#[test]
fn threaded_grid_and_ksplit() {
    for isa in isas() {
        // Grid over m and n.
        check(isa, 2, 200, 300, 64, false, false, false, 2, true);
        check(isa, 3, 97, 130, 100, true, true, true, 1, false);
        // Single output tile, long depth: split over k.
        check(isa, 2, 6, 25, 4000, false, true, false, 1, true);
        check(isa, 2, 6, 25, 4000, true, false, true, 2, false);
        check(isa, 2, 6, 25, 4000, true, false, true, 4, true);
        check(isa, 4, 3, 5, 3000, false, false, true, 0, false);
        // Dot-product path split over rows (tall output, short n).
        check(isa, 2, 300, 5, 700, false, true, true, 1, true);
        check(isa, 2, 1000, 3, 300, false, true, false, 2, false);
        check(isa, 2, 300, 5, 700, false, true, false, 5, true);
        check(isa, 2, 200, 300, 64, false, false, true, 3, true);
    }
}

/// Blocked paths read the packed panels, not `a` (here zeros); panels made for another ISA's
/// blocking are ignored.
#[test]
fn packed_panels_are_read() {
    // (threads, m, n, k): depth over two KC blocks, rows past MC and not a multiple of the
    // tile height, columns past NC, one thread and a grid.
    for (threads, m, n, k) in [
        (1, 37, 70, 500),
        (2, 250, 600, 450),
        (2, 13, 900, 40),
        (1, 1, 33, 9),
    ] {
        let a = fill(m * k, 1);
        let b = fill(k * n, 2);
        let zeros = vec![0.0f32; m * k];
        for isa in isas() {
            let mut want = vec![0.0f32; m * n];
            sgemm_isa(
                isa,
                threads,
                m,
                n,
                k,
                &a,
                k,
                1,
                &b,
                n,
                1,
                &mut want,
                n,
                false,
                Epilogue::default(),
            );
            let layout = PanelLayout::for_isa(isa, m, k);
            let panels = layout.pack(&a, k, 1);
            let mut got = vec![0.0f32; m * n];
            sgemm_core(
                isa,
                threads,
                m,
                n,
                k,
                &zeros,
                k,
                1,
                Some((&layout, &panels)),
                BOperand::Strided(&b),
                n,
                1,
                &mut got,
                n,
                false,
                Epilogue::default(),
            );
            assert_eq!(got, want, "{isa:?} t={threads} m={m} n={n} k={k}");
            // Another ISA's panels (other tile height or depth block): `a` is read.
            for other in isas() {
                let layout_other = PanelLayout::for_isa(other, m, k);
                if layout_other == layout {
                    continue;
                }
                let mut got = vec![0.0f32; m * n];
                sgemm_core(
                    isa,
                    threads,
                    m,
                    n,
                    k,
                    &a,
                    k,
                    1,
                    Some((&layout_other, &vec![f32::NAN; m * k])),
                    BOperand::Strided(&b),
                    n,
                    1,
                    &mut got,
                    n,
                    false,
                    Epilogue::default(),
                );
                assert_eq!(got, want, "{isa:?} with {other:?} panels");
            }
        }
    }
}

#[test]
fn k_zero_applies_epilogue() {
    for isa in isas() {
        for acc in [false, true] {
            for bias in 0..6u8 {
                check(isa, 1, 5, 9, 0, false, false, acc, bias, true);
            }
        }
    }
}

#[test]
fn empty_is_noop() {
    let mut c = vec![3.0f32; 4];
    sgemm(
        0,
        2,
        3,
        &[],
        3,
        1,
        &[1.0; 6],
        2,
        1,
        &mut c,
        2,
        false,
        Epilogue::default(),
    );
    sgemm(
        2,
        0,
        3,
        &[1.0; 6],
        3,
        1,
        &[],
        0,
        1,
        &mut c,
        2,
        false,
        Epilogue::default(),
    );
    assert_eq!(c, vec![3.0; 4]);
}

#[test]
fn public_entry_and_batched() {
    let (m, n, k, batch) = (9, 20, 13, 5);
    let a = fill(batch * m * k, 1);
    let b = fill(batch * k * n, 2);
    let bias = fill(m, 3);
    let ep = Epilogue {
        bias: Bias::PerRow(&bias),
        act: Activation::Relu,
        residual: None,
    };
    let mut c = vec![0.0f32; batch * m * n];
    sgemm_batched(
        batch,
        m,
        n,
        k,
        &a,
        m * k,
        k,
        1,
        &b,
        k * n,
        n,
        1,
        &mut c,
        m * n,
        n,
        false,
        ep,
    );
    for t in 0..batch {
        let mut want = vec![0.0f32; m * n];
        sgemm(
            m,
            n,
            k,
            &a[t * m * k..],
            k,
            1,
            &b[t * k * n..],
            n,
            1,
            &mut want,
            n,
            false,
            ep,
        );
        assert_eq!(&c[t * m * n..(t + 1) * m * n], &want[..]);
    }
}

#[test]
#[should_panic]
fn short_slice_panics() {
    let mut c = vec![0.0f32; 4];
    sgemm(
        2,
        2,
        2,
        &[1.0; 3],
        2,
        1,
        &[1.0; 4],
        2,
        1,
        &mut c,
        2,
        false,
        Epilogue::default(),
    );
}

#[test]
fn peak_probe_is_positive() {
    assert!(measure_peak_gflops(1) > 0.0);
}
