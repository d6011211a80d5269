//! Semantics of the dataset transformations.

use ferrovision_data::{Dataset, Error, PaddedBatchable};
use ferrovision_tensor::Tensor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn range(n: i64) -> Dataset<i64> {
    Dataset::range(0, n, 1).unwrap()
}

fn vals(ds: &Dataset<i64>) -> Vec<i64> {
    ds.collect_vec().unwrap()
}

#[test]
fn basic_ops() {
    assert_eq!(vals(&range(5)), vec![0, 1, 2, 3, 4]);
    assert_eq!(vals(&Dataset::range(10, 0, -3).unwrap()), vec![10, 7, 4, 1]);
    assert!(Dataset::range(0, 1, 0).is_err());
    assert_eq!(vals(&range(10).filter(|x| x % 3 == 0)), vec![0, 3, 6, 9]);
    assert_eq!(vals(&range(10).skip(7)), vec![7, 8, 9]);
    assert_eq!(vals(&range(10).take(2)), vec![0, 1]);
    assert_eq!(vals(&range(3).repeat(Some(2))), vec![0, 1, 2, 0, 1, 2]);
    assert_eq!(vals(&range(3).repeat(Some(0))), Vec::<i64>::new());
    assert_eq!(
        vals(&range(3).repeat(None).take(7)),
        vec![0, 1, 2, 0, 1, 2, 0]
    );
    assert_eq!(vals(&range(10).shard(3, 1)), vec![1, 4, 7]);
    assert_eq!(
        vals(&range(2).concatenate(&Dataset::range(5, 7, 1).unwrap())),
        vec![0, 1, 5, 6]
    );
    let z = range(3)
        .zip(&Dataset::range(10, 20, 1).unwrap())
        .collect_vec()
        .unwrap();
    assert_eq!(z, vec![(0, 10), (1, 11), (2, 12)]);
    assert_eq!(vals(&range(4).map(|x| Ok(x * x))), vec![0, 1, 4, 9]);
}

#[test]
fn parallel_map_keeps_order_and_bounds_work() {
    let ds = range(500).par_map(3, true, |x| {
        // Uneven work so workers finish out of order.
        std::thread::sleep(std::time::Duration::from_micros(
            ((x * 7919) % 13) as u64 * 50,
        ));
        Ok(x * 2)
    });
    assert_eq!(vals(&ds), (0..500).map(|x| x * 2).collect::<Vec<_>>());
    let mut un = vals(&range(200).par_map(3, false, |x| Ok(x + 1)));
    un.sort();
    assert_eq!(un, (1..=200).collect::<Vec<_>>());
    // Dropping the iterator early stops the workers (no hang) and only a window was computed.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let ds = range(1_000_000).par_map(2, true, move |x| {
        c.fetch_add(1, Ordering::Relaxed);
        Ok(x)
    });
    let first: Vec<i64> = ds.iter().take(5).map(|r| r.unwrap()).collect();
    assert_eq!(first, vec![0, 1, 2, 3, 4]);
    assert!(calls.load(Ordering::Relaxed) < 100, "bounded look-ahead");
}

#[test]
fn map_errors_and_panics_become_elements() {
    let ds = range(6).par_map(2, true, |x| {
        if x == 2 {
            return Err(Error::User("two".into()));
        }
        if x == 4 {
            panic!("boom at four");
        }
        Ok(x)
    });
    let r: Vec<_> = ds.iter().collect();
    assert_eq!(r.len(), 6);
    assert!(matches!(&r[2], Err(Error::User(m)) if m == "two"));
    assert!(matches!(&r[4], Err(Error::User(m)) if m.contains("boom at four")));
    let kept = ds.ignore_errors();
    assert_eq!(vals(&kept), vec![0, 1, 3, 5]);
    assert_eq!(kept.stats().skipped_errors(), 2);
    assert!(ds.collect_vec().is_err());
}

#[test]
fn shuffle_is_a_seeded_permutation_and_reshuffles() {
    let ds = range(100).shuffle(100, 42, true);
    let a = vals(&ds);
    let b = vals(&ds);
    let mut s = a.clone();
    s.sort();
    assert_eq!(s, (0..100).collect::<Vec<_>>());
    assert_ne!(a, (0..100).collect::<Vec<_>>());
    assert_ne!(a, b, "second epoch reshuffles");
    // Same seed, fresh dataset: same first epoch.
    assert_eq!(vals(&range(100).shuffle(100, 42, true)), a);
    let fixed = range(100).shuffle(100, 42, false);
    assert_eq!(vals(&fixed), vals(&fixed));
    // A small buffer only moves elements locally.
    let local = vals(&range(100).shuffle(4, 1, false));
    for (i, v) in local.iter().enumerate() {
        assert!(
            *v <= i as i64 + 3,
            "element {v} came out at {i} through a 4-slot buffer"
        );
    }
}

#[test]
fn seeded_map_is_reproducible_across_worker_counts() {
    let f = |x: i64, rng: &mut ferrovision_tensor::rng::Rng| Ok(x * 1000 + rng.below(1000) as i64);
    let one = vals(&range(50).map_seeded(1, 9, f));
    let two = vals(&range(50).map_seeded(2, 9, f));
    assert_eq!(one, two);
    let ds = range(50).map_seeded(2, 9, f);
    assert_ne!(vals(&ds), vals(&ds), "each epoch draws new numbers");
    assert_ne!(vals(&range(50).map_seeded(2, 10, f)), one);
}

fn t(v: Vec<f32>, s: &[usize]) -> Tensor {
    Tensor::from_vec(v, s).unwrap()
}

#[test]
fn batch_padded_batch_unbatch() {
    let ds = Dataset::from_tensor_slices(&t((0..10).map(|x| x as f32).collect(), &[5, 2])).unwrap();
    let b = ds.batch(2, false).collect_vec().unwrap();
    assert_eq!(b.len(), 3);
    assert_eq!(b[0].shape(), &[2, 2]);
    assert_eq!(b[2].shape(), &[1, 2]);
    assert_eq!(b[1].to_vec::<f32>().unwrap(), vec![4.0, 5.0, 6.0, 7.0]);
    assert_eq!(ds.batch(2, true).count().unwrap(), 2);
    let back = ds.batch(2, false).unbatch().collect_vec().unwrap();
    assert_eq!(back.len(), 5);
    assert_eq!(back[4].to_vec::<f32>().unwrap(), vec![8.0, 9.0]);
    // Ragged box lists padded per component.
    let items = vec![
        (
            t(vec![1.0; 4], &[1, 4]),
            Tensor::from_vec(vec![3i64], &[1]).unwrap(),
        ),
        (
            t(vec![2.0; 12], &[3, 4]),
            Tensor::from_vec(vec![1i64, 2, 5], &[3]).unwrap(),
        ),
    ];
    let (bx, lb) = <(Tensor, Tensor)>::padded_batch(items, &(0.0, -1.0)).unwrap();
    assert_eq!(bx.shape(), &[2, 3, 4]);
    let v = bx.to_vec::<f32>().unwrap();
    assert_eq!(
        &v[..12],
        &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(lb.to_vec::<i64>().unwrap(), vec![3, -1, -1, 1, 2, 5]);
    // 2-d padding in both axes.
    let p = Tensor::padded_batch(
        vec![t(vec![1.0, 2.0], &[1, 2]), t(vec![3.0, 4.0], &[2, 1])],
        &9.0,
    )
    .unwrap();
    assert_eq!(
        p.to_vec::<f32>().unwrap(),
        vec![1.0, 2.0, 9.0, 9.0, 3.0, 9.0, 4.0, 9.0]
    );
}

#[test]
fn interleave_matches_tf_data_documentation() {
    // tf.data docs: range(1, 6).interleave(lambda x: from_tensors(x).repeat(6), cycle_length=2,
    // block_length=4).
    let want = vec![
        1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 3, 3, 4, 4, 5, 5, 5, 5, 5, 5,
    ];
    for parallel in [false, true] {
        let ds = Dataset::range(1, 6, 1)
            .unwrap()
            .interleave(2, 4, parallel, |x| {
                Ok(Dataset::from_vec(vec![x]).repeat(Some(6)))
            });
        assert_eq!(vals(&ds), want, "parallel={parallel}");
    }
}

#[test]
fn prefetch_and_memory_cache() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let ds = range(20)
        .map(move |x| {
            c.fetch_add(1, Ordering::Relaxed);
            Ok(x)
        })
        .cache()
        .prefetch(3);
    assert_eq!(vals(&ds), (0..20).collect::<Vec<_>>());
    assert_eq!(vals(&ds), (0..20).collect::<Vec<_>>());
    assert_eq!(
        calls.load(Ordering::Relaxed),
        20,
        "second epoch replays the cache"
    );
    let table = ds.stats().table();
    assert!(
        table.contains("prefetch(3)") && table.contains("cache(memory)"),
        "{table}"
    );
    assert_eq!(ds.stats().rows.last().unwrap().elements, 40);
}

#[test]
fn file_cache_skips_upstream_on_later_runs() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ferrovision-data");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cache_test.rec");
    let _ = std::fs::remove_file(&path);
    let make = |fail: bool| {
        Dataset::range(0, 6, 1).unwrap().map(move |x| {
            if fail {
                return Err(Error::User("upstream must not run".into()));
            }
            Ok(t(vec![x as f32, -(x as f32)], &[2]))
        })
    };
    let first = make(false).cache_to_file(&path).collect_vec().unwrap();
    assert!(path.exists());
    // A new dataset whose upstream fails still reads everything from the cache file.
    let second = make(true).cache_to_file(&path).collect_vec().unwrap();
    assert_eq!(first.len(), second.len());
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    }
    // A pass with an error leaves no cache behind.
    let p2 = dir.join("cache_fail.rec");
    let _ = std::fs::remove_file(&p2);
    assert!(make(true).cache_to_file(&p2).collect_vec().is_err());
    assert!(!p2.exists());
}

#[test]
fn stats_csv_is_written() {
    let ds = range(100).par_map(2, true, Ok).batch_ok();
    let _ = ds.count().unwrap();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let p = dir.join("stats.csv");
    ds.stats().write_csv(&p).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.starts_with("stage,elements"));
    assert!(text.contains("\"map(workers=2)\",100,"), "{text}");
    assert!(!ds.stats().scalars().is_empty());
}

trait BatchOk {
    fn batch_ok(&self) -> Self;
}
impl BatchOk for Dataset<i64> {
    fn batch_ok(&self) -> Self {
        self.filter(|_| true)
    }
}
