//! Image decode/encode and geometric ops against TensorFlow fixtures and exact identities.

use ferrovision_data::image::{self, DynImage, Filter, Image, Normalize};
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

#[test]
fn resize_matches_tensorflow_antialiased() {
    let f = fixture("image/resize.json");
    let s = f["src_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect::<Vec<_>>();
    let src = Image::from_vec(s[1], s[0], s[2], floats(&f["src"])).unwrap();
    for c in f["cases"].as_array().unwrap() {
        let filter = match c["method"].as_str().unwrap() {
            "bilinear" => Filter::Bilinear,
            _ => Filter::Bicubic,
        };
        let (h, w) = (
            c["height"].as_u64().unwrap() as usize,
            c["width"].as_u64().unwrap() as usize,
        );
        let ours = src.resize(w, h, filter).unwrap();
        let want = floats(&c["out"]);
        let max = ours
            .data
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max < 1e-4, "{filter:?} {h}x{w}: max diff {max}");
    }
}

#[test]
fn jpeg_decode_close_to_tensorflow() {
    let f = fixture("tfrecord/from_tf.json");
    for r in f["records"].as_array().unwrap() {
        let hex = r["jpeg_hex"].as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let img = image::decode_rgb8(&bytes, "fixture.jpg").unwrap();
        assert_eq!(
            (img.height as u64, img.width as u64),
            (r["height"].as_u64().unwrap(), r["width"].as_u64().unwrap())
        );
        let tf: Vec<u8> = r["tf_decoded_rgb"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        // Different IDCT/upsampling implementations: allow small per-pixel differences.
        let diffs: Vec<i32> = img
            .data
            .iter()
            .zip(&tf)
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .collect();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        assert!(
            mean < 2.0 && *diffs.iter().max().unwrap() <= 16,
            "mean {mean} max {:?}",
            diffs.iter().max()
        );
    }
}

#[test]
fn png_depths_and_formats_round_trip() {
    let g16 = Image::from_vec(3, 2, 1, vec![0u16, 1, 256, 4000, 65535, 12345]).unwrap();
    match image::decode(&image::encode_png16(&g16).unwrap(), "g16.png").unwrap() {
        DynImage::U16(i) => assert_eq!(i, g16),
        other => panic!("{other:?}"),
    }
    let rgba = Image::from_vec(2, 2, 4, (0..16).map(|v| v as u8 * 15).collect()).unwrap();
    assert_eq!(
        image::decode(&image::encode_png(&rgba).unwrap(), "x.png").unwrap(),
        DynImage::U8(rgba.clone())
    );
    assert_eq!(
        image::decode_rgb8(&image::encode_png(&rgba).unwrap(), "x.png")
            .unwrap()
            .channels,
        3
    );
    // BMP and GIF through the image crate's encoders.
    let rgb = Image::from_vec(4, 3, 3, (0..36).map(|v| (v * 7) as u8).collect()).unwrap();
    let mut bmp = Vec::new();
    ::image::codecs::bmp::BmpEncoder::new(&mut bmp)
        .encode(&rgb.data, 4, 3, ::image::ExtendedColorType::Rgb8)
        .unwrap();
    assert_eq!(image::decode_rgb8(&bmp, "x.bmp").unwrap(), rgb);
    let mut gif = Vec::new();
    {
        let frame = ::image::Frame::new(
            ::image::RgbaImage::from_raw(2, 1, vec![255, 0, 0, 255, 0, 0, 255, 255]).unwrap(),
        );
        ::image::codecs::gif::GifEncoder::new(&mut gif)
            .encode_frames(vec![frame])
            .unwrap();
    }
    let g = image::decode_rgb8(&gif, "x.gif").unwrap();
    assert_eq!(g.data, vec![255, 0, 0, 0, 0, 255]);
    // JPEG encode/decode keeps the picture.
    let smooth = Image::from_vec(
        16,
        16,
        3,
        (0..768).map(|i| ((i / 3) % 16 * 8 + 40) as u8).collect(),
    )
    .unwrap();
    let back = image::decode_rgb8(&image::encode_jpeg(&smooth, 95).unwrap(), "x.jpg").unwrap();
    let max = back
        .data
        .iter()
        .zip(&smooth.data)
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .max()
        .unwrap();
    assert!(max <= 6, "{max}");
}

#[test]
fn geometry_identities() {
    let img = Image::from_vec(4, 2, 1, vec![1u8, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    assert_eq!(img.rot90(1).data, vec![4, 8, 3, 7, 2, 6, 1, 5]);
    assert_eq!(img.rot90(4), img);
    assert_eq!(img.rot90(1).rot90(-1), img);
    assert_eq!(img.flip_horizontal().data, vec![4, 3, 2, 1, 8, 7, 6, 5]);
    assert_eq!(img.crop(1, 0, 2, 2).unwrap().data, vec![2, 3, 6, 7]);
    assert!(img.crop(3, 0, 2, 2).is_err());
    assert_eq!(
        img.pad(1, 0, 0, 1, 0).data,
        vec![0, 1, 2, 3, 4, 0, 5, 6, 7, 8, 0, 0, 0, 0, 0]
    );
    // 2x area shrink = mean of 2x2 blocks; nearest 2x enlarge repeats pixels.
    let a = Image::from_vec(4, 2, 1, vec![0.0f32, 2.0, 4.0, 6.0, 2.0, 4.0, 6.0, 8.0]).unwrap();
    assert_eq!(a.resize(2, 1, Filter::Area).unwrap().data, vec![2.0, 6.0]);
    assert_eq!(img.resize(8, 4, Filter::Nearest).unwrap().get(7, 3, 0), 8);
    let (lb, s, (l, t)) = img.resize_with_pad(8, 8, Filter::Nearest, 0).unwrap();
    assert_eq!((lb.width, lb.height, s, l, t), (8, 8, 2.0, 0, 2));
    assert_eq!(lb.get(0, 2, 0), 1);
    assert_eq!(lb.get(0, 1, 0), 0);
    assert_eq!(
        Image::from_vec(10, 10, 1, vec![0u8; 100])
            .unwrap()
            .central_crop(0.5)
            .unwrap()
            .width,
        5
    );
}

#[test]
fn colour_and_tensors() {
    let px = Image::from_vec(3, 1, 3, vec![255u8, 0, 0, 0, 255, 0, 10, 20, 200]).unwrap();
    let hsv = px.to_f32().rgb_to_hsv().unwrap();
    assert!((hsv.data[0] - 0.0).abs() < 1e-6 && (hsv.data[3] - 1.0 / 3.0).abs() < 1e-6);
    let back = hsv.hsv_to_rgb().unwrap().convert::<u8>();
    assert_eq!(back, px);
    assert_eq!(px.swap_rb().unwrap().data[..3], [0, 0, 255]);
    assert_eq!(px.to_grey().unwrap().data[0], 76);
    let t = px
        .to_tensor_chw(Some(&Normalize {
            mean: vec![0.5; 3],
            std: vec![0.5; 3],
        }))
        .unwrap();
    assert_eq!(t.shape(), &[3, 1, 3]);
    let v = t.to_vec::<f32>().unwrap();
    assert_eq!(v[0], 1.0);
    assert_eq!(v[1], -1.0);
    assert_eq!(px.to_tensor_hwc().unwrap().shape(), &[1, 3, 3]);
}
