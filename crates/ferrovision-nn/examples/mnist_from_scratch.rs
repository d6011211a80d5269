//! Chapter 1 of the book, from first principles: a 784-64-32-10 perceptron with sigmoid
//! activations, L2 loss and plain SGD (lr 1e-3, batch 30) on MNIST, using only engine tensor ops
//! and hand-written backward passes — no autodiff during training (everything runs under
//! `no_grad`).
//!
//! ```sh
//! cargo run --release -p ferrovision-nn --example mnist_from_scratch -- --data data/mnist
//! ```
//!
//! Options: `--data DIR` (MNIST IDX files; default `$FERROVISION_MNIST` or `data/mnist`, filled by `scripts/fetch_mnist.sh`),
//! `--epochs N` (at most this many, default 500), `--target ACC` (stop at the first epoch whose
//! test accuracy reaches it, default 0.94; 0 to never stop early), `--seed N`.
//!
//! Like the book's `SimpleNetwork`: weights and biases drawn from a standard normal, each layer
//! `y = sigmoid(x W + b)`, loss `sum((y - t)^2) / batch` against one-hot targets with the
//! derivative `2 (y - t)`, gradients summed over the batch, `W -= lr * dL/dW`, batches taken
//! in order without shuffling. Pixels are scaled to `[0, 1]`.
//!
//! Before training, the hand-written gradients are checked once against the engine's autodiff
//! on one batch (the only use of autodiff here).

use ferrovision_nn::datasets::mnist::{load_mnist, Split};
use ferrovision_nn::tensor::rng::Rng;
use ferrovision_nn::tensor::{no_grad, Tensor};
use std::path::PathBuf;
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// One fully connected sigmoid layer with the values its backward pass needs.
struct Layer {
    w: Tensor,
    b: Tensor,
    /// Input and output of the last forward pass.
    x: Option<Tensor>,
    y: Option<Tensor>,
    dw: Option<Tensor>,
    db: Option<Tensor>,
}

impl Layer {
    fn new(inputs: usize, outputs: usize, rng: &mut Rng) -> Result<Self> {
        Ok(Layer {
            w: Tensor::randn(&[inputs, outputs], 0.0, 1.0, rng)?,
            b: Tensor::randn(&[outputs], 0.0, 1.0, rng)?,
            x: None,
            y: None,
            dw: None,
            db: None,
        })
    }

    /// `y = sigmoid(x W + b)`, remembering `x` and `y`.
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.w)?.add(&self.b)?.sigmoid()?;
        self.x = Some(x.clone());
        self.y = Some(y.clone());
        Ok(y)
    }

    /// Given `dL/dy`, stores `dL/dW`, `dL/db` (summed over the batch) and returns `dL/dx`.
    fn backward(&mut self, dl_dy: &Tensor) -> Result<Tensor> {
        let (x, y) = (self.x.as_ref().unwrap(), self.y.as_ref().unwrap());
        // sigmoid'(z) = y (1 - y)
        let dy_dz = y.mul(&y.rsub_scalar(1.0)?)?;
        let dl_dz = dl_dy.mul(&dy_dz)?;
        self.dw = Some(x.t()?.matmul(&dl_dz)?);
        self.db = Some(dl_dz.sum(&[0], false)?);
        Ok(dl_dz.matmul(&self.w.t()?)?)
    }

    fn step(&mut self, lr: f32) -> Result<()> {
        let dw = self.dw.take().unwrap();
        let db = self.db.take().unwrap();
        self.w = self.w.sub(&dw.mul_scalar(lr)?)?;
        self.b = self.b.sub(&db.mul_scalar(lr)?)?;
        Ok(())
    }
}

struct Network {
    layers: Vec<Layer>,
}

impl Network {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for l in &mut self.layers {
            h = l.forward(&h)?;
        }
        Ok(h)
    }

    fn backward(&mut self, dl_dy: &Tensor) -> Result<()> {
        let mut g = dl_dy.clone();
        for l in self.layers.iter_mut().rev() {
            g = l.backward(&g)?;
        }
        Ok(())
    }

    fn step(&mut self, lr: f32) -> Result<()> {
        for l in &mut self.layers {
            l.step(lr)?;
        }
        Ok(())
    }

    /// Fraction of `x`'s samples whose largest output is the label.
    fn accuracy(&mut self, x: &Tensor, labels: &[i64]) -> Result<f64> {
        let mut right = 0usize;
        let n = x.shape()[0];
        let mut start = 0;
        while start < n {
            let len = 1000.min(n - start);
            let pred = self.forward(&x.narrow(0, start, len)?)?.argmax(-1, false)?;
            right += pred
                .to_vec::<i64>()?
                .iter()
                .zip(&labels[start..start + len])
                .filter(|(p, l)| p == l)
                .count();
            start += len;
        }
        Ok(right as f64 / n as f64)
    }
}

/// `sum((y - t)^2) / batch` and its derivative `2 (y - t)` (the book's L2 loss).
fn l2_loss(y: &Tensor, t: &Tensor) -> Result<(f64, Tensor)> {
    let d = y.sub(t)?;
    let loss = d.square()?.sum_all()?.item()? / y.shape()[0] as f64;
    Ok((loss, d.mul_scalar(2.0)?))
}

/// Compares the hand-written gradients with the engine's autodiff on one batch; returns the
/// largest absolute difference over all weights and biases.
fn check_gradients(net: &mut Network, x: &Tensor, t: &Tensor) -> Result<f32> {
    let (_, dl_dy) = no_grad(|| l2_loss(&net.forward(x)?, t))?;
    no_grad(|| net.backward(&dl_dy))?;
    let params: Vec<Tensor> = net
        .layers
        .iter()
        .flat_map(|l| {
            [
                l.w.detach().requires_grad_(true),
                l.b.detach().requires_grad_(true),
            ]
        })
        .collect();
    let mut h = x.clone();
    for pair in params.chunks(2) {
        h = h.matmul(&pair[0])?.add(&pair[1])?.sigmoid()?;
    }
    h.sub(t)?.square()?.sum_all()?.backward()?;
    let mut worst = 0f32;
    for (l, pair) in net.layers.iter_mut().zip(params.chunks(2)) {
        for (mine, p) in [
            (l.dw.take().unwrap(), &pair[0]),
            (l.db.take().unwrap(), &pair[1]),
        ] {
            let auto = p.grad().ok_or("no autodiff gradient")?.to_vec::<f32>()?;
            for (a, b) in mine.to_vec::<f32>()?.iter().zip(&auto) {
                worst = worst.max((a - b).abs() / (1.0 + b.abs()));
            }
        }
    }
    Ok(worst)
}

fn main() -> Result<()> {
    let mut data = std::env::var_os("FERROVISION_MNIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data/mnist"));
    let (mut epochs, mut target, mut seed) = (500usize, 0.94f64, 42u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--data" => data = PathBuf::from(value()?),
            "--epochs" => epochs = value()?.parse()?,
            "--target" => target = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            other => return Err(format!("unknown argument '{other}' (see the file's doc)").into()),
        }
    }
    let (batch, lr) = (30usize, 1e-3f32);

    let (x_train, y_train) = load_mnist(&data, Split::Train)?;
    let (x_test, y_test) = load_mnist(&data, Split::Test)?;
    let x_train = x_train.reshape(&[x_train.shape()[0], 784])?;
    let x_test = x_test.reshape(&[x_test.shape()[0], 784])?;
    let t_train = y_train.one_hot(10)?;
    let test_labels = y_test.to_vec::<i64>()?;
    let n = x_train.shape()[0];

    let mut rng = Rng::new(seed);
    let mut net = Network {
        layers: vec![
            Layer::new(784, 64, &mut rng)?,
            Layer::new(64, 32, &mut rng)?,
            Layer::new(32, 10, &mut rng)?,
        ],
    };
    let worst = check_gradients(
        &mut net,
        &x_train.narrow(0, 0, batch)?,
        &t_train.narrow(0, 0, batch)?,
    )?;
    println!(
        "hand-written gradients vs autodiff on one batch: max relative difference {worst:.2e}"
    );
    if worst > 1e-3 {
        return Err("the hand-written backward pass disagrees with autodiff".into());
    }

    println!(
        "MLP 784-64-32-10, sigmoid, L2 loss, SGD lr {lr}, batch {batch}, {n} training images; \
         stopping at test accuracy {target}"
    );
    println!(
        "before training: test accuracy {:.4}",
        no_grad(|| net.accuracy(&x_test, &test_labels))?
    );
    let start = Instant::now();
    let mut reached = None;
    for epoch in 1..=epochs {
        let t0 = Instant::now();
        let mut loss_sum = 0.0;
        let batches = n / batch;
        no_grad(|| -> Result<()> {
            for b in 0..batches {
                let x = x_train.narrow(0, b * batch, batch)?;
                let t = t_train.narrow(0, b * batch, batch)?;
                let y = net.forward(&x)?;
                let (loss, dl_dy) = l2_loss(&y, &t)?;
                loss_sum += loss;
                net.backward(&dl_dy)?;
                net.step(lr)?;
            }
            Ok(())
        })?;
        let acc = no_grad(|| net.accuracy(&x_test, &test_labels))?;
        println!(
            "epoch {epoch:3}: loss {:.4}  test accuracy {acc:.4}  ({:.2} s, {:.0} s total)",
            loss_sum / batches as f64,
            t0.elapsed().as_secs_f64(),
            start.elapsed().as_secs_f64()
        );
        if reached.is_none() && target > 0.0 && acc >= target {
            reached = Some(epoch);
            println!(
                "RESULT mnist_from_scratch epochs_to_target={epoch} test_accuracy={acc:.4} seconds={:.1}",
                start.elapsed().as_secs_f64()
            );
            break;
        }
    }
    if reached.is_none() && target > 0.0 {
        println!("test accuracy {target} not reached in {epochs} epochs");
    }
    Ok(())
}
