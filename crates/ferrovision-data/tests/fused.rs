//! The fused fast paths (`fused`, `Augment::apply_image_chw`, `Dataset::map_batch_seeded`)
//! against torchvision fixtures and against the straightforward implementations.

mod common;

use ferrovision_data::fused::{jitter_chw, Jitter, JitterStep, GREY};
use ferrovision_data::image::{hsv_to_rgb, rgb_to_hsv};
use ferrovision_data::{Augment, Dataset, Error, Image, ImageSample, Normalize, Op};
use ferrovision_tensor::rng::Rng;
use std::path::PathBuf;

fn fixture(p: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../reference/fixtures")
        .join(p);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn mean_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

#[test]
fn jitter_matches_torchvision() {
    let f = fixture("image/jitter.json");
    let mut worst = 0f32;
    for (k, c) in f["cases"].as_array().unwrap().iter().enumerate() {
        let channels = c["channels"].as_u64().unwrap() as usize;
        let mut x = floats(&f[if channels == 3 { "rgb" } else { "grey" }]);
        let steps = c["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let v = s[1].as_f64().unwrap() as f32;
                match s[0].as_str().unwrap() {
                    "brightness" => JitterStep::Brightness(v),
                    "contrast" => JitterStep::Contrast(v),
                    "saturation" => JitterStep::Saturation(v),
                    _ => JitterStep::Hue(v),
                }
            })
            .collect();
        jitter_chw(&mut x, channels, &Jitter { steps }).unwrap();
        let d = max_diff(&x, &floats(&c["out"]));
        assert!(d < 1e-5, "case {k} {}: max diff {d}", c["steps"]);
        worst = worst.max(d);
    }
    println!("worst difference from torchvision: {worst:e}");
}

/// Straightforward per-pixel, per-step jitter on an interleaved f32 RGB image.
fn jitter_reference(img: &mut Image<f32>, j: &Jitter) {
    let cl = |v: f32| v.clamp(0.0, 1.0);
    for s in &j.steps {
        match *s {
            JitterStep::Brightness(f) => img.data.iter_mut().for_each(|v| *v = cl(*v * f)),
            JitterStep::Contrast(f) => {
                let n = (img.data.len() / 3) as f64;
                let mean = img
                    .data
                    .chunks_exact(3)
                    .map(|p| (GREY[0] * p[0] + GREY[1] * p[1] + GREY[2] * p[2]) as f64)
                    .sum::<f64>()
                    / n;
                let mean = mean as f32;
                img.data
                    .iter_mut()
                    .for_each(|v| *v = cl(f * *v + (1.0 - f) * mean));
            }
            JitterStep::Saturation(f) => {
                for p in img.data.chunks_exact_mut(3) {
                    let g = GREY[0] * p[0] + GREY[1] * p[1] + GREY[2] * p[2];
                    for v in p.iter_mut() {
                        *v = cl(f * *v + (1.0 - f) * g);
                    }
                }
            }
            JitterStep::Hue(d) => {
                for p in img.data.chunks_exact_mut(3) {
                    let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
                    let (r, g, b) = hsv_to_rgb(h + d, s, v);
                    p.copy_from_slice(&[r, g, b]);
                }
            }
        }
    }
}

fn planar(img: &Image<f32>) -> Vec<f32> {
    let (c, n) = (img.channels, img.width * img.height);
    (0..c * n).map(|k| img.data[(k % n) * c + k / n]).collect()
}

fn random_image(w: usize, h: usize, c: usize, seed: u64) -> Image<u8> {
    // Smooth colour gradients plus noise, like a photo, rather than pure noise.
    let mut rng = Rng::new(seed);
    let mut data = Vec::with_capacity(w * h * c);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let base = 128.0
                    + 100.0 * ((x as f32 * 0.03 + ch as f32 * 2.0).sin() * (y as f32 * 0.05).cos());
                data.push((base + rng.next_f32() * 40.0 - 20.0).clamp(0.0, 255.0) as u8);
            }
        }
    }
    Image::from_vec(w, h, c, data).unwrap()
}

#[test]
fn fused_jitter_matches_straightforward_steps() {
    // Random orders and factors (all 24 orders are likely among 60 draws); an odd size so the
    // blocks of the fused passes do not divide the image.
    let img = random_image(97, 61, 3, 1).to_f32();
    let mut worst = 0f32;
    for seed in 0..60 {
        let mut rng = Rng::new(seed);
        let j = Jitter::draw(0.4, 0.4, 0.4, 0.5, &mut rng);
        assert_eq!(j.steps.len(), 4);
        let mut want = img.clone();
        jitter_reference(&mut want, &j);
        let mut got = planar(&img);
        jitter_chw(&mut got, 3, &j).unwrap();
        let d = max_diff(&got, &planar(&want));
        assert!(d < 2e-5, "seed {seed} {j:?}: max diff {d}");
        worst = worst.max(d);
    }
    println!("worst difference from the per-step reference: {worst:e}");
    // Strength 0 leaves an op out, but the draws are the same.
    let (mut a, mut b) = (Rng::new(3), Rng::new(3));
    let j = Jitter::draw(0.0, 0.4, 0.0, 0.1, &mut a);
    Jitter::draw(0.4, 0.4, 0.4, 0.1, &mut b);
    assert_eq!(j.steps.len(), 2);
    assert_eq!(a.next_u64(), b.next_u64());
    let e = jitter_chw(&mut [0.0; 8], 2, &j).unwrap_err();
    assert!(e.to_string().contains("1 or 3 channels"), "{e}");
}

fn bench_augment(normalize: bool) -> Augment {
    let mut a = Augment::new(vec![
        Op::RandomResizedCrop {
            size: [224, 224],
            scale: [0.08, 1.0],
            ratio: [0.75, 4.0 / 3.0],
        },
        Op::Hflip { p: 0.5 },
        Op::ColorJitter {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
        },
    ]);
    if normalize {
        a.normalize = Some(Normalize::imagenet());
    }
    a
}

/// `apply` (8-bit intermediate images) then `to_tensor_chw`: the straightforward path.
fn via_apply(aug: &Augment, img: &Image<u8>, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let s = aug
        .apply(ImageSample::from_image(img.clone()), &mut rng)
        .unwrap();
    s.image
        .to_tensor_chw(aug.normalize.as_ref())
        .unwrap()
        .to_vec()
        .unwrap()
}

fn via_fused(aug: &Augment, img: &Image<u8>, seed: u64, len: usize) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut out = vec![f32::NAN; len];
    aug.apply_image_chw(img, &mut rng, &mut out).unwrap();
    out
}

#[test]
fn fused_augment_agrees_with_apply() {
    // Geometry only: the fused path skips one 8-bit rounding, so it is within half a level.
    let geo = Augment::new(bench_augment(false).ops[..2].to_vec());
    assert!(geo.is_fused());
    for seed in 0..12 {
        let img = random_image(150 + 37 * seed as usize, 120 + 23 * seed as usize, 3, seed);
        let d = max_diff(
            &via_fused(&geo, &img, seed, 3 * 224 * 224),
            &via_apply(&geo, &img, seed),
        );
        assert!(d <= 0.5 / 255.0 + 1e-6, "seed {seed}: {d}");
    }
    // With jitter (and normalisation): `apply` rounds to 8 bits after the resampling and
    // after each jitter step, which factors up to 1.4 amplify; a few levels at most, and
    // well under one level on average.
    for normalize in [false, true] {
        let aug = bench_augment(normalize);
        let scale = if normalize { 1.0 / 0.224 } else { 1.0 };
        for seed in 0..12 {
            let img = random_image(300 - 11 * seed as usize, 200 + 9 * seed as usize, 3, seed);
            let a = via_fused(&aug, &img, seed, 3 * 224 * 224);
            let b = via_apply(&aug, &img, seed);
            let (d, m) = (max_diff(&a, &b), mean_diff(&a, &b));
            assert!(d <= 4.0 / 255.0 * scale, "seed {seed}: max {d}");
            assert!(m <= 0.5 / 255.0 * scale, "seed {seed}: mean {m}");
        }
    }
}

#[test]
fn fused_augment_other_pipelines() {
    let img = random_image(90, 70, 3, 5);
    // Rotation is not axis-aligned: the general warp (in f32), then the jitter.
    let rot = Augment::new(vec![
        Op::Rotate { degrees: 20.0 },
        Op::ColorJitter {
            brightness: 0.2,
            contrast: 0.2,
            saturation: 0.2,
            hue: 0.05,
        },
    ]);
    for seed in 0..4 {
        let a = via_fused(&rot, &img, seed, 3 * 90 * 70);
        let b = via_apply(&rot, &img, seed);
        assert!(max_diff(&a, &b) <= 3.0 / 255.0, "rotate {seed}");
    }
    // A random crop larger than the image pads with `fill`.
    let pad = Augment::new(vec![Op::RandomCrop {
        size: [100, 120],
        padding: 0,
    }]);
    let a = via_fused(&pad, &img, 1, 3 * 100 * 120);
    assert!(max_diff(&a, &via_apply(&pad, &img, 1)) <= 0.5 / 255.0 + 1e-6);
    // Not fusable (gamma after jitter): `apply` then conversion, so exactly equal.
    let other = Augment::new(vec![
        Op::Hflip { p: 0.5 },
        Op::ColorJitter {
            brightness: 0.3,
            contrast: 0.0,
            saturation: 0.0,
            hue: 0.0,
        },
        Op::Gamma { min: 0.8, max: 1.2 },
    ]);
    assert!(!other.is_fused());
    for seed in 0..4 {
        assert_eq!(
            via_fused(&other, &img, seed, 3 * 90 * 70),
            via_apply(&other, &img, seed)
        );
    }
    // Jitter only (no geometry), and a grey image.
    let jit = Augment::new(bench_augment(false).ops[2..].to_vec());
    let grey = random_image(50, 40, 1, 2);
    for (im, c) in [(&img, 3), (&grey, 1)] {
        let n = c * im.width * im.height;
        let d = max_diff(&via_fused(&jit, im, 4, n), &via_apply(&jit, im, 4));
        assert!(d <= 0.5 / 255.0 + 1e-6, "jitter only, {c} channels: {d}");
    }
    // A wrong output size is an error naming both sizes.
    let mut out = vec![0f32; 10];
    let e = bench_augment(false)
        .apply_image_chw(&img, &mut Rng::new(1), &mut out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[3, 224, 224]") && e.contains("holds 10"), "{e}");
}

#[test]
fn map_batch_seeded_equals_map_seeded_then_batch() {
    let f = |x: i64, rng: &mut Rng, out: &mut [f32]| -> ferrovision_data::Result<()> {
        for (k, v) in out.iter_mut().enumerate() {
            *v = x as f32 * 10.0 + k as f32 + rng.next_f32();
        }
        Ok(())
    };
    let src = Dataset::range(0, 70, 1).unwrap();
    let want: Vec<Vec<f32>> = src
        .map_seeded(2, 11, move |x, rng| {
            let mut v = vec![0f32; 6];
            f(x, rng, &mut v)?;
            Ok(ferrovision_tensor::Tensor::from_vec(v, &[2, 3])?)
        })
        .batch(16, false)
        .collect_vec()
        .unwrap()
        .iter()
        .map(|t| t.to_vec().unwrap())
        .collect();
    assert_eq!(want.len(), 5);
    for workers in [1, 2, 3] {
        let ds = src.map_batch_seeded(workers, 11, 16, false, &[2, 3], f);
        let got = ds.collect_vec().unwrap();
        let shapes: Vec<Vec<usize>> = got.iter().map(|t| t.shape().to_vec()).collect();
        assert_eq!(shapes[0], vec![16, 2, 3]);
        assert_eq!(shapes[4], vec![6, 2, 3]);
        let got: Vec<Vec<f32>> = got.iter().map(|t| t.to_vec().unwrap()).collect();
        assert_eq!(got, want, "workers {workers}");
        // A second pass is a new epoch: other random numbers.
        let again: Vec<f32> = ds.iter().next().unwrap().unwrap().to_vec().unwrap();
        assert_ne!(again, got[0]);
    }
    // The labelled form: same images, labels as an i64 tensor.
    let labeled = src.map_batch_seeded_labeled(2, 11, 16, false, &[2, 3], move |x, rng, out| {
        f(x, rng, out)?;
        Ok(x * 2)
    });
    let got = labeled.collect_vec().unwrap();
    assert_eq!(got.len(), 5);
    for (b, (imgs, labels)) in got.iter().enumerate() {
        assert_eq!(imgs.to_vec::<f32>().unwrap(), want[b]);
        let l: Vec<i64> = labels.to_vec().unwrap();
        let first = 16 * b as i64;
        assert_eq!(
            l,
            (first..(first + 16).min(70))
                .map(|x| x * 2)
                .collect::<Vec<_>>()
        );
    }
    let dropped = src.map_batch_seeded(2, 11, 16, true, &[2, 3], f);
    assert_eq!(dropped.count().unwrap(), 4);
    // A failing element makes its batch an error; the other batches are fine.
    let failing = src.map_batch_seeded(2, 11, 16, false, &[2, 3], move |x, rng, out| {
        if x == 20 {
            return Err(Error::User("bad element 20".into()));
        }
        f(x, rng, out)
    });
    let r: Vec<_> = failing.iter().collect();
    assert_eq!(r.len(), 5);
    assert!(r[1]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("bad element 20"));
    assert!(r.iter().enumerate().all(|(i, b)| i == 1 || b.is_ok()));
}

#[test]
fn raccoon_jpegs_through_the_fused_path() {
    let Some(dir) = common::data("raccoon/images") else {
        return;
    };
    let aug = bench_augment(false);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    for (k, p) in files.iter().take(12).enumerate() {
        let img = ferrovision_data::image::decode_rgb8(&std::fs::read(p).unwrap(), p).unwrap();
        let a = via_fused(&aug, &img, k as u64, 3 * 224 * 224);
        let b = via_apply(&aug, &img, k as u64);
        let (d, m) = (max_diff(&a, &b), mean_diff(&a, &b));
        assert!(
            d <= 4.0 / 255.0 && m <= 0.5 / 255.0,
            "{}: {d} {m}",
            p.display()
        );
    }
}

/// `random_crop` with `padding` is torchvision's pad-then-crop: every output is exactly a
/// window of the image padded with `fill`, through both paths, and every offset occurs.
#[test]
fn random_crop_with_padding_is_pad_then_random_window() {
    let (w, h, pad) = (4usize, 3usize, 2usize);
    let bytes: Vec<u8> = (0..w * h).map(|i| 10 + 10 * i as u8).collect();
    let img = Image::from_vec(w, h, 1, bytes.clone()).unwrap();
    let aug = Augment::from_json(
        r#"{"ops": [{"op": "random_crop", "size": [3, 4], "padding": 2}], "fill": 0}"#,
        "test",
    )
    .unwrap();
    // The padded image, by hand.
    let (pw, ph) = (w + 2 * pad, h + 2 * pad);
    let mut padded = vec![0f32; pw * ph];
    for r in 0..h {
        for c in 0..w {
            padded[(r + pad) * pw + c + pad] = bytes[r * w + c] as f32 / 255.0;
        }
    }
    let window = |t: usize, l: usize| -> Vec<f32> {
        (0..3)
            .flat_map(|r| (0..4).map(move |c| (r, c)))
            .map(|(r, c)| padded[(t + r) * pw + l + c])
            .collect()
    };
    let mut seen = std::collections::HashSet::new();
    for seed in 0..300 {
        let a = via_fused(&aug, &img, seed, 12);
        let b = via_apply(&aug, &img, seed);
        let hit = (0..=ph - 3)
            .flat_map(|t| (0..=pw - 4).map(move |l| (t, l)))
            .find(|&(t, l)| max_diff(&a, &window(t, l)) < 1e-6)
            .unwrap_or_else(|| panic!("seed {seed}: {a:?} is no window of the padded image"));
        assert!(max_diff(&b, &window(hit.0, hit.1)) < 1e-6, "seed {seed}");
        seen.insert(hit);
    }
    assert_eq!(seen.len(), (ph - 3 + 1) * (pw - 4 + 1));
    let too_much = r#"{"ops": [{"op": "random_crop", "size": [3, 4], "padding": 100000}]}"#;
    assert!(Augment::from_json(too_much, "test").is_err());
}
