//! The open train step ([`TrainStep`]): a custom `compute_loss` checked against a
//! hand-computed update, a GAN step with two optimizers that checkpoints and resumes
//! bit-identically, and a DANN step whose gradient reversal (a `custom_op`) sends the negated
//! domain gradient into the feature extractor, checked against the chain rule done by hand.

mod common;

use common::{serial, tmp_dir};
use ferrovision_nn::layers::{Dense, Lambda};
use ferrovision_nn::losses::BinaryCrossentropy;
use ferrovision_nn::optim::{Adam, Sgd};
use ferrovision_nn::tensor::rng::{manual_seed, Rng};
use ferrovision_nn::tensor::{custom_op, Tensor};
use ferrovision_nn::{Graph, Loss, Network, NetworkExt, Result};
use ferrovision_train::callbacks::ModelCheckpoint;
use ferrovision_train::{
    Batch, Compile, ComputedLoss, FitOptions, Model, StepCtx, StepLogs, TrainStep,
    PRIMARY_OPTIMIZER,
};

fn opts(epochs: usize, batch_size: usize, shuffle: bool) -> FitOptions {
    FitOptions {
        epochs,
        batch_size,
        shuffle,
        seed: 7,
        verbose: 0,
        ..FitOptions::default()
    }
}

fn values(net: &dyn Network) -> Vec<(String, Vec<f32>)> {
    net.named_weights()
        .into_iter()
        .map(|(n, p)| (n, p.to_vec().unwrap()))
        .collect()
}

fn weight(net: &dyn Network, name: &str) -> Vec<f32> {
    net.named_weights()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no weight {name}"))
        .1
        .to_vec()
        .unwrap()
}

fn close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (1) A custom compute_loss: MSE plus an L2 penalty on the kernel added by the step.
// ---------------------------------------------------------------------------------------------

/// The compiled loss plus `lambda * sum(kernel^2)`, computed in the step (no regularizer on
/// the layer).
struct KernelPenalty {
    lambda: f32,
}

impl TrainStep for KernelPenalty {
    fn compute_loss(
        &mut self,
        ctx: &StepCtx<'_>,
        batch: &Batch,
        outputs: &[Tensor],
        penalties: Vec<Tensor>,
    ) -> Result<ComputedLoss> {
        let mut loss = ctx.compiled_loss(batch, outputs, penalties)?;
        if ctx.training() {
            let kernel = &ctx
                .weights()
                .iter()
                .find(|(n, _)| n == "dense/kernel")
                .expect("dense/kernel")
                .1;
            let pen = kernel
                .value()
                .square()?
                .sum_all()?
                .mul_scalar(self.lambda)?;
            loss.total = loss.total.add(&pen)?;
        }
        Ok(loss)
    }
}

#[test]
fn custom_compute_loss_matches_a_hand_computed_step() {
    let _guard = serial();
    // y = x w + b, 4 samples, 2 features, one batch, plain SGD.
    let x = [[1.0f64, 2.0], [-1.0, 0.5], [0.0, -1.5], [2.0, 1.0]];
    let y = [1.0f64, -0.5, 0.25, 2.0];
    let (w0, b0) = ([0.3f64, -0.2], 0.1f64);
    let (lr, lambda) = (0.1f64, 0.05f64);

    let net = ferrovision_nn::Sequential::new(&[2])
        .add(Dense::new(1))
        .build()
        .unwrap();
    net.set_weights(&[
        Tensor::from_vec(vec![w0[0] as f32, w0[1] as f32], &[2, 1]).unwrap(),
        Tensor::from_vec(vec![b0 as f32], &[1]).unwrap(),
    ])
    .unwrap();
    let mut model = Model::new(net).with_train_step(KernelPenalty {
        lambda: lambda as f32,
    });
    model
        .compile(Compile::new(
            Sgd::new().lr(lr),
            ferrovision_nn::losses::MeanSquaredError::new(),
        ))
        .unwrap();
    let xt = Tensor::from_vec(x.iter().flatten().map(|v| *v as f32).collect(), &[4, 2]).unwrap();
    let yt = Tensor::from_vec(y.iter().map(|v| *v as f32).collect(), &[4, 1]).unwrap();
    let h = model.fit(&xt, &yt, opts(1, 4, false), vec![]).unwrap();

    // By hand: L = mean((xw + b - y)^2) + lambda |w|^2.
    let n = x.len() as f64;
    let r: Vec<f64> = (0..4)
        .map(|i| x[i][0] * w0[0] + x[i][1] * w0[1] + b0 - y[i])
        .collect();
    let mse = r.iter().map(|v| v * v).sum::<f64>() / n;
    let pen = lambda * (w0[0] * w0[0] + w0[1] * w0[1]);
    let gw: Vec<f64> = (0..2)
        .map(|j| (0..4).map(|i| 2.0 * r[i] * x[i][j]).sum::<f64>() / n + 2.0 * lambda * w0[j])
        .collect();
    let gb = (0..4).map(|i| 2.0 * r[i]).sum::<f64>() / n;
    let net = model.network();
    close(
        &weight(net, "dense/kernel"),
        &[w0[0] - lr * gw[0], w0[1] - lr * gw[1]],
        "kernel",
    );
    close(&weight(net, "dense/bias"), &[b0 - lr * gb], "bias");
    close(&[h.get("loss")[0] as f32], &[mse + pen], "logged loss");

    // Evaluation uses the same compute_loss in inference mode (no penalty there, as Keras
    // adds weight penalties only when training).
    let logs = model.evaluate(&xt, &yt, 4).unwrap();
    assert!(logs.get("loss").unwrap().is_finite());
}

// ---------------------------------------------------------------------------------------------
// (2) A GAN step: two optimizers on two sub-networks, checkpointed and resumed.
// ---------------------------------------------------------------------------------------------

/// Inputs `[z, real]`; outputs `[D(G(z)), D(real)]` with one discriminator shared by both.
fn gan_network() -> Box<dyn Network> {
    let mut g = Graph::new();
    let z = g.input("z", &[Some(2)]);
    let real = g.input("real", &[Some(2)]);
    let fake = g.apply(Dense::new(2).named("generator"), &[z]).unwrap();
    let disc = g.add_layer(Dense::new(1).named("discriminator"));
    let d_fake = g.call(disc, &[fake]).unwrap();
    let d_real = g.call(disc, &[real]).unwrap();
    Box::new(g.build("gan", &[z, real], &[d_fake, d_real]).unwrap())
}

/// Discriminator update (primary optimizer) on real-vs-fake, then generator update (the
/// `"generator"` optimizer) through the updated discriminator.
struct GanStep;

impl TrainStep for GanStep {
    fn train_step(&mut self, ctx: &mut StepCtx<'_>, batch: &Batch) -> Result<StepLogs> {
        let bce = BinaryCrossentropy::new().from_logits(true);
        let (outs, _) = ctx.forward(&batch.inputs)?;
        let ones = Tensor::ones(outs[0].shape());
        let zeros = Tensor::zeros(outs[0].shape());
        let d_loss = bce
            .call(&ones, &outs[1], None)?
            .add(&bce.call(&zeros, &outs[0], None)?)?;
        d_loss.backward()?;
        let disc = ctx.trainable_weights_under("discriminator/");
        ctx.apply_gradients(PRIMARY_OPTIMIZER, &disc)?;
        // d_loss also reached the generator; those gradients are not applied.
        ctx.zero_grad();

        let (outs, _) = ctx.forward(&batch.inputs)?;
        let g_loss = bce.call(&ones, &outs[0], None)?;
        g_loss.backward()?;
        let gen = ctx.trainable_weights_under("generator/");
        ctx.apply_gradients("generator", &gen)?;
        ctx.zero_grad();
        Ok(StepLogs::new()
            .with("d_loss", d_loss.item()?)
            .with("g_loss", g_loss.item()?))
    }

    fn test_step(&mut self, ctx: &mut StepCtx<'_>, batch: &Batch) -> Result<StepLogs> {
        let (outs, _) = ctx.forward(&batch.inputs)?;
        let ones = Tensor::ones(outs[0].shape());
        let g_loss = BinaryCrossentropy::new()
            .from_logits(true)
            .call(&ones, &outs[0], None)?;
        Ok(StepLogs::new().with("g_loss", g_loss.item()?))
    }

    fn log_names(&self, _net: &dyn Network) -> Vec<String> {
        vec!["d_loss".into(), "g_loss".into()]
    }
}

fn gan_compile() -> Compile {
    Compile::custom(Adam::new().lr(0.05)).optimizer_named("generator", Adam::new().lr(0.02))
}

fn gan_data() -> (Tensor, Tensor) {
    let mut rng = Rng::new(11);
    let z = Tensor::randn(&[24, 2], 0.0, 1.0, &mut rng).unwrap();
    let real = Tensor::randn(&[24, 2], 3.0, 0.5, &mut rng).unwrap();
    (z, real)
}

fn fresh_gan() -> Model {
    manual_seed(21);
    let mut model = Model::from_boxed(gan_network()).with_train_step(GanStep);
    model.compile(gan_compile()).unwrap();
    model
}

#[test]
fn gan_step_with_two_optimizers_resumes_bit_identically() {
    let _guard = serial();
    let dir = tmp_dir("gan_resume");
    let (z, real) = gan_data();

    // Uninterrupted: 2 epochs, a checkpoint after each.
    let mut full = fresh_gan();
    let initial = values(full.network());
    let ckpt = ModelCheckpoint::new(dir.join("gan-{epoch}.safetensors").to_string_lossy());
    let h = full
        .fit_arrays(
            vec![z.clone(), real.clone()],
            vec![],
            opts(2, 8, true),
            vec![Box::new(ckpt)],
        )
        .unwrap();
    assert_eq!(
        h.last().unwrap().iter().map(|(k, _)| k).collect::<Vec<_>>(),
        ["d_loss", "g_loss", "lr"]
    );
    let want = values(full.network());
    assert_ne!(want, initial, "training changed nothing");
    // Both optimizers stepped once per batch (3 batches per epoch).
    assert_eq!(full.optimizer().unwrap().iterations(), 6);
    assert_eq!(full.optimizer_named("generator").unwrap().iterations(), 6);

    // The checkpoint holds both optimizers' state.
    let file = ferrovision_io::load_safetensors(&dir.join("gan-1.safetensors")).unwrap();
    assert!(file
        .tensors
        .iter()
        .any(|(n, _)| n.starts_with("optimizers/generator/generator/kernel/")));
    assert!(file
        .tensors
        .iter()
        .any(|(n, _)| n.starts_with("optimizer/discriminator/kernel/")));

    // Interrupted after epoch 1: a new process builds the model and resumes.
    let mut resumed = fresh_gan();
    resumed
        .load_checkpoint(dir.join("gan-1.safetensors"))
        .unwrap();
    assert_eq!(resumed.epoch(), 1);
    let h2 = resumed
        .fit_arrays(
            vec![z.clone(), real.clone()],
            vec![],
            opts(2, 8, true),
            vec![],
        )
        .unwrap();
    assert_eq!(h2.epochs, [1]);
    assert_eq!(
        values(resumed.network()),
        want,
        "resume via load_checkpoint"
    );
    assert_eq!(h2.get("g_loss"), h.get("g_loss")[1..]);

    // The same from the file alone: the architecture and both optimizers come from it.
    let mut loaded = Model::load(dir.join("gan-1.safetensors")).unwrap();
    loaded.set_train_step(GanStep);
    assert_eq!(loaded.optimizers().len(), 2);
    loaded
        .fit_arrays(vec![z, real], vec![], opts(2, 8, true), vec![])
        .unwrap();
    assert_eq!(values(loaded.network()), want, "resume via Model::load");
}

#[test]
fn gan_checkpoint_needs_the_same_optimizers() {
    let _guard = serial();
    let dir = tmp_dir("gan_mismatch");
    let (z, real) = gan_data();
    let mut model = fresh_gan();
    model
        .fit_arrays(vec![z, real], vec![], opts(1, 8, true), vec![])
        .unwrap();
    let p = dir.join("gan.safetensors");
    model.save(&p).unwrap();
    // A model compiled without the generator's optimizer cannot silently drop its state.
    let mut other = Model::from_boxed(gan_network()).with_train_step(GanStep);
    other.compile(Compile::custom(Adam::new())).unwrap();
    let err = other.load_checkpoint(&p).unwrap_err().to_string();
    assert!(
        err.contains("optimizers/generator/") && err.contains("does not have"),
        "{err}"
    );
    // Unknown optimizer names are errors that list the known ones.
    let mut ctx_err = Model::from_boxed(gan_network()).with_train_step(GanStep);
    ctx_err.compile(Compile::custom(Adam::new())).unwrap();
    let (z, real) = gan_data();
    let err = ctx_err
        .fit_arrays(vec![z, real], vec![], opts(1, 8, false), vec![])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no optimizer named 'generator'") && err.contains("optimizer"),
        "{err}"
    );
    // Two optimizers with one name are refused at compile time.
    let err = Model::from_boxed(gan_network())
        .compile(Compile::custom(Adam::new()).optimizer_named("optimizer", Adam::new()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("two optimizers are named 'optimizer'"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// (3) DANN: gradient reversal between the feature extractor and the domain head.
// ---------------------------------------------------------------------------------------------

/// Identity forward; the backward pass multiplies the gradient by `-lambda`.
fn reverse_gradient(x: &Tensor, lambda: f32) -> ferrovision_nn::tensor::Result<Tensor> {
    custom_op(
        "gradient_reversal",
        &[x],
        |xs| Ok(xs[0].clone()),
        move |g| Ok(vec![Some(g.mul_scalar(-lambda)?)]),
    )
}

/// Inputs `[x]`; outputs `[label(h), domain(reverse(h))]` with `h = features(x)`.
fn dann_network(lambda: f32) -> Box<dyn Network> {
    let mut g = Graph::new();
    let x = g.input("x", &[Some(2)]);
    let h = g.apply(Dense::new(2).named("features"), &[x]).unwrap();
    let label = g.apply(Dense::new(1).named("label"), &[h]).unwrap();
    let rev = g
        .apply(
            Lambda::new(move |t| Ok(reverse_gradient(t, lambda)?)).named("reverse"),
            &[h],
        )
        .unwrap();
    let domain = g.apply(Dense::new(1).named("domain"), &[rev]).unwrap();
    Box::new(g.build("dann", &[x], &[label, domain]).unwrap())
}

/// DANN's objective: the label loss on source rows only (domain target 1), plus the domain
/// loss on every row; both mean squared errors.
struct DannStep;

impl TrainStep for DannStep {
    fn compute_loss(
        &mut self,
        _ctx: &StepCtx<'_>,
        batch: &Batch,
        outputs: &[Tensor],
        _penalties: Vec<Tensor>,
    ) -> Result<ComputedLoss> {
        let source = &batch.targets[1];
        let n_source = source.sum_all()?.item()? as f32;
        let label = outputs[0]
            .sub(&batch.targets[0])?
            .square()?
            .mul(source)?
            .sum_all()?
            .div_scalar(n_source)?;
        let domain = outputs[1].sub(source)?.square()?.mean_all()?;
        let per_output = vec![label.item()?, domain.item()?];
        Ok(ComputedLoss {
            total: label.add(&domain)?,
            per_output,
        })
    }
}

#[test]
fn dann_feature_extractor_receives_the_negated_domain_gradient() {
    let _guard = serial();
    let lambda = 0.7f64;
    let lr = 0.1f64;
    let net = dann_network(lambda as f32);
    // Weights in the network's order: features, label, domain (kernel then bias).
    let wf = [[0.5f64, -0.3], [0.2, 0.8]]; // [in, out]
    let bf = [0.1f64, -0.1];
    let wc = [0.7f64, -0.4];
    let bc = 0.05f64;
    let wd = [-0.6f64, 0.9];
    let bd = -0.2f64;
    let t = |v: &[f64], s: &[usize]| {
        Tensor::from_vec(v.iter().map(|x| *x as f32).collect(), s).unwrap()
    };
    let names: Vec<String> = net.named_weights().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "features/kernel",
            "features/bias",
            "label/kernel",
            "label/bias",
            "domain/kernel",
            "domain/bias"
        ]
    );
    net.set_weights(&[
        t(&[wf[0][0], wf[0][1], wf[1][0], wf[1][1]], &[2, 2]),
        t(&bf, &[2]),
        t(&wc, &[2, 1]),
        t(&[bc], &[1]),
        t(&wd, &[2, 1]),
        t(&[bd], &[1]),
    ])
    .unwrap();
    let mut model = Model::from_boxed(net).with_train_step(DannStep);
    model.compile(Compile::custom(Sgd::new().lr(lr))).unwrap();

    let x = [[1.0f64, -1.0], [0.5, 2.0], [-1.5, 0.5], [2.0, 1.0]];
    let yc = [1.0f64, -1.0, 0.0, 0.0]; // labels of the source rows (the last two are unused)
    let dom = [1.0f64, 1.0, 0.0, 0.0]; // source = 1, target = 0
    let batch = Batch {
        inputs: vec![t(&x.concat(), &[4, 2])],
        targets: vec![t(&yc, &[4, 1]), t(&dom, &[4, 1])],
        sample_weight: None,
    };
    let logs = model.train_step(&batch).unwrap();

    // The chain rule by hand. h = x wf + bf; c = h wc + bc; d = h wd + bd.
    let n = 4.0;
    let n_src = 2.0;
    let h: Vec<[f64; 2]> = x
        .iter()
        .map(|r| {
            [
                r[0] * wf[0][0] + r[1] * wf[1][0] + bf[0],
                r[0] * wf[0][1] + r[1] * wf[1][1] + bf[1],
            ]
        })
        .collect();
    let c: Vec<f64> = h.iter().map(|h| h[0] * wc[0] + h[1] * wc[1] + bc).collect();
    let d: Vec<f64> = h.iter().map(|h| h[0] * wd[0] + h[1] * wd[1] + bd).collect();
    let dc: Vec<f64> = (0..4)
        .map(|i| 2.0 * (c[i] - yc[i]) * dom[i] / n_src)
        .collect();
    let dd: Vec<f64> = (0..4).map(|i| 2.0 * (d[i] - dom[i]) / n).collect();
    // Gradient reaching h: the label path as is, the domain path reversed and scaled.
    let dh: Vec<[f64; 2]> = (0..4)
        .map(|i| {
            [
                dc[i] * wc[0] - lambda * dd[i] * wd[0],
                dc[i] * wc[1] - lambda * dd[i] * wd[1],
            ]
        })
        .collect();
    let gwf = |a: usize, b: usize| (0..4).map(|i| x[i][a] * dh[i][b]).sum::<f64>();
    let gbf = |b: usize| (0..4).map(|i| dh[i][b]).sum::<f64>();
    let gwd = |a: usize| (0..4).map(|i| h[i][a] * dd[i]).sum::<f64>();
    let gbd = dd.iter().sum::<f64>();
    let gwc = |a: usize| (0..4).map(|i| h[i][a] * dc[i]).sum::<f64>();

    let net = model.network();
    close(
        &weight(net, "features/kernel"),
        &[
            wf[0][0] - lr * gwf(0, 0),
            wf[0][1] - lr * gwf(0, 1),
            wf[1][0] - lr * gwf(1, 0),
            wf[1][1] - lr * gwf(1, 1),
        ],
        "features/kernel",
    );
    close(
        &weight(net, "features/bias"),
        &[bf[0] - lr * gbf(0), bf[1] - lr * gbf(1)],
        "features/bias",
    );
    // The domain head itself descends its loss (no reversal before it).
    close(
        &weight(net, "domain/kernel"),
        &[wd[0] - lr * gwd(0), wd[1] - lr * gwd(1)],
        "domain/kernel",
    );
    close(&weight(net, "domain/bias"), &[bd - lr * gbd], "domain/bias");
    close(
        &weight(net, "label/kernel"),
        &[wc[0] - lr * gwc(0), wc[1] - lr * gwc(1)],
        "label/kernel",
    );
    // The step logged the objective and the per-output parts under the output names.
    let label_loss = (0..4).map(|i| (c[i] - yc[i]).powi(2) * dom[i]).sum::<f64>() / n_src;
    let domain_loss = (0..4).map(|i| (d[i] - dom[i]).powi(2)).sum::<f64>() / n;
    close(
        &[logs.get("loss").unwrap() as f32],
        &[label_loss + domain_loss],
        "loss",
    );
    assert_eq!(logs.iter().count(), 3, "{logs:?}");
}
