//! GZIP/ZLIB-compressed TFRecord files: TensorFlow's files read exactly, ours read by TensorFlow
//! (fixtures from reference/make_tfrecord_fixtures.py), round trips, auto-detection and the
//! error paths of truncated or corrupt compressed streams.

use ferrovision_data::sources;
use ferrovision_data::tfrecord::{
    read_examples_with, read_records, read_records_with, write_examples_with, Compression, Example,
    ReadCompression, RecordReader, RecordWriter,
};
use ferrovision_data::Error;
use std::io::Write;
use std::path::{Path, PathBuf};

mod tfrecord_support;
use tfrecord_support::{check_parsed_by_tf, fixtures, hex, json, rust_examples};

fn tmp(name: &str) -> PathBuf {
    tfrecord_support::tmp_in("tfrecord_compression", name)
}

/// TensorFlow's compressed fixtures: (path, compression) from from_tf_compressed.json.
fn tf_compressed() -> Vec<(PathBuf, Compression)> {
    let j = json("from_tf_compressed.json");
    let files = j["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    files
        .iter()
        .map(|f| {
            let c = Compression::from_tf_name(f["compression_type"].as_str().unwrap()).unwrap();
            (fixtures().join(f["file"].as_str().unwrap()), c)
        })
        .collect()
}

/// Uncompressed byte offsets at which the records of TensorFlow's fixture start, plus the
/// total length.
fn tf_record_starts() -> Vec<u64> {
    let recs = read_records(fixtures().join("from_tf.tfrecord")).unwrap();
    let mut starts = vec![0u64];
    for r in &recs {
        starts.push(starts.last().unwrap() + 16 + r.len() as u64);
    }
    starts
}

#[test]
fn reads_tensorflow_compressed_files_exactly() {
    let plain = read_records(fixtures().join("from_tf.tfrecord")).unwrap();
    let want = json("from_tf.json");
    let recs = want["records"].as_array().unwrap();
    let meta = json("from_tf_compressed.json");
    let mut seen = Vec::new();
    for (i, (path, c)) in tf_compressed().into_iter().enumerate() {
        seen.push(c);
        let m = &meta["files"][i];
        assert_eq!(
            m["records_read_by_tf"].as_u64().unwrap() as usize,
            plain.len()
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            m["size"].as_u64().unwrap()
        );
        // Same serialized Examples as the uncompressed file TensorFlow wrote.
        assert_eq!(read_records_with(&path, c).unwrap(), plain, "{c}");
        // And the values that went in (the uncompressed test checks every field; here the
        // label, JPEG bytes and float bit patterns).
        let exs = read_examples_with(&path, c).unwrap();
        assert_eq!(exs.len(), recs.len());
        for (ex, r) in exs.iter().zip(recs) {
            assert_eq!(
                ex.int64s("image/label").unwrap(),
                &[r["label"].as_i64().unwrap()]
            );
            assert_eq!(
                ex.bytes("image/encoded").unwrap(),
                &[hex(r["jpeg_hex"].as_str().unwrap())]
            );
            let bits: Vec<u64> = ex
                .floats("values")
                .unwrap()
                .iter()
                .map(|f| f.to_bits() as u64)
                .collect();
            let want_bits: Vec<u64> = r["values_f32_bits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(bits, want_bits);
        }
        // Offsets are in the uncompressed stream, as for plain files.
        let mut r = RecordReader::open_with(&path, c).unwrap();
        assert_eq!(r.compression(), c);
        let starts = tf_record_starts();
        let mut buf = Vec::new();
        for s in &starts[..plain.len()] {
            assert_eq!(r.offset(), *s);
            assert!(r.read_into(&mut buf).unwrap());
        }
        assert!(!r.read_into(&mut buf).unwrap());
        assert_eq!(r.offset(), *starts.last().unwrap());
    }
    assert_eq!(seen, [Compression::Gzip, Compression::Zlib]);
}

#[test]
fn auto_detects_tensorflow_files() {
    let plain = read_records(fixtures().join("from_tf.tfrecord")).unwrap();
    assert_eq!(
        Compression::detect(fixtures().join("from_tf.tfrecord")).unwrap(),
        Compression::None
    );
    for (path, c) in tf_compressed() {
        assert_eq!(Compression::detect(&path).unwrap(), c);
        let r = RecordReader::open_with(&path, ReadCompression::Auto).unwrap();
        assert_eq!(r.compression(), c);
        assert_eq!(
            read_records_with(&path, ReadCompression::Auto).unwrap(),
            plain
        );
    }
    // A Dataset over all three files, each detected on its own.
    let mut paths = vec![fixtures().join("from_tf.tfrecord")];
    paths.extend(tf_compressed().into_iter().map(|(p, _)| p));
    let ds = sources::tfrecord_examples_with(paths, ReadCompression::Auto);
    let exs = ds.collect_vec().unwrap();
    assert_eq!(exs.len(), 3 * plain.len());
    for (i, ex) in exs.iter().enumerate() {
        assert_eq!(ex, &Example::decode(&plain[i % plain.len()]).unwrap());
    }
    // Without detection, a dataset reads the compression it is told (TensorFlow's rule).
    let (gz, _) = tf_compressed()[0].clone();
    let raw = sources::tfrecord_with(vec![gz], Compression::Gzip)
        .collect_vec()
        .unwrap();
    assert_eq!(raw, plain);
}

#[test]
fn sniffing_rules() {
    assert_eq!(Compression::sniff(&[]), Compression::None);
    assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
    // zlib headers for the four levels zlib writes (78 01, 78 5e, 78 9c, 78 da).
    for flg in [0x01, 0x5e, 0x9c, 0xda] {
        assert_eq!(Compression::sniff(&[0x78, flg]), Compression::Zlib);
    }
    // Header check fails, preset dictionary, not deflate.
    assert_eq!(Compression::sniff(&[0x78, 0x9d]), Compression::None);
    assert_eq!(Compression::sniff(&[0x78, 0xbb]), Compression::None);
    assert_eq!(Compression::sniff(&[0x79, 0x9c]), Compression::None);
    // Plain files whose first length bytes look like a zlib header (a 40056-byte record:
    // 78 9c) or the gzip magic (35615 bytes: 1f 8b) are still plain: their length CRC holds.
    for (n, what) in [(0x9c78usize, "zlib"), (0x8b1f, "gzip")] {
        let p = tmp(&format!("looks_like_{what}.tfrecord"));
        let mut w = RecordWriter::create(&p).unwrap();
        w.write_record(&vec![7u8; n]).unwrap();
        w.finish().unwrap();
        let head = std::fs::read(&p).unwrap();
        assert_eq!(&head[..2], &(n as u16).to_le_bytes());
        assert_eq!(
            Compression::detect(&p).unwrap(),
            Compression::None,
            "{what}"
        );
        assert_eq!(
            read_records_with(&p, ReadCompression::Auto).unwrap(),
            vec![vec![7u8; n]]
        );
    }
    // Empty file: plain, no records.
    let p = tmp("empty.tfrecord");
    std::fs::write(&p, b"").unwrap();
    assert_eq!(Compression::detect(&p).unwrap(), Compression::None);
    assert!(read_records_with(&p, ReadCompression::Auto)
        .unwrap()
        .is_empty());
    // Names and extensions.
    assert_eq!(Compression::from_tf_name("").unwrap(), Compression::None);
    assert_eq!(
        Compression::from_tf_name("GZIP").unwrap(),
        Compression::Gzip
    );
    assert_eq!(
        Compression::from_tf_name("zlib").unwrap(),
        Compression::Zlib
    );
    let e = Compression::from_tf_name("BZIP2").unwrap_err().to_string();
    assert!(e.contains("BZIP2"), "{e}");
    for c in [Compression::None, Compression::Gzip, Compression::Zlib] {
        assert_eq!(Compression::from_tf_name(c.tf_name()).unwrap(), c);
    }
    assert_eq!(
        Compression::from_extension("a/train.tfrecord.gz"),
        Compression::Gzip
    );
    assert_eq!(Compression::from_extension("x.ZLIB"), Compression::Zlib);
    assert_eq!(Compression::from_extension("x.tfrecord"), Compression::None);
    assert_eq!(Compression::from_extension("x"), Compression::None);
}

#[test]
fn tensorflow_reads_what_we_compress() {
    for (c, ext, tag) in [
        (Compression::Gzip, "gz", "gzip"),
        (Compression::Zlib, "zlib", "zlib"),
    ] {
        let name = format!("from_rust.tfrecord.{ext}");
        let out = tmp(&name);
        let mut w = RecordWriter::create_compressed(&out, c).unwrap();
        for e in rust_examples() {
            w.write_record(&e.encode()).unwrap();
        }
        w.finish().unwrap();
        let ours = std::fs::read(&out).unwrap();
        let committed = fixtures().join(&name);
        if std::env::var_os("FERROVISION_WRITE_FIXTURES").is_some() {
            std::fs::write(&committed, &ours).unwrap();
            eprintln!("wrote {committed:?}; now run reference/make_tfrecord_fixtures.py");
        }
        // The committed file is exactly what the writer produces now (flate2 is pinned), so
        // TensorFlow's verdict below is about our current output.
        assert_eq!(
            ours,
            std::fs::read(&committed).unwrap(),
            "{c} writer output changed: regenerate with FERROVISION_WRITE_FIXTURES=1 and rerun reference/make_tfrecord_fixtures.py"
        );
        assert_eq!(Compression::detect(&out).unwrap(), c);
        // Compressed stream of the same bytes as the plain writer's file.
        let plain = std::fs::read(fixtures().join("from_rust.tfrecord")).unwrap();
        let mut decoded = Vec::new();
        let mut r = RecordReader::open_with(&out, c).unwrap();
        let mut buf = Vec::new();
        while r.read_into(&mut buf).unwrap() {
            decoded.push(buf.clone());
        }
        assert_eq!(r.offset(), plain.len() as u64);
        assert_eq!(
            decoded,
            read_records(fixtures().join("from_rust.tfrecord")).unwrap()
        );
        // TensorFlow parsed the committed file into the values we meant.
        let parsed = json(&format!("from_rust_{tag}_parsed_by_tf.json"));
        assert_eq!(parsed["compression_type"].as_str().unwrap(), c.tf_name());
        assert_eq!(parsed["file"].as_str().unwrap(), name);
        check_parsed_by_tf(&format!("from_rust_{tag}_parsed_by_tf.json"));
        let exs = rust_examples();
        assert_eq!(read_examples_with(&out, c).unwrap(), exs);
        assert_eq!(
            read_examples_with(&out, ReadCompression::Auto).unwrap(),
            exs
        );
    }
}

#[test]
fn round_trips_large_and_many_records() {
    // A 1 MiB record (spans many decoder buffers), an empty one and many small ones.
    let big: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 & 0x3f)
        .collect();
    let mut recs = vec![big, Vec::new()];
    recs.extend((0..500u32).map(|i| format!("record {i}").into_bytes()));
    let plain_len: u64 = recs.iter().map(|r| 16 + r.len() as u64).sum();
    for c in [Compression::None, Compression::Gzip, Compression::Zlib] {
        for level in [0, 1, 6, 9] {
            let p = tmp(&format!("big_{}_{level}.tfrecord", c.tf_name()));
            let mut w = RecordWriter::create_compressed_level(&p, c, level).unwrap();
            for r in &recs {
                w.write_record(r).unwrap();
            }
            assert_eq!(w.bytes(), plain_len);
            w.finish().unwrap();
            let size = std::fs::metadata(&p).unwrap().len();
            if c != Compression::None && level > 0 {
                assert!(size < plain_len / 2, "{c} level {level}: {size} bytes");
            }
            assert_eq!(read_records_with(&p, c).unwrap(), recs, "{c} level {level}");
            assert_eq!(
                read_records_with(&p, ReadCompression::Auto).unwrap(),
                recs,
                "{c} level {level}"
            );
        }
    }
    let e = RecordWriter::create_compressed_level(tmp("bad_level"), Compression::Gzip, 10)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("level 10"), "{e}");
    // write_examples_with / read_examples_with.
    let p = tmp("examples.tfrecord.gz");
    write_examples_with(&p, &rust_examples(), Compression::from_extension(&p)).unwrap();
    assert_eq!(Compression::detect(&p).unwrap(), Compression::Gzip);
    assert_eq!(
        read_examples_with(&p, Compression::Gzip).unwrap(),
        rust_examples()
    );
}

#[test]
fn concatenated_gzip_members_are_one_stream() {
    // `cat a.gz b.gz` is a valid gzip file (RFC 1952: a series of members); read it like
    // `gzip -d` does, as the concatenation of both members' records.
    let recs = read_records(fixtures().join("from_rust.tfrecord")).unwrap();
    let mut both = std::fs::read(fixtures().join("from_rust.tfrecord.gz")).unwrap();
    both.extend(std::fs::read(fixtures().join("from_tf.tfrecord.gz")).unwrap());
    let p = tmp("two_members.tfrecord.gz");
    std::fs::write(&p, &both).unwrap();
    let mut want = recs;
    want.extend(read_records(fixtures().join("from_tf.tfrecord")).unwrap());
    assert_eq!(read_records_with(&p, Compression::Gzip).unwrap(), want);
}

#[test]
fn compressed_writer_is_atomic() {
    for c in [Compression::Gzip, Compression::Zlib] {
        let p = tmp(&format!("atomic.{}", c.tf_name()));
        let _ = std::fs::remove_file(&p);
        let mut w = RecordWriter::create_compressed(&p, c).unwrap();
        w.write_record(b"abc").unwrap();
        w.flush().unwrap();
        assert!(!p.exists(), "final name appears only on finish");
        w.finish().unwrap();
        assert_eq!(read_records_with(&p, c).unwrap(), vec![b"abc".to_vec()]);
        // Dropped without finish: nothing left behind, not even the temporary file.
        let name = format!("dropped.{}", c.tf_name());
        let p2 = tmp(&name);
        let _ = std::fs::remove_file(&p2);
        {
            let mut w = RecordWriter::create_compressed(&p2, c).unwrap();
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
                    .contains(&name)
            })
            .count();
        assert_eq!(leftovers, 0);
    }
}

/// Reads all records of `path`, returning the error if any.
fn read_all(path: &Path, c: Compression) -> Result<Vec<Vec<u8>>, Error> {
    read_records_with(path, c)
}

#[test]
fn truncated_compressed_stream_is_an_error() {
    let starts = tf_record_starts();
    for (path, c) in tf_compressed() {
        let good = std::fs::read(&path).unwrap();
        let p = tmp(&format!("truncated.{}", c.tf_name()));
        // Every cut, from inside the header to the last checksum byte, is an error: never a
        // panic and never a shorter list of records.
        for cut in 0..good.len() {
            std::fs::write(&p, &good[..cut]).unwrap();
            match read_all(&p, c) {
                Err(Error::Compressed {
                    path: ep,
                    compression,
                    offset,
                    msg,
                }) => {
                    assert_eq!(ep, p);
                    assert_eq!(compression, c);
                    assert!(starts.contains(&offset), "cut {cut}: offset {offset}");
                    if cut > 0 {
                        assert!(msg.contains("truncated"), "{c} cut {cut}: {msg}");
                    }
                }
                other => panic!("{c} cut {cut}: expected a compressed-stream error, got {other:?}"),
            }
        }
        // The message names the file, the format and the uncompressed offset of the record.
        let cut = good.len() / 2;
        std::fs::write(&p, &good[..cut]).unwrap();
        let e = read_all(&p, c).unwrap_err().to_string();
        assert!(
            e.contains(&p.display().to_string())
                && e.contains(c.tf_name())
                && e.contains("truncated")
                && e.contains("uncompressed byte offset"),
            "{e}"
        );
        // Records before the cut are still delivered by the streaming reader.
        let cut = good.len() - 9; // inside the last record's data or the stream trailer
        std::fs::write(&p, &good[..cut]).unwrap();
        let mut r = RecordReader::open_with(&p, c).unwrap();
        let got: Vec<_> = r.by_ref().take(10).collect();
        assert!(got.len() >= 2 && got[..got.len() - 1].iter().all(|r| r.is_ok()));
        assert!(got.last().unwrap().is_err());
        // After a decoder error the reader is finished (it once repeated the error forever).
        assert!(r.next().is_none());
        // In a Dataset the error is an element naming the file.
        let errs: Vec<String> = sources::tfrecord_with(vec![p.clone()], c)
            .iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains(&p.display().to_string()), "{}", errs[0]);
    }
}

#[test]
fn corrupt_compressed_stream_is_an_error_or_the_right_records() {
    let plain = read_records(fixtures().join("from_tf.tfrecord")).unwrap();
    let starts = tf_record_starts();
    for (path, c) in tf_compressed() {
        let good = std::fs::read(&path).unwrap();
        let p = tmp(&format!("corrupt.{}", c.tf_name()));
        let (mut errors, mut same) = (0, 0);
        // Flip one bit in every byte in turn: the result is the original records (a byte the
        // format does not check, such as the gzip header's time stamp) or a typed error.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&p, &bad).unwrap();
            match read_all(&p, c) {
                Ok(recs) => {
                    assert_eq!(recs, plain, "{c}: flipped byte {i} gave other records");
                    same += 1;
                }
                Err(Error::Compressed { offset, .. }) | Err(Error::Record { offset, .. }) => {
                    assert!(starts.contains(&offset), "{c} byte {i}: offset {offset}");
                    errors += 1;
                }
                Err(e) => panic!("{c} byte {i}: unexpected error kind {e:?}"),
            }
        }
        assert!(
            errors > good.len() * 9 / 10,
            "{c}: {errors} errors, {same} unchanged"
        );
        // A bad stream checksum is an error. GZIP checks its CRC after the last record, so the
        // error is at the uncompressed end; ZLIB's Adler-32 fails inside the decoder call that
        // inflated the (small) stream, so no record has been delivered yet.
        let mut bad = good.clone();
        let at = match c {
            Compression::Gzip => good.len() - 8,
            _ => good.len() - 1,
        };
        bad[at] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        match read_all(&p, c) {
            Err(Error::Compressed { offset, msg, .. }) => {
                let want = match c {
                    Compression::Gzip => *starts.last().unwrap(),
                    _ => 0,
                };
                assert_eq!(offset, want, "{msg}");
            }
            other => panic!("{c}: expected a checksum error, got {other:?}"),
        }
        // Bytes after the end of the stream are an error too.
        let mut bad = good.clone();
        bad.extend_from_slice(b"garbage");
        std::fs::write(&p, &bad).unwrap();
        assert!(
            matches!(read_all(&p, c), Err(Error::Compressed { .. })),
            "{c}"
        );
    }
}

#[test]
fn record_crc_errors_in_compressed_files_name_the_uncompressed_offset() {
    let mut plain = std::fs::read(fixtures().join("from_tf.tfrecord")).unwrap();
    let starts = tf_record_starts();
    // Flip a data byte of the second record, then compress the bad stream.
    plain[starts[1] as usize + 12 + 5] ^= 0x40;
    let p = tmp("bad_record.tfrecord.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&plain).unwrap();
    std::fs::write(&p, enc.finish().unwrap()).unwrap();
    match read_all(&p, Compression::Gzip) {
        Err(Error::Record { offset, msg, path }) => {
            assert_eq!(offset, starts[1]);
            assert!(msg.contains("data CRC"), "{msg}");
            assert_eq!(path, p);
        }
        other => panic!("expected a CRC error, got {other:?}"),
    }
}

#[test]
fn wrong_compression_is_a_clear_error() {
    let (gz, _) = tf_compressed()[0].clone();
    let (zl, _) = tf_compressed()[1].clone();
    // A GZIP file read as plain framing: the length-CRC error says what the file looks like.
    let e = read_records(&gz).unwrap_err().to_string();
    assert!(e.contains("length CRC") && e.contains("GZIP"), "{e}");
    let e = read_records(&zl).unwrap_err().to_string();
    assert!(e.contains("length CRC") && e.contains("ZLIB"), "{e}");
    // Plain or ZLIB data read as GZIP (and the other way round): a bad header, at offset 0.
    for (p, c) in [
        (fixtures().join("from_tf.tfrecord"), Compression::Gzip),
        (fixtures().join("from_tf.tfrecord"), Compression::Zlib),
        (zl.clone(), Compression::Gzip),
        (gz.clone(), Compression::Zlib),
    ] {
        match read_all(&p, c) {
            Err(Error::Compressed {
                offset,
                compression,
                path,
                ..
            }) => {
                assert_eq!((offset, compression), (0, c));
                assert_eq!(path, p);
            }
            other => panic!("{p:?} as {c}: got {other:?}"),
        }
    }
    // A missing file is an I/O error naming it, with or without detection.
    let missing = tmp("missing.tfrecord.gz");
    for rc in [ReadCompression::Auto, Compression::Gzip.into()] {
        let e = RecordReader::open_with(&missing, rc).err().unwrap();
        assert!(
            matches!(&e, Error::Io { path, .. } if path == &missing),
            "{e}"
        );
    }
}
