//! Bad input gives typed errors naming the file (and line/field), or is skipped and counted.

mod common;
use common::out_dir;
use ferrovision_data::image::{self, Image};
use ferrovision_data::sample::ImageSample;
use ferrovision_data::sources::{self, ColType, CsvValue};
use ferrovision_data::{Dataset, Error};
use std::path::{Path, PathBuf};

fn write(p: &Path, b: &[u8]) {
    std::fs::write(p, b).unwrap();
}

fn jpeg(w: usize, h: usize) -> Vec<u8> {
    let img = Image::from_vec(
        w,
        h,
        3,
        (0..w * h * 3).map(|i| (i * 37 % 251) as u8).collect(),
    )
    .unwrap();
    image::encode_jpeg(&img, 90).unwrap()
}

#[test]
fn corrupt_and_truncated_images() {
    let good = jpeg(64, 48);
    assert_eq!(image::decode_rgb8(&good, "g.jpg").unwrap().width, 64);
    for cut in [2usize, 20, good.len() / 2, good.len() - 10] {
        let e = image::decode(&good[..cut], "cut.jpg")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cut.jpg: image:"), "{e}");
    }
    let mut bad = good.clone();
    for b in bad[200..260].iter_mut() {
        *b = 0xFF;
    }
    let _ = image::decode(&bad, "bad.jpg"); // must not panic
    let png = image::encode_png(&Image::new(5, 4, 1, 7u8)).unwrap();
    let e = image::decode(&png[..png.len() - 20], "cut.png")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cut.png"), "{e}");
    let e = image::decode(b"not an image", "x.bin")
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.bin"), "{e}");
}

fn voc_xml(file: &str, w: usize, h: usize, bx: [i32; 4]) -> String {
    format!(
        "<annotation><filename>{file}</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>\
         <object><name>raccoon</name><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object></annotation>",
        bx[0], bx[1], bx[2], bx[3]
    )
}

#[test]
fn voc_errors_name_the_file_and_are_counted_under_ignore_errors() {
    let d = out_dir("bad_voc");
    let (ann, imgs) = (d.join("ann"), d.join("img"));
    let _ = std::fs::remove_dir_all(&ann);
    std::fs::create_dir_all(&ann).unwrap();
    std::fs::create_dir_all(&imgs).unwrap();
    write(&imgs.join("ok.jpg"), &jpeg(64, 48));
    let mut trunc = jpeg(64, 48);
    trunc.truncate(trunc.len() / 2);
    write(&imgs.join("trunc.jpg"), &trunc);
    write(
        &ann.join("a1.xml"),
        voc_xml("ok.jpg", 64, 48, [2, 3, 40, 30]).as_bytes(),
    );
    write(
        &ann.join("a2.xml"),
        voc_xml("missing.jpg", 64, 48, [2, 3, 40, 30]).as_bytes(),
    );
    write(
        &ann.join("a3.xml"),
        voc_xml("ok.jpg", 64, 48, [2, 3, 90, 30]).as_bytes(),
    );
    write(
        &ann.join("a4.xml"),
        b"<annotation><filename>ok.jpg</filename>\n<size><width>64</width></annotation>",
    );
    write(
        &ann.join("a5.xml"),
        voc_xml("trunc.jpg", 64, 48, [2, 3, 40, 30]).as_bytes(),
    );
    write(
        &ann.join("a6.xml"),
        voc_xml("ok.jpg", 64, 48, [2, 3, 40, 30])
            .replace("<xmax>40", "<xmax>4O")
            .as_bytes(),
    );
    let classes = vec!["raccoon".to_string()];
    let r = |n: &str| sources::load_voc(&ann.join(n), &imgs, &classes);
    assert_eq!(r("a1.xml").unwrap().boxes, vec![[2.0, 3.0, 40.0, 30.0]]);
    match r("a2.xml") {
        Err(Error::MissingFile { path, missing }) => {
            assert!(path.ends_with("a2.xml"));
            assert!(missing.ends_with("missing.jpg"));
        }
        other => panic!("{other:?}"),
    }
    let e = r("a3.xml").unwrap_err().to_string();
    assert!(e.contains("a3.xml") && e.contains("outside"), "{e}");
    let e = r("a4.xml").unwrap_err().to_string();
    assert!(e.contains("a4.xml:") && e.contains("malformed XML"), "{e}");
    let e = r("a5.xml").unwrap_err().to_string();
    assert!(e.contains("trunc.jpg"), "{e}");
    let e = r("a6.xml").unwrap_err().to_string();
    assert!(e.contains("a6.xml") && e.contains("'4O'"), "{e}");
    let ds = sources::voc(&ann, &imgs, classes.clone(), 2)
        .unwrap()
        .ignore_errors();
    assert_eq!(ds.count().unwrap(), 1);
    assert_eq!(ds.stats().skipped_errors(), 5);
}

#[test]
fn coco_and_yolo_errors_name_fields_and_lines() {
    let d = out_dir("bad_coco");
    let p = d.join("c.json");
    let base = r#"{"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
      "categories": [{"id": 3, "name": "cat"}, {"id": 1, "name": "dog"}],
      "annotations": [ANN]}"#;
    write(
        &p,
        base.replace(
            "ANN",
            r#"{"image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 20]}"#,
        )
        .as_bytes(),
    );
    let (imgs, cats) = sources::parse_coco(&p).unwrap();
    assert_eq!(cats, vec!["dog", "cat"]);
    assert_eq!(imgs[0].boxes, vec![[1.0, 2.0, 11.0, 22.0]]);
    assert_eq!(imgs[0].labels, vec![1]);
    for (ann, want) in [
        (
            r#"{"image_id": 1, "category_id": 3, "bbox": [60, 2, 10, 20]}"#,
            "annotations[0].bbox",
        ),
        (
            r#"{"image_id": 9, "category_id": 3, "bbox": [1, 2, 3, 4]}"#,
            "annotations[0].image_id",
        ),
        (
            r#"{"image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4]}"#,
            "annotations[0].category_id",
        ),
        (
            r#"{"image_id": 1, "category_id": 3, "bbox": [1, 2]}"#,
            "annotations[0].bbox",
        ),
    ] {
        write(&p, base.replace("ANN", ann).as_bytes());
        let e = sources::parse_coco(&p).unwrap_err().to_string();
        assert!(e.contains("c.json") && e.contains(want), "{e}");
    }
    write(&p, b"{\"images\": [\n{\"id\": 1,,}]}");
    let e = sources::parse_coco(&p).unwrap_err().to_string();
    assert!(
        e.contains("c.json:2") && e.contains("malformed JSON"),
        "{e}"
    );
    // Missing image file named by the JSON.
    write(
        &p,
        base.replace(
            "ANN",
            r#"{"image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 20]}"#,
        )
        .as_bytes(),
    );
    let (ds, _) = sources::coco(&p, &d, 1).unwrap();
    assert!(matches!(ds.collect_vec(), Err(Error::MissingFile { .. })));

    let y = PathBuf::from("l.txt");
    let (b, l) =
        sources::parse_yolo("0 0.5 0.5 0.5 0.25\n\n2 0.25 0.25 0.5 0.5\n", &y, 200, 100).unwrap();
    assert_eq!(b, vec![[50.0, 37.5, 150.0, 62.5], [0.0, 0.0, 100.0, 50.0]]);
    assert_eq!(l, vec![0, 2]);
    let e = sources::parse_yolo("0 0.5 0.5 0.5 0.25\n1 0.9 0.5 0.5 0.2\n", &y, 10, 10)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("l.txt:2:") && e.contains("outside"), "{e}");
    let e = sources::parse_yolo("0 0.5 0.5 0.5\n", &y, 10, 10)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("l.txt:1:"), "{e}");
}

#[test]
fn csv_typed_columns_and_bad_lines() {
    let d = out_dir("csv");
    let p = d.join("t.csv");
    write(
        &p,
        b"name,count,score\n\"a, b\",3,0.5\nplain,-7,1e3\nbad,x,1\n\"q\"\"t\",1,2\nshort,1\n",
    );
    let ds = sources::csv(
        &p,
        vec![ColType::Str, ColType::Int, ColType::Float],
        true,
        ',',
    );
    let rows: Vec<_> = ds.iter().collect();
    assert_eq!(rows.len(), 5);
    let r0 = rows[0].as_ref().unwrap();
    assert_eq!(
        r0.values,
        vec![
            CsvValue::Str("a, b".into()),
            CsvValue::Int(3),
            CsvValue::Float(0.5)
        ]
    );
    assert_eq!(r0.line, 2);
    assert_eq!(rows[1].as_ref().unwrap().values[2], CsvValue::Float(1000.0));
    let e = rows[2].as_ref().unwrap_err().to_string();
    assert!(
        e.contains("t.csv:4") && e.contains("column 2") && e.contains("'x'"),
        "{e}"
    );
    assert_eq!(
        rows[3].as_ref().unwrap().values[0],
        CsvValue::Str("q\"t".into())
    );
    let e = rows[4].as_ref().unwrap_err().to_string();
    assert!(
        e.contains("t.csv:6") && e.contains("expected 3 fields"),
        "{e}"
    );
    let ok = ds.ignore_errors();
    assert_eq!(ok.count().unwrap(), 3);
    assert_eq!(ok.stats().skipped_errors(), 2);
}

#[test]
fn misc_sources() {
    let d = out_dir("misc");
    write(&d.join("a.txt"), b"one\r\ntwo\n");
    write(&d.join("b.txt"), b"three");
    let files = sources::glob(&format!("{}/*.txt", d.display()), None).unwrap();
    assert_eq!(files.len(), 2);
    let lines = sources::text_lines(files.clone()).collect_vec().unwrap();
    assert_eq!(lines, vec!["one", "two", "three"]);
    let shuffled = sources::glob(&format!("{}/**/*.txt", d.display()), Some(3)).unwrap();
    assert_eq!(shuffled.len(), 2);
    assert!(sources::list_files(&format!("{}/*.nothing", d.display()), None).is_err());
    // CIFAR binary: 2 records.
    let mut bin = Vec::new();
    for l in [3u8, 7] {
        bin.push(l);
        bin.extend((0..3072).map(|i| (i / 1024 * 100 + l as usize) as u8));
    }
    write(&d.join("data_batch.bin"), &bin);
    let c = sources::cifar_binary(d.join("data_batch.bin"), 1).unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c[1].label, Some(7));
    assert_eq!(&c[1].image.data[..3], &[7, 107, 207]);
    write(&d.join("short.bin"), &bin[..3000]);
    assert!(sources::cifar_binary(d.join("short.bin"), 1)
        .unwrap_err()
        .to_string()
        .contains("short.bin"));
    // A non-tar file is a clear error.
    assert!(sources::tar_index(d.join("data_batch.bin"))
        .unwrap_err()
        .to_string()
        .contains("tar"));
    let _ = Dataset::from_vec(vec![ImageSample::default()]);
}
