//! The CLI's parts that do not train: the embedded digits, image loading for `predict`, the
//! history plot, `--data` parsing and the history file.

mod common;

use common::scratch;
use ferrovision_cli::builtin;
use ferrovision_cli::data::DataSpec;
use ferrovision_cli::image_input::{load_digit, mnist_normalize, open_grey, to_white_on_black};
use ferrovision_cli::plot::{panels, plot_history};
use ferrovision_cli::run_dir::{history_from_json, history_to_json};
use ferrovision_cli::tasks::classify::top_k;
use ferrovision_nn::datasets::mnist::{load_mnist, Split};
use ferrovision_train::{History, Logs};
use image::{GrayImage, Luma, Rgb, RgbImage, RgbaImage};
use std::path::{Path, PathBuf};

/// Test digit `i` of the embedded set as 8-bit grey (values exactly as stored).
fn builtin_digit(i: usize) -> (GrayImage, i64) {
    let (x, y) = builtin::digits(Split::Test).unwrap();
    let px = x.narrow(0, i, 1).unwrap().contiguous().unwrap();
    let px = px.to_vec::<f32>().unwrap();
    let img = GrayImage::from_fn(28, 28, |c, r| {
        Luma([(px[(r * 28 + c) as usize] * 255.0).round() as u8])
    });
    (img, y.to_vec::<i64>().unwrap()[i])
}

fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa * sbb).sqrt()
}

fn center_of_mass(px: &[f32]) -> (f64, f64) {
    let (mut mx, mut my, mut m) = (0.0, 0.0, 0.0);
    for (k, &v) in px.iter().enumerate() {
        let v = v as f64;
        mx += v * ((k % 28) as f64 + 0.5);
        my += v * ((k / 28) as f64 + 0.5);
        m += v;
    }
    (mx / m, my / m)
}

#[test]
fn builtin_digits_are_balanced_real_mnist() {
    let (x, y) = builtin::digits(Split::Train).unwrap();
    assert_eq!(x.shape(), &[builtin::TRAIN_LEN, 1, 28, 28]);
    let mut h = [0usize; 10];
    for v in y.to_vec::<i64>().unwrap() {
        h[v as usize] += 1;
    }
    assert_eq!(h, [600; 10]);
    let (xt, yt) = builtin::digits(Split::Test).unwrap();
    assert_eq!(xt.shape(), &[builtin::TEST_LEN, 1, 28, 28]);
    let mut h = [0usize; 10];
    for v in yt.to_vec::<i64>().unwrap() {
        h[v as usize] += 1;
    }
    assert_eq!(h, [100; 10]);
}

/// The slice is what `data/indices.txt` says: those images and labels of the official files.
#[test]
fn builtin_digits_match_the_official_files() {
    let dir = std::env::var_os("FERROVISION_MNIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist"));
    if !dir.is_dir() {
        println!("SKIP: {} not found (set FERROVISION_MNIST)", dir.display());
        return;
    }
    let indices =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/indices.txt"))
            .unwrap();
    let lines: Vec<&str> = indices.lines().filter(|l| !l.starts_with('#')).collect();
    for (split, line) in [(Split::Train, lines[0]), (Split::Test, lines[1])] {
        let idx: Vec<usize> = line.split(' ').map(|s| s.parse().unwrap()).collect();
        let (x, y) = load_mnist(&dir, split).unwrap();
        let (bx, by) = builtin::digits(split).unwrap();
        assert_eq!(idx.len(), by.shape()[0]);
        let yv = y.to_vec::<i64>().unwrap();
        let byv = by.to_vec::<i64>().unwrap();
        let xv = x.to_vec::<f32>().unwrap();
        let bxv = bx.to_vec::<f32>().unwrap();
        for (k, &i) in idx.iter().enumerate() {
            assert_eq!(byv[k], yv[i], "label of {split:?} index {i}");
            assert_eq!(&bxv[k * 784..(k + 1) * 784], &xv[i * 784..(i + 1) * 784]);
        }
    }
}

#[test]
fn an_mnist_style_png_loads_unchanged() {
    let (img, _) = builtin_digit(7);
    let dir = scratch();
    let path = dir.join("digit.png");
    img.save(&path).unwrap();
    let px = load_digit(&path).unwrap();
    let expected: Vec<f32> = img.pixels().map(|p| p.0[0] as f32 / 255.0).collect();
    assert_eq!(px, expected);
}

#[test]
fn dark_ink_on_paper_is_inverted_cropped_and_centred() {
    let (img, _) = builtin_digit(3);
    let original: Vec<f32> = img.pixels().map(|p| p.0[0] as f32 / 255.0).collect();
    // Black ink on white paper, 5x larger, off-centre on a wider sheet, as RGB JPEG.
    let big = image::imageops::resize(&img, 140, 140, image::imageops::FilterType::Triangle);
    let mut sheet = RgbImage::from_pixel(260, 200, Rgb([255, 255, 255]));
    for (x, y, p) in big.enumerate_pixels() {
        let v = 255 - p.0[0];
        sheet.put_pixel(x + 100, y + 40, Rgb([v, v, v]));
    }
    let dir = scratch();
    let path = dir.join("paper.jpg");
    sheet.save(&path).unwrap();
    let px = load_digit(&path).unwrap();
    assert_eq!(px.len(), 784);
    let (cx, cy) = center_of_mass(&px);
    assert!(
        (cx - 14.0).abs() < 1.0 && (cy - 14.0).abs() < 1.0,
        "{cx} {cy}"
    );
    let r = correlation(&px, &original);
    assert!(r > 0.85, "correlation with the original digit {r}");
    // The background is black after inversion.
    assert!(px[0] < 0.05 && px[783] < 0.05);
}

#[test]
fn transparent_background_counts_as_paper() {
    let (img, _) = builtin_digit(5);
    // Black ink whose alpha is the digit; the rest fully transparent.
    let rgba = RgbaImage::from_fn(28, 28, |x, y| {
        image::Rgba([0, 0, 0, img.get_pixel(x, y).0[0]])
    });
    let dir = scratch();
    let path = dir.join("ink.png");
    rgba.save(&path).unwrap();
    let grey = open_grey(&path).unwrap();
    // Transparent pixels became white paper, full-alpha ink black.
    assert_eq!(grey.get_pixel(0, 0).0[0], 255);
    let px = load_digit(&path).unwrap();
    let expected: Vec<f32> = img.pixels().map(|p| p.0[0] as f32 / 255.0).collect();
    let maxdiff = px
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(maxdiff <= 1.0 / 255.0 + 1e-6, "{maxdiff}");
}

#[test]
fn blank_and_bright_images() {
    // A blank white sheet: inverted to black, no ink, plain resize.
    let white = GrayImage::from_pixel(50, 40, Luma([255]));
    let norm = mnist_normalize(&to_white_on_black(white));
    assert_eq!(norm.dimensions(), (28, 28));
    assert!(norm.pixels().all(|p| p.0[0] == 0));
}

#[test]
fn unreadable_images_are_errors_naming_the_file() {
    let dir = scratch();
    let txt = dir.join("notes.png");
    std::fs::write(&txt, "hello").unwrap();
    let e = load_digit(&txt).unwrap_err().to_string();
    assert!(e.contains("notes.png"), "{e}");
    let missing = dir.join("missing.png");
    let e = load_digit(&missing).unwrap_err().to_string();
    assert!(e.contains("missing.png"), "{e}");
    // A truncated PNG.
    let (img, _) = builtin_digit(1);
    let good = dir.join("good.png");
    img.save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.join("cut.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_digit(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.png"), "{e}");
}

fn history(rows: &[&[(&str, f64)]]) -> History {
    let mut h = History::default();
    for (e, r) in rows.iter().enumerate() {
        let mut l = Logs::new();
        for &(k, v) in r.iter() {
            l.insert(k, v);
        }
        h.epochs.push(e);
        h.logs.push(l);
    }
    h
}

#[test]
fn history_plot_has_both_curves() {
    let h = history(&[
        &[
            ("loss", 0.9),
            ("accuracy", 0.7),
            ("val_loss", 0.5),
            ("val_accuracy", 0.85),
            ("lr", 1e-3),
        ],
        &[
            ("loss", 0.4),
            ("accuracy", 0.88),
            ("val_loss", 0.3),
            ("val_accuracy", 0.91),
            ("lr", 1e-3),
        ],
        &[
            ("loss", 0.2),
            ("accuracy", 0.95),
            ("val_loss", f64::NAN),
            ("val_accuracy", 0.93),
            ("lr", 1e-3),
        ],
    ]);
    let p = panels(&h);
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].key, "loss");
    assert_eq!(
        p[0].series[0],
        (
            "train".to_string(),
            vec![(1.0, 0.9), (2.0, 0.4), (3.0, 0.2)]
        )
    );
    // The NaN is left out.
    assert_eq!(
        p[0].series[1],
        ("val".to_string(), vec![(1.0, 0.5), (2.0, 0.3)])
    );
    assert_eq!(p[1].key, "accuracy");

    let dir = scratch();
    let path = dir.join("history.png");
    plot_history(&h, &path).unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (1040, 380));
    let count = |c: [u8; 3]| img.pixels().filter(|p| p.0 == c).count();
    // Train (blue) and validation (orange) lines and markers in both panels.
    let blue = count([31, 119, 180]);
    let orange = count([255, 127, 14]);
    assert!(blue > 200 && orange > 200, "blue {blue} orange {orange}");
    // No temporary file left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    let e = plot_history(&History::default(), &dir.join("empty.png")).unwrap_err();
    assert!(e.to_string().contains("nothing to plot"), "{e}");
}

#[test]
fn history_json_roundtrip() {
    let h = history(&[
        &[("loss", 0.5), ("val_loss", f64::NAN)],
        &[("loss", 0.25), ("val_loss", 0.75)],
    ]);
    let v = history_to_json(&h);
    let back = history_from_json(&v, Path::new("h.json")).unwrap();
    assert_eq!(back.epochs, vec![0, 1]);
    assert_eq!(back.logs[1], h.logs[1]);
    assert!(back.logs[0].get("val_loss").unwrap().is_nan());
    // Key order survives (loss before val_loss).
    let keys: Vec<&str> = back.logs[1].iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["loss", "val_loss"]);
}

#[test]
fn data_specs() {
    assert_eq!("builtin".parse::<DataSpec>().unwrap(), DataSpec::Builtin);
    assert_eq!(
        "mnist:/d/m".parse::<DataSpec>().unwrap(),
        DataSpec::Mnist("/d/m".into())
    );
    assert_eq!(
        "fashion-mnist:x".parse::<DataSpec>().unwrap(),
        DataSpec::FashionMnist("x".into())
    );
    assert_eq!(
        "mnist:/d/m".parse::<DataSpec>().unwrap().to_string(),
        "mnist:/d/m"
    );
    for bad in ["mnist", "mnist:", "cifar:/x", ""] {
        let e = bad.parse::<DataSpec>().unwrap_err().to_string();
        assert!(e.contains("mnist"), "{bad}: {e}");
    }
}

#[test]
fn top_k_orders_by_probability() {
    let t = top_k(&[0.1, 0.5, 0.05, 0.35], 3);
    assert_eq!(t, vec![(1, 0.5), (3, 0.35), (0, 0.1)]);
    assert_eq!(top_k(&[0.2, 0.8], 5).len(), 2);
}
