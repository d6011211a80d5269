//! Transfer learning end to end: a head grafted onto a cut backbone trains with the backbone
//! frozen (backbone weights bit-identical afterwards), and test-time augmentation / model
//! averaging against hand-computed answers.

#[allow(dead_code)] // tmp_dir is not needed here
mod common;

use common::serial;
use ferrovision_nn::layers::{BatchNormalization, Conv2D, Dense, Flatten, GlobalAveragePooling2D};
use ferrovision_nn::losses::SparseCategoricalCrossentropy;
use ferrovision_nn::optim::Sgd;
use ferrovision_nn::tensor::rng::{manual_seed, Rng};
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{Activation, Functional, Graph, Network, NetworkExt, Sequential};
use ferrovision_train::tta::{
    evaluate_probabilities, pad_images, predict_ensemble, predict_ten_crop, ten_crop,
};
use ferrovision_train::{ArrayData, Compile, FitOptions, Model};

fn backbone_net() -> Functional {
    let mut g = Graph::new();
    let x = g.input("image", &[Some(3), Some(8), Some(8)]);
    let c = g.apply(Conv2D::new(4, 3).named("conv"), &[x]).unwrap();
    let b = g
        .apply(BatchNormalization::new().named("bn"), &[c])
        .unwrap();
    let p = g
        .apply(GlobalAveragePooling2D::new().named("pool"), &[b])
        .unwrap();
    let y = g.apply(Dense::new(10).named("predictions"), &[p]).unwrap();
    g.build("pretrained", &[x], &[y]).unwrap()
}

#[test]
fn grafted_head_trains_with_the_backbone_frozen() {
    let _guard = serial();
    manual_seed(3);
    let original: Box<dyn Network> = Box::new(backbone_net());
    let before: Vec<(String, Vec<f32>)> = original
        .named_weights()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("predictions/"))
        .map(|(n, p)| (format!("backbone/{n}"), p.to_vec().unwrap()))
        .collect();
    let backbone = original
        .into_functional()
        .unwrap()
        .cut_at("pool", "backbone")
        .unwrap();
    let mut g = Graph::new();
    let x = g.input("image", &[Some(3), Some(8), Some(8)]);
    let f = g.apply(backbone, &[x]).unwrap();
    let h = g
        .apply(Dense::new(6).activation(Activation::Relu).named("fc"), &[f])
        .unwrap();
    let y = g.apply(Dense::new(3).named("classes"), &[h]).unwrap();
    let mut model = Model::new(g.build("grafted", &[x], &[y]).unwrap());
    assert_eq!(
        model
            .network_mut()
            .set_trainable_by_prefix("backbone", false)
            .unwrap(),
        1
    );
    model
        .compile(Compile::new(
            Sgd::new().lr(0.1).momentum(0.9),
            SparseCategoricalCrossentropy::new().from_logits(true),
        ))
        .unwrap();
    let mut rng = Rng::new(4);
    let xs = Tensor::randn(&[24, 3, 8, 8], 0.5, 1.0, &mut rng).unwrap();
    let ys = Tensor::randint(&[24], 0, 3, &mut rng).unwrap();
    let head_before = model.network().get_weights().unwrap();
    let opts = FitOptions {
        epochs: 2,
        batch_size: 8,
        verbose: 0,
        ..Default::default()
    };
    model.fit(&xs, &ys, opts, vec![]).unwrap();
    let after = model.network().named_weights();
    for (name, want) in &before {
        let (_, p) = after.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(&p.to_vec().unwrap(), want, "{name} moved");
    }
    let head_after = model.network().get_weights().unwrap();
    let n = head_after.len();
    assert_ne!(
        head_after[n - 1].to_vec::<f32>().unwrap(),
        head_before[n - 1].to_vec::<f32>().unwrap(),
        "the new head trained"
    );
}

/// A 2-class "model" on 1x2x2 crops: logit 0 is the top-left pixel, logit 1 the bottom-right.
fn corner_model() -> Model {
    let net = Sequential::new(&[1, 2, 2])
        .add(Flatten::new())
        .add(Dense::new(2))
        .build()
        .unwrap();
    let kernel =
        Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], &[4, 2]).unwrap();
    net.set_weights(&[kernel, Tensor::zeros(&[2])]).unwrap();
    Model::new(net)
}

fn softmax2(a: f64, b: f64) -> [f64; 2] {
    let m = a.max(b);
    let (ea, eb) = ((a - m).exp(), (b - m).exp());
    [ea / (ea + eb), eb / (ea + eb)]
}

#[test]
fn ten_crop_views_follow_torchvision() {
    // One 1x5x4 image with pixel value 10 * row + col.
    let img: Vec<f32> = (0..5)
        .flat_map(|r| (0..4).map(move |c| (10 * r + c) as f32))
        .collect();
    let x = Tensor::from_vec(img, &[1, 1, 5, 4]).unwrap();
    let views = ten_crop(&x, [2, 3]).unwrap();
    // Corners, then the centre at round(1.5) = 2 (half to even), round(0.5) = 0.
    let want_tl = [[0.0, 1.0, 2.0], [10.0, 11.0, 12.0]];
    let want: [[[f32; 3]; 2]; 5] = [
        want_tl,
        [[1.0, 2.0, 3.0], [11.0, 12.0, 13.0]],
        [[30.0, 31.0, 32.0], [40.0, 41.0, 42.0]],
        [[31.0, 32.0, 33.0], [41.0, 42.0, 43.0]],
        [[20.0, 21.0, 22.0], [30.0, 31.0, 32.0]],
    ];
    assert_eq!(views.len(), 10);
    for (i, w) in want.iter().enumerate() {
        let flat: Vec<f32> = w.iter().flatten().copied().collect();
        assert_eq!(views[i].to_vec::<f32>().unwrap(), flat, "view {i}");
        // The flipped image's crop at the same place: mirrored columns 3 - c.
        let fl: Vec<f32> = w
            .iter()
            .flat_map(|row| {
                let r = (row[0] / 10.0).floor();
                let c0 = row[0] - 10.0 * r;
                [3.0 - c0, 2.0 - c0, 1.0 - c0].map(|c| 10.0 * r + c)
            })
            .collect();
        assert_eq!(
            views[5 + i].to_vec::<f32>().unwrap(),
            fl,
            "flipped view {i}"
        );
    }
    assert!(ten_crop(&x, [6, 3]).is_err());
    assert!(ten_crop(&Tensor::zeros(&[4, 4]), [2, 2]).is_err());
    // Padding by 1 with a per-channel value.
    let p = pad_images(&Tensor::ones(&[1, 2, 1, 1]), 1, &[-1.0, 5.0]).unwrap();
    assert_eq!(p.shape(), &[1, 2, 3, 3]);
    let v = p.to_vec::<f32>().unwrap();
    assert_eq!(
        v[..9],
        [-1.0, -1.0, -1.0, -1.0, 1.0, -1.0, -1.0, -1.0, -1.0]
    );
    assert_eq!(v[9 + 4], 1.0);
    assert_eq!(v[9], 5.0);
}

#[test]
fn ten_crop_prediction_averages_softmax_over_the_views() {
    let model = corner_model();
    // A 1x3x3 image: pixel (r, c) = r * 3 + c (0..8), scaled.
    let img: Vec<f32> = (0..9).map(|v| v as f32 * 0.25).collect();
    let x = Tensor::from_vec(img.clone(), &[1, 1, 3, 3]).unwrap();
    let got = predict_ten_crop(&model, &x, [2, 2], 4).unwrap();
    // By hand: crop origins (0,0), (0,1), (1,0), (1,1), centre round(0.5) = 0 -> (0,0); each
    // crop's logits are its top-left and bottom-right pixels; the flipped image has pixel
    // (r, c) = img[r][2 - c].
    let px = |r: usize, c: usize, flip: bool| img[r * 3 + if flip { 2 - c } else { c }] as f64;
    let mut want = [0.0f64; 2];
    for flip in [false, true] {
        for (t, l) in [(0, 0), (0, 1), (1, 0), (1, 1), (0, 0)] {
            let p = softmax2(px(t, l, flip), px(t + 1, l + 1, flip));
            want[0] += p[0] / 10.0;
            want[1] += p[1] / 10.0;
        }
    }
    let got = got.to_vec::<f32>().unwrap();
    for (g, w) in got.iter().zip(want) {
        assert!((*g as f64 - w).abs() < 1e-6, "{got:?} vs {want:?}");
    }
}

#[test]
fn ensemble_averages_member_probabilities() {
    let member = |b: [f32; 3]| {
        let net = Sequential::new(&[2]).add(Dense::new(3)).build().unwrap();
        net.set_weights(&[
            Tensor::zeros(&[2, 3]),
            Tensor::from_vec(b.to_vec(), &[3]).unwrap(),
        ])
        .unwrap();
        Model::new(net)
    };
    let (a, b) = (member([0.0, 1.0, 2.0]), member([2.0, 0.0, 0.0]));
    let x = Tensor::zeros(&[2, 2]);
    let got = predict_ensemble(&[&a, &b], &x, 8).unwrap();
    let sm = |l: [f64; 3]| {
        let s: f64 = l.iter().map(|v| v.exp()).sum();
        l.map(|v| v.exp() / s)
    };
    let (pa, pb) = (sm([0.0, 1.0, 2.0]), sm([2.0, 0.0, 0.0]));
    let want: Vec<f64> = (0..3).map(|i| (pa[i] + pb[i]) / 2.0).collect();
    let got = got.to_vec::<f32>().unwrap();
    assert_eq!(got.len(), 6);
    for row in got.chunks(3) {
        for (g, w) in row.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }
    assert!(predict_ensemble(&[], &x, 8).is_err());
    let other = Model::new(Sequential::new(&[2]).add(Dense::new(4)).build().unwrap());
    assert!(predict_ensemble(&[&a, &other], &x, 8).is_err());
}

#[test]
fn scores_of_averaged_probabilities_with_ties() {
    // 7 classes, 3 samples. Sample 0: target best (top-1 hit). Sample 1: target 5th highest
    // (top-5 hit, top-1 miss). Sample 2: target tied with five others for 2nd place: only one
    // class scores strictly higher, so it is in the top 5 (Keras/in_top_k rule).
    let probs = vec![
        0.40f32, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10, // target 0
        0.30, 0.25, 0.15, 0.12, 0.10, 0.05, 0.03, // target 4 (5th)
        0.25, 0.125, 0.125, 0.125, 0.125, 0.125, 0.125, // target 6 (tied)
    ];
    let labels = Tensor::from_vec(vec![0.0f32, 4.0, 6.0], &[3]).unwrap();
    let x = Tensor::zeros(&[3, 1]);
    let mut data = ArrayData::new(vec![x], vec![labels], 2).unwrap();
    let p = Tensor::from_vec(probs.clone(), &[3, 7]).unwrap();
    let mut offset = 0;
    let s = evaluate_probabilities(&mut data, &mut |x: &Tensor| {
        let n = x.shape()[0];
        let out = p.narrow(0, offset, n)?.contiguous()?;
        offset += n;
        Ok(out)
    })
    .unwrap();
    assert_eq!(s.samples, 3);
    assert!((s.accuracy - 1.0 / 3.0).abs() < 1e-12, "{s:?}");
    assert!((s.top5_accuracy - 1.0).abs() < 1e-12, "{s:?}");
    let want_loss = -((0.40f32 as f64).ln() + (0.10f32 as f64).ln() + (0.125f32 as f64).ln()) / 3.0;
    assert!((s.loss - want_loss).abs() < 1e-9, "{s:?} vs {want_loss}");
}
