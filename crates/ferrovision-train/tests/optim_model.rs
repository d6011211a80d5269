//! Optimizers inside `Model::fit`: the training loop's weight names key the state, every batch
//! counts a step, and a Dense regression converges.

use ferrovision_nn::layers::Dense;
use ferrovision_nn::optim::{Adam, LearningRateSchedule};
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{Loss, Result, Sequential};
use ferrovision_train::{Compile, FitOptions, Model};

/// Mean squared error, local to the test (the losses module is tested on its own).
struct Mse;

impl Loss for Mse {
    fn name(&self) -> String {
        "mse".into()
    }

    fn call(&self, y_true: &Tensor, y_pred: &Tensor, _w: Option<&Tensor>) -> Result<Tensor> {
        Ok(y_pred.sub(y_true)?.square()?.mean_all()?)
    }
}

#[test]
fn adam_trains_a_dense_model_through_fit() {
    let n = 64;
    let mut s = 7u64;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let x: Vec<f32> = (0..n * 3).map(|_| next()).collect();
    let y: Vec<f32> = (0..n)
        .map(|i| 2.0 * x[3 * i] - x[3 * i + 1] + 0.5 * x[3 * i + 2] + 0.25)
        .collect();
    let x = Tensor::from_vec(x, &[n, 3]).unwrap();
    let y = Tensor::from_vec(y, &[n, 1]).unwrap();

    let net = Sequential::new(&[3]).add(Dense::new(1)).build().unwrap();
    let mut model = Model::new(net);
    let opt = Adam::new().lr(LearningRateSchedule::exponential_decay(
        0.05, 100.0, 0.5, false,
    ));
    model.compile(Compile::new(opt, Mse)).unwrap();
    let opts = FitOptions {
        epochs: 60,
        batch_size: 16,
        verbose: 0,
        ..Default::default()
    };
    let hist = model.fit(&x, &y, opts, vec![]).unwrap();
    let loss = hist.get("loss");
    assert!(
        *loss.last().unwrap() < 1e-3 * loss[0],
        "loss {} -> {}",
        loss[0],
        loss.last().unwrap()
    );
    let opt = model.optimizer().unwrap();
    assert_eq!(opt.iterations(), 60 * 4);
    // The schedule advanced with the steps.
    assert!((opt.learning_rate() - 0.05 * 0.5f64.powf(2.4)).abs() < 1e-12);
    let names: Vec<String> = opt.state().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "dense/kernel/momentum",
            "dense/kernel/velocity",
            "dense/bias/momentum",
            "dense/bias/velocity"
        ]
    );
}
