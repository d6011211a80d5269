//! IDX / MNIST reader: real data when present (skipped with a message otherwise), and every
//! error path on small synthetic files.
//!
//! The expected values for the real files are published facts about the datasets, not outputs
//! of this reader: the per-class counts from LeCun's MNIST page and Zalando's Fashion-MNIST
//! README (6000/1000 per class), the first labels as every MNIST tutorial prints them, and the
//! pixel mean/std used everywhere to normalize them (MNIST train 0.1307/0.3081, Fashion-MNIST
//! train 0.2860/0.3530). A numpy reader gave the same values on these files.

use ferrovision_nn::datasets::idx::{parse_idx, read_idx, IdxArray, IdxType};
use ferrovision_nn::datasets::mnist::{
    self, candidate_names, decode_pair, find_files, load_fashion_mnist, load_mnist, load_pair,
    Split,
};
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::Error;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `$var`, or `data/<default>` in the repository (filled by `scripts/fetch_mnist.sh`).
fn data_dir(var: &str, default: &str) -> Option<PathBuf> {
    let dir = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data")
            .join(default)
    });
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "SKIP: {} not found (set {var} to a directory with the IDX files)",
            dir.display()
        );
        None
    }
}

/// A fresh, empty scratch directory for one test.
fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ferrovision-datasets-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// `n` synthetic 28x28 images: image `i` has pixel `p` = `(i * 7 + p) % 256`.
fn synthetic_images(n: usize) -> Vec<u8> {
    let pixels: Vec<u8> = (0..n * 784)
        .map(|k| ((k / 784) * 7 + k % 784) as u8)
        .collect();
    mnist::encode_images(&pixels).unwrap()
}

fn synthetic_labels(labels: &[u8]) -> Vec<u8> {
    mnist::encode_labels(labels)
}

/// The message of a Format error, after checking that it names `file`.
fn format_msg(err: Error, file: &Path) -> String {
    match err {
        Error::Format { path, msg } => {
            assert_eq!(path, file, "the error names the wrong file: {msg}");
            msg
        }
        other => panic!(
            "expected a Format error for {}, got {other:?}",
            file.display()
        ),
    }
}

fn histogram(labels: &Tensor) -> Vec<usize> {
    let mut h = vec![0; 10];
    for v in labels.to_vec::<i64>().unwrap() {
        h[v as usize] += 1;
    }
    h
}

fn mean_std(x: &Tensor) -> (f64, f64) {
    let v = x.to_vec::<f32>().unwrap();
    let n = v.len() as f64;
    let mean = v.iter().map(|&a| a as f64).sum::<f64>() / n;
    let var = v.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn real_mnist_train_and_test() {
    let Some(dir) = data_dir("FERROVISION_MNIST", "mnist") else {
        return;
    };
    let (x, y) = load_mnist(&dir, Split::Train).unwrap();
    assert_eq!(x.shape(), &[60000, 1, 28, 28]);
    assert_eq!(y.shape(), &[60000]);
    assert_eq!(y.dtype(), ferrovision_nn::tensor::DType::I64);
    assert_eq!(
        histogram(&y),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        y.narrow(0, 0, 10).unwrap().to_vec::<i64>().unwrap(),
        [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    );
    let (mean, std) = mean_std(&x);
    assert!((mean - 0.1307).abs() < 5e-4, "mean {mean}");
    assert!((std - 0.3081).abs() < 5e-4, "std {std}");
    let v = x.to_vec::<f32>().unwrap();
    assert!(v.iter().all(|&p| (0.0..=1.0).contains(&p)));
    assert_eq!(v.iter().cloned().fold(0.0f32, f32::max), 1.0);

    let (xt, yt) = load_mnist(&dir, Split::Test).unwrap();
    assert_eq!(xt.shape(), &[10000, 1, 28, 28]);
    assert_eq!(
        histogram(&yt),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert_eq!(
        yt.narrow(0, 0, 5).unwrap().to_vec::<i64>().unwrap(),
        [7, 2, 1, 0, 4]
    );
}

#[test]
fn real_fashion_mnist_gzipped() {
    let Some(dir) = data_dir("FERROVISION_FASHION_MNIST", "fashion-mnist") else {
        return;
    };
    let (x, y) = load_fashion_mnist(&dir, Split::Train).unwrap();
    assert_eq!(x.shape(), &[60000, 1, 28, 28]);
    assert_eq!(histogram(&y), [6000; 10]);
    assert_eq!(
        y.narrow(0, 0, 4).unwrap().to_vec::<i64>().unwrap(),
        [9, 0, 0, 3]
    );
    let (mean, std) = mean_std(&x);
    assert!((mean - 0.2860).abs() < 5e-4, "mean {mean}");
    assert!((std - 0.3530).abs() < 5e-4, "std {std}");
    let (xt, yt) = load_fashion_mnist(&dir, Split::Test).unwrap();
    assert_eq!(xt.shape(), &[10000, 1, 28, 28]);
    assert_eq!(histogram(&yt), [1000; 10]);
}

#[test]
fn real_file_truncated_copy_is_a_clear_error() {
    let Some(dir) = data_dir("FERROVISION_MNIST", "mnist") else {
        return;
    };
    let (images, _) = find_files(&dir, Split::Test).unwrap();
    let bytes = std::fs::read(&images).unwrap();
    let tmp = scratch();
    let cut = tmp.join("t10k-images-idx3-ubyte");
    std::fs::write(&cut, &bytes[..bytes.len() - 784 * 3 - 5]).unwrap();
    let msg = format_msg(read_idx(&cut).unwrap_err(), &cut);
    assert!(msg.contains("truncated"), "{msg}");
    assert!(msg.contains("[10000, 28, 28]"), "{msg}");
    assert!(msg.contains("7840016"), "{msg}");
}

#[test]
fn synthetic_roundtrip_raw_and_gzip_agree() {
    let images = synthetic_images(3);
    let labels = synthetic_labels(&[3, 0, 9]);
    let tmp = scratch();
    // Raw files with the npm/LeCun names; gzipped copies with the dotted variant.
    std::fs::write(tmp.join("train-images-idx3-ubyte"), &images).unwrap();
    std::fs::write(tmp.join("train-labels-idx1-ubyte"), &labels).unwrap();
    std::fs::write(tmp.join("test-images.idx3-ubyte.gz"), gzip(&images)).unwrap();
    std::fs::write(tmp.join("test-labels.idx1-ubyte.gz"), gzip(&labels)).unwrap();

    let (x, y) = load_mnist(&tmp, Split::Train).unwrap();
    let (xg, yg) = load_mnist(&tmp, Split::Test).unwrap();
    assert_eq!(x.shape(), &[3, 1, 28, 28]);
    assert_eq!(y.to_vec::<i64>().unwrap(), [3, 0, 9]);
    assert_eq!(x.to_vec::<f32>().unwrap(), xg.to_vec::<f32>().unwrap());
    assert_eq!(yg.to_vec::<i64>().unwrap(), [3, 0, 9]);
    // Pixel (image 1, row 2, col 5) is byte (7 + 2*28 + 5) % 256, scaled by 1/255.
    let v = x.to_vec::<f32>().unwrap();
    assert_eq!(v[784 + 2 * 28 + 5], (7 + 56 + 5) as f32 / 255.0);
    // The same from memory (what the CLI does with its embedded copy).
    let (xm, ym) = decode_pair(
        &gzip(&images),
        Path::new("mem-images"),
        &labels,
        Path::new("mem-labels"),
    )
    .unwrap();
    assert_eq!(xm.to_vec::<f32>().unwrap(), v);
    assert_eq!(ym.to_vec::<i64>().unwrap(), [3, 0, 9]);
}

#[test]
fn header_fields_are_parsed() {
    let bytes = synthetic_images(2);
    assert_eq!(&bytes[..4], &[0, 0, 8, 3]);
    let a = parse_idx(&bytes, Path::new("x")).unwrap();
    assert_eq!(a.dtype, IdxType::U8);
    assert_eq!(a.dims, [2, 28, 28]);
    assert_eq!(a.magic(), 0x0803);
    // Other element types parse too (sizes scale with the element width).
    let i32s = IdxArray {
        dtype: IdxType::I32,
        dims: vec![2, 3],
        data: vec![0; 24],
    }
    .to_bytes();
    assert_eq!(&i32s[..4], &[0, 0, 0x0C, 2]);
    let b = parse_idx(&i32s, Path::new("y")).unwrap();
    assert_eq!(
        (b.dtype, b.dims.clone(), b.data.len()),
        (IdxType::I32, vec![2, 3], 24)
    );
    let short = &i32s[..i32s.len() - 1];
    let msg = format_msg(
        parse_idx(short, Path::new("y")).unwrap_err(),
        Path::new("y"),
    );
    assert!(
        msg.contains("truncated") && msg.contains("4-byte elements"),
        "{msg}"
    );
}

#[test]
fn truncated_and_padded_files() {
    let tmp = scratch();
    let images = synthetic_images(4);
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("empty", vec![], &["0 bytes long", "magic number"]),
        ("magic-only", images[..3].to_vec(), &["3 bytes long"]),
        (
            "header-cut",
            images[..10].to_vec(),
            &["truncated header", "3 dimension sizes"],
        ),
        (
            "data-cut",
            images[..images.len() - 100].to_vec(),
            &["truncated", "[4, 28, 28]", "3136 data bytes"],
        ),
        (
            "padded",
            [images.as_slice(), &[0u8; 7]].concat(),
            &["7 unexpected bytes"],
        ),
    ];
    for (name, bytes, needles) in cases {
        for gz in [false, true] {
            let path = tmp.join(format!("{name}{}", if gz { ".gz" } else { "" }));
            std::fs::write(&path, if gz { gzip(&bytes) } else { bytes.clone() }).unwrap();
            let msg = format_msg(read_idx(&path).unwrap_err(), &path);
            for n in needles {
                assert!(msg.contains(n), "{name} (gz {gz}): '{n}' not in: {msg}");
            }
        }
    }
}

#[test]
fn corrupt_gzip_streams() {
    let tmp = scratch();
    let gz = gzip(&synthetic_images(20));
    // Cut in the middle of the deflate stream.
    let cut = tmp.join("cut.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let msg = format_msg(read_idx(&cut).unwrap_err(), &cut);
    assert!(msg.contains("gzip") || msg.contains("truncated"), "{msg}");
    // Damage the CRC trailer: the data inflates but fails verification.
    let mut bad_crc = gz.clone();
    let k = bad_crc.len() - 8;
    bad_crc[k] ^= 0xFF;
    let crc = tmp.join("crc.gz");
    std::fs::write(&crc, &bad_crc).unwrap();
    let msg = format_msg(read_idx(&crc).unwrap_err(), &crc);
    assert!(msg.contains("gzip data is corrupt"), "{msg}");
    // Garbage after a gzip magic.
    let junk = tmp.join("junk.gz");
    std::fs::write(&junk, [0x1f, 0x8b, 0x08, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
    let msg = format_msg(read_idx(&junk).unwrap_err(), &junk);
    assert!(msg.contains("gzip"), "{msg}");
    // Bytes after a valid gzip stream are an error, as they are after a raw file.
    for tail in [&b"garbage"[..], &[0u8; 16][..]] {
        let trailing = tmp.join("trailing.gz");
        std::fs::write(&trailing, [gz.as_slice(), tail].concat()).unwrap();
        let msg = format_msg(read_idx(&trailing).unwrap_err(), &trailing);
        assert!(msg.contains("gzip data is corrupt"), "{msg}");
    }
}

#[test]
fn a_multi_member_gzip_file_is_one_stream() {
    // `cat head.gz body.gz > images.gz` (gzip's own multi-member format) is a valid file.
    let tmp = scratch();
    let raw = synthetic_images(5);
    let (head, body) = raw.split_at(300);
    let p = tmp.join("multi.gz");
    std::fs::write(&p, [gzip(head), gzip(body)].concat()).unwrap();
    let arr = read_idx(&p).unwrap();
    assert_eq!(arr.to_bytes(), raw);
    assert_eq!(
        parse_idx(&[gzip(head), gzip(body)].concat(), &p).unwrap(),
        arr
    );
}

#[test]
fn bad_magic_numbers() {
    let tmp = scratch();
    let p = tmp.join("png-not-idx");
    std::fs::write(&p, b"\x89PNG\r\n\x1a\n0000000000000000").unwrap();
    let msg = format_msg(read_idx(&p).unwrap_err(), &p);
    assert!(msg.contains("bad magic number 0x89504E47"), "{msg}");
    assert!(msg.contains("0x00000803"), "{msg}");
    // Unknown type code 0x07.
    let msg = format_msg(
        parse_idx(&[0, 0, 7, 1, 0, 0, 0, 0], Path::new("t")).unwrap_err(),
        Path::new("t"),
    );
    assert!(msg.contains("0x00000701"), "{msg}");
}

#[test]
fn images_and_labels_must_be_the_right_kind() {
    let tmp = scratch();
    let images = tmp.join("i");
    let labels = tmp.join("l");
    std::fs::write(&images, synthetic_images(2)).unwrap();
    std::fs::write(&labels, synthetic_labels(&[1, 2])).unwrap();
    // Swapped: labels given as images.
    let msg = format_msg(load_pair(&labels, &images).unwrap_err(), &labels);
    assert!(
        msg.contains("expected 0x00000803") && msg.contains("labels file"),
        "{msg}"
    );
    // Labels file given twice.
    let msg = format_msg(load_pair(&images, &images).unwrap_err(), &images);
    assert!(
        msg.contains("expected 0x00000801") && msg.contains("images file"),
        "{msg}"
    );
}

#[test]
fn wrong_image_size_count_mismatch_and_bad_labels() {
    let tmp = scratch();
    let small = tmp.join("small");
    std::fs::write(
        &small,
        IdxArray {
            dtype: IdxType::U8,
            dims: vec![2, 8, 8],
            data: vec![0; 128],
        }
        .to_bytes(),
    )
    .unwrap();
    let labels = tmp.join("labels");
    std::fs::write(&labels, synthetic_labels(&[1, 2])).unwrap();
    let msg = format_msg(load_pair(&small, &labels).unwrap_err(), &small);
    assert!(msg.contains("8x8") && msg.contains("28x28"), "{msg}");

    let three = tmp.join("three");
    std::fs::write(&three, synthetic_images(3)).unwrap();
    let msg = format_msg(load_pair(&three, &labels).unwrap_err(), &three);
    assert!(
        msg.contains("3 images") && msg.contains("2 labels"),
        "{msg}"
    );

    let bad = tmp.join("bad-labels");
    std::fs::write(&bad, synthetic_labels(&[1, 2, 10])).unwrap();
    let msg = format_msg(load_pair(&three, &bad).unwrap_err(), &bad);
    assert!(msg.contains("label 10 at index 2"), "{msg}");
}

#[test]
fn missing_directory_and_files() {
    let tmp = scratch();
    let err = load_mnist(&tmp.join("nope"), Split::Train).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");

    let msg = format_msg(load_mnist(&tmp, Split::Test).unwrap_err(), &tmp);
    assert!(msg.contains("no test images file"), "{msg}");
    assert!(msg.contains("t10k-images-idx3-ubyte.gz"), "{msg}");

    // Images present, labels missing.
    std::fs::write(tmp.join("t10k-images-idx3-ubyte"), synthetic_images(1)).unwrap();
    let msg = format_msg(load_mnist(&tmp, Split::Test).unwrap_err(), &tmp);
    assert!(msg.contains("no test labels file"), "{msg}");
}

#[test]
fn file_name_variants_prefer_uncompressed() {
    let names = candidate_names(Split::Test, false);
    assert_eq!(names[0], "t10k-images-idx3-ubyte");
    assert!(names.contains(&"test-images.idx3-ubyte.gz".to_string()));
    let tmp = scratch();
    std::fs::write(
        tmp.join("train-images-idx3-ubyte.gz"),
        gzip(&synthetic_images(1)),
    )
    .unwrap();
    std::fs::write(tmp.join("train-images-idx3-ubyte"), synthetic_images(1)).unwrap();
    std::fs::write(
        tmp.join("train-labels-idx1-ubyte.gz"),
        gzip(&synthetic_labels(&[4])),
    )
    .unwrap();
    let (i, l) = find_files(&tmp, Split::Train).unwrap();
    assert_eq!(i, tmp.join("train-images-idx3-ubyte"));
    assert_eq!(l, tmp.join("train-labels-idx1-ubyte.gz"));
}
