//! A steady training step takes its f32 buffers from the pool, not the allocator.
//! (Its own test binary: the pool counters are process-wide.)

use ferrovision_tensor::rng::Rng;
use ferrovision_tensor::storage::pool;
use ferrovision_tensor::{ConvOpts, CrossEntropyOpts, PoolOpts, Tensor};

#[test]
fn steady_step_reuses_buffers() {
    // One compute thread: with two, how many same-sized buffers are live at once depends on
    // how the parallel tasks happen to overlap (on a loaded machine a later step can hold two
    // where the warm-up steps held one: ~7 % of runs beside a training job), which is not
    // what this test is about.
    ferrovision_tensor::parallel::set_num_threads(1).expect("the thread pool not yet built");
    let mut rng = Rng::new(3);
    let w1 = Tensor::randn(&[8, 3, 3, 3], 0.0, 0.2, &mut rng)
        .unwrap()
        .requires_grad_(true);
    let w2 = Tensor::randn(&[8 * 8 * 8, 10], 0.0, 0.05, &mut rng)
        .unwrap()
        .requires_grad_(true);
    let x = Tensor::rand(&[4, 3, 16, 16], &mut rng);
    let y = Tensor::randint(&[4], 0, 10, &mut rng).unwrap();
    let step = || {
        let h = x.conv2d_relu(&w1, None, &ConvOpts::new().pad(1)).unwrap();
        let h = h
            .max_pool2d(&PoolOpts::new(&[2]))
            .unwrap()
            .flatten(1, -1)
            .unwrap();
        let loss = h
            .linear(&w2, None)
            .unwrap()
            .cross_entropy(&y, &CrossEntropyOpts::default())
            .unwrap();
        loss.backward().unwrap();
        w1.zero_grad();
        w2.zero_grad();
    };
    step();
    step();
    let (h0, m0) = pool::stats();
    step();
    let (h1, m1) = pool::stats();
    assert!(h1 > h0, "the step took no pooled buffer at all");
    assert_eq!(
        m1 - m0,
        0,
        "a steady step allocated {} pooled-size buffers",
        m1 - m0
    );
}
