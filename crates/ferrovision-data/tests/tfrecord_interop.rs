//! TFRecord interoperability with TensorFlow (fixtures from reference/make_tfrecord_fixtures.py)
//! and the framing/CRC error paths.

use ferrovision_data::tfrecord::{
    read_examples, read_records, Example, RecordReader, RecordWriter,
};
use ferrovision_data::Error;
use std::path::PathBuf;

mod tfrecord_support;
use tfrecord_support::{check_parsed_by_tf, fixtures, hex, json, rust_examples};

fn tmp(name: &str) -> PathBuf {
    tfrecord_support::tmp_in("tfrecord", name)
}

#[test]
fn reads_tensorflow_examples_exactly() {
    let exs = read_examples(fixtures().join("from_tf.tfrecord")).unwrap();
    check_tf_examples(&exs);
}

/// Checks examples against what make_tfrecord_fixtures.py put into TensorFlow's files.
fn check_tf_examples(exs: &[Example]) {
    let want = json("from_tf.json");
    let recs = want["records"].as_array().unwrap();
    assert_eq!(exs.len(), recs.len());
    for (ex, r) in exs.iter().zip(recs) {
        assert_eq!(
            ex.bytes("image/encoded").unwrap(),
            &[hex(r["jpeg_hex"].as_str().unwrap())]
        );
        assert_eq!(
            ex.int64s("image/label").unwrap(),
            &[r["label"].as_i64().unwrap()]
        );
        let bits: Vec<u32> = ex
            .floats("values")
            .unwrap()
            .iter()
            .map(|f| f.to_bits())
            .collect();
        let want_bits: Vec<u32> = r["values_f32_bits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(bits, want_bits);
        let ids: Vec<i64> = r["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(ex.int64s("ids").unwrap(), ids.as_slice());
        let names: Vec<Vec<u8>> = r["name"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().as_bytes().to_vec())
            .collect();
        assert_eq!(ex.bytes("name").unwrap(), names.as_slice());
        // Wrong-type access is a typed error naming the key.
        let e = ex.floats("image/label").unwrap_err().to_string();
        assert!(e.contains("image/label") && e.contains("int64_list"), "{e}");
    }
}

#[test]
fn tensorflow_reads_what_we_write() {
    let path = fixtures().join("from_rust.tfrecord");
    let mut w = RecordWriter::create(tmp("from_rust.tfrecord")).unwrap();
    for e in rust_examples() {
        w.write_record(&e.encode()).unwrap();
    }
    w.finish().unwrap();
    let ours = std::fs::read(tmp("from_rust.tfrecord")).unwrap();
    if std::env::var_os("FERROVISION_WRITE_FIXTURES").is_some() {
        std::fs::write(&path, &ours).unwrap();
        eprintln!("wrote {path:?}; now run reference/make_tfrecord_fixtures.py");
    }
    // Encoding is deterministic (sorted keys), so the committed file is exactly what we write.
    assert_eq!(ours, std::fs::read(&path).unwrap(), "writer output changed");
    // And TensorFlow parsed that file into the values we meant.
    check_parsed_by_tf("from_rust_parsed_by_tf.json");
    // Round trip through our own reader too.
    assert_eq!(
        read_examples(tmp("from_rust.tfrecord")).unwrap(),
        rust_examples()
    );
}

#[test]
fn corrupted_record_names_offset() {
    let good = std::fs::read(fixtures().join("from_tf.tfrecord")).unwrap();
    let recs = read_records(fixtures().join("from_tf.tfrecord")).unwrap();
    let second = 16 + recs[0].len();
    // Flip one data byte of the second record.
    let mut bad = good.clone();
    bad[second + 12 + 5] ^= 0x40;
    let p = tmp("corrupt.tfrecord");
    std::fs::write(&p, &bad).unwrap();
    let mut r = RecordReader::open(&p).unwrap();
    assert!(r.next().unwrap().is_ok());
    match r.next().unwrap() {
        Err(Error::Record { offset, msg, path }) => {
            assert_eq!(offset, second as u64);
            assert!(msg.contains("data CRC"), "{msg}");
            assert_eq!(path, p);
        }
        other => panic!("expected a CRC error, got {other:?}"),
    }
    assert!(r.next().is_none(), "reader stops after a framing error");
    // Corrupt the length field of the first record.
    let mut bad = good.clone();
    bad[0] ^= 1;
    std::fs::write(&p, &bad).unwrap();
    let e = read_records(&p).unwrap_err().to_string();
    assert!(e.contains("length CRC") && e.contains("offset 0"), "{e}");
    // Truncated in the middle of the third record.
    let third = second + 16 + recs[1].len();
    for cut in [third + 3, third + 14, good.len() - 2] {
        std::fs::write(&p, &good[..cut]).unwrap();
        let e = read_records(&p).unwrap_err().to_string();
        assert!(
            e.contains("truncated") && e.contains(&format!("offset {third}")),
            "{e}"
        );
    }
}

#[test]
fn writer_is_atomic_and_can_flush_each_record() {
    let p = tmp("atomic.tfrecord");
    let _ = std::fs::remove_file(&p);
    let mut w = RecordWriter::create(&p).unwrap();
    w.write_record(b"abc").unwrap();
    w.flush().unwrap();
    assert!(!p.exists(), "final name appears only on finish");
    w.finish().unwrap();
    assert_eq!(read_records(&p).unwrap(), vec![b"abc".to_vec()]);
    // Dropped without finish: nothing left behind.
    let p2 = tmp("dropped.tfrecord");
    let _ = std::fs::remove_file(&p2);
    {
        let mut w = RecordWriter::create(&p2).unwrap();
        w.write_record(b"x").unwrap();
    }
    assert!(!p2.exists());
    let leftovers = std::fs::read_dir(p2.parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("dropped")
        })
        .count();
    assert_eq!(leftovers, 0);
    // Live file: each record is readable as soon as it is written.
    let p3 = tmp("live.tfrecord");
    let mut w = RecordWriter::create_live(&p3).unwrap();
    w.set_flush_each(true);
    w.write_record(b"event-1").unwrap();
    assert_eq!(read_records(&p3).unwrap(), vec![b"event-1".to_vec()]);
    w.write_record(b"event-2").unwrap();
    assert_eq!(read_records(&p3).unwrap().len(), 2);
    w.finish().unwrap();
}

#[test]
fn malformed_protobuf_is_an_error() {
    let good = rust_examples()[1].encode();
    for cut in 1..good.len() {
        // Never panics; a cut inside a length-delimited field is reported.
        let _ = Example::decode(&good[..cut]);
    }
    assert!(Example::decode(&good[..good.len() - 1]).is_err());
    assert!(Example::decode(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]).is_err());
}
