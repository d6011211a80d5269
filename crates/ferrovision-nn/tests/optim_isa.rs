//! The optimizers' update loops go through the engine's one ISA dispatcher, so the ISA override
//! (`FERROVISION_ISA` / `kernels::set_isa_override`) applies to them (they used to detect the
//! CPU themselves and ignore it), and every level gives bit-identical weights.
//!
//! One test in its own binary: the override is process-wide.

use ferrovision_nn::optim::{Adam, Optimizer};
use ferrovision_nn::tensor::kernels::{detected_isa, set_isa_override, simd, Isa};
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::Param;

/// Three Adam steps on one weight at the given level; returns the weight and the level the
/// update loop was dispatched with.
fn adam_at(level: Isa) -> (Vec<f32>, Option<Isa>) {
    set_isa_override(Some(level));
    let w: Vec<f32> = (0..103).map(|i| ((i as f32) * 0.37).sin()).collect();
    let p = vec![(
        "dense/kernel".to_string(),
        Param::new("kernel", Tensor::from_vec(w, &[103]).unwrap(), true),
    )];
    let mut opt = Adam::new();
    let mut seen = None;
    for step in 0..3 {
        let g: Vec<f32> = (0..103)
            .map(|i| ((i * 7 + step) as f32 * 0.11).cos())
            .collect();
        p[0].1
            .value()
            .set_grad(Some(Tensor::from_vec(g, &[103]).unwrap()))
            .unwrap();
        opt.step(&p).unwrap();
        seen = simd::last_dispatched();
        p[0].1.zero_grad();
    }
    set_isa_override(None);
    (p[0].1.value().to_vec::<f32>().unwrap(), seen)
}

#[test]
fn optimizer_update_honours_isa_override() {
    let (reference, seen) = adam_at(Isa::Scalar);
    assert_eq!(
        seen,
        Some(Isa::Scalar),
        "scalar override ignored by the update loop"
    );
    for level in [Isa::Avx2, Isa::Avx512] {
        let (w, seen) = adam_at(level);
        assert_eq!(
            seen,
            Some(level.min(detected_isa())),
            "override {level:?} ignored"
        );
        assert_eq!(w, reference, "{level:?} update differs from scalar");
    }
}
