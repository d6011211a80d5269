//! The lazy, composable [`Dataset`].
//!
//! A `Dataset<T>` is a recipe: a shared factory that builds a fresh iterator of `Result<T>` each
//! time it is iterated (one epoch). Transformations wrap the factory, so nothing runs until
//! [`Dataset::iter`]. Errors travel as elements: a failing element yields `Err` and iteration can
//! go on (`ignore_errors` drops and counts them). Background work (parallel `map`, `prefetch`,
//! parallel `interleave`) runs on plain threads with bounded queues, so memory stays bounded.

use crate::background::{ParMap, Prefetch, MAX_PREALLOC};
use crate::element::{Batchable, Cacheable, DataElement, PaddedBatchable, Unbatchable};
use crate::stats::{StageStats, StatsReport};
use crate::tfrecord::{RecordReader, RecordWriter};
use crate::{Error, Result};
use ferrovision_tensor::rng::Rng;
use ferrovision_tensor::Tensor;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A boxed element iterator.
pub type BoxIter<T> = Box<dyn Iterator<Item = Result<T>> + Send>;
type Factory<T> = Arc<dyn Fn() -> Result<BoxIter<T>> + Send + Sync>;

/// A lazy dataset of `T`.
pub struct Dataset<T> {
    factory: Factory<T>,
    stages: Vec<Arc<StageStats>>,
}

impl<T> Clone for Dataset<T> {
    fn clone(&self) -> Self {
        Dataset {
            factory: self.factory.clone(),
            stages: self.stages.clone(),
        }
    }
}

/// Mixes a seed, an epoch and an element index into one 64-bit seed (SplitMix64 finaliser).
pub fn mix_seed(seed: u64, epoch: u64, index: u64) -> u64 {
    let mut z = seed
        ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Wraps a stage's iterator to time its `next` and count what it yields.
struct Timed<T> {
    inner: BoxIter<T>,
    stats: Arc<StageStats>,
    work_is_next: bool,
}

impl<T: DataElement> Iterator for Timed<T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        let t0 = Instant::now();
        let item = self.inner.next();
        let produced = match &item {
            Some(Ok(x)) => Some(x.nbytes()),
            _ => None,
        };
        self.stats.record_next(t0, produced);
        if self.work_is_next {
            self.stats.add_work(t0.elapsed().as_nanos() as u64);
        }
        item
    }
}

impl<T: DataElement> Dataset<T> {
    /// A source dataset from an iterator factory, called once per epoch.
    pub fn from_factory<F, I>(name: &str, f: F) -> Self
    where
        F: Fn() -> Result<I> + Send + Sync + 'static,
        I: Iterator<Item = Result<T>> + Send + 'static,
    {
        let stats = StageStats::new(name);
        let st = stats.clone();
        Dataset {
            factory: Arc::new(move || {
                let it = f()?;
                Ok(Box::new(Timed {
                    inner: Box::new(it),
                    stats: st.clone(),
                    work_is_next: true,
                }) as BoxIter<T>)
            }),
            stages: vec![stats],
        }
    }

    /// A dataset from a generator: `f` returns a fresh iterator of plain values each epoch.
    pub fn from_fn<F, I>(f: F) -> Self
    where
        F: Fn() -> I + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self::from_factory("from_fn", move || Ok(f().into_iter().map(Ok)))
    }

    /// A dataset of clones of `items`.
    pub fn from_vec(items: Vec<T>) -> Self
    where
        T: Clone + Sync,
    {
        let items = Arc::new(items);
        Self::from_factory("from_vec", move || {
            let items = items.clone();
            Ok((0..items.len()).map(move |i| Ok(items[i].clone())))
        })
    }

    /// Adds a stage whose iterator is built from the upstream iterator.
    fn stage<U: DataElement>(
        &self,
        name: String,
        build: impl Fn(BoxIter<T>, &Arc<StageStats>) -> Result<BoxIter<U>> + Send + Sync + 'static,
        work_is_next: bool,
    ) -> Dataset<U> {
        let up = self.factory.clone();
        let stats = StageStats::new(name);
        let st = stats.clone();
        let mut stages = self.stages.clone();
        stages.push(stats);
        Dataset {
            factory: Arc::new(move || {
                let it = build(up()?, &st)?;
                Ok(Box::new(Timed {
                    inner: it,
                    stats: st.clone(),
                    work_is_next,
                }) as BoxIter<U>)
            }),
            stages,
        }
    }

    /// Starts one pass (epoch) over the dataset.
    pub fn iter(&self) -> DatasetIter<T> {
        match (self.factory)() {
            Ok(it) => DatasetIter {
                inner: Some(it),
                first_err: None,
            },
            Err(e) => DatasetIter {
                inner: None,
                first_err: Some(e),
            },
        }
    }

    /// Collects one pass, stopping at the first error.
    pub fn collect_vec(&self) -> Result<Vec<T>> {
        self.iter().collect()
    }

    /// Counts the elements of one pass (errors are returned).
    pub fn count(&self) -> Result<usize> {
        let mut n = 0;
        for x in self.iter() {
            x?;
            n += 1;
        }
        Ok(n)
    }

    /// Statistics of every stage so far (accumulated over all passes).
    pub fn stats(&self) -> StatsReport {
        StatsReport::from_stages(&self.stages)
    }

    /// Applies `f` to every element on the calling thread.
    pub fn map<U: DataElement>(
        &self,
        f: impl Fn(T) -> Result<U> + Send + Sync + 'static,
    ) -> Dataset<U> {
        let f = Arc::new(f);
        self.stage(
            "map".into(),
            move |up, st| {
                let f = f.clone();
                let st = st.clone();
                Ok(Box::new(up.map(move |x| {
                    let x = x?;
                    let t = Instant::now();
                    let r = f(x);
                    st.add_work(t.elapsed().as_nanos() as u64);
                    r
                })) as BoxIter<U>)
            },
            false,
        )
    }

    /// Applies `f` with `workers` threads. With `ordered` the output order is the input order
    /// (like `tf.data` with `deterministic=True`); otherwise elements come as they finish.
    pub fn par_map<U: DataElement>(
        &self,
        workers: usize,
        ordered: bool,
        f: impl Fn(T) -> Result<U> + Send + Sync + 'static,
    ) -> Dataset<U> {
        let f: Arc<dyn Fn(T, u64, u64) -> Result<U> + Send + Sync> = Arc::new(move |x, _, _| f(x));
        self.par_map_indexed(workers, ordered, 0, f)
    }

    /// Like [`par_map`](Self::par_map), but `f` also gets a generator seeded from `seed`, the
    /// epoch and the element's position, so random augmentation is reproducible whatever the
    /// number of workers.
    pub fn map_seeded<U: DataElement>(
        &self,
        workers: usize,
        seed: u64,
        f: impl Fn(T, &mut Rng) -> Result<U> + Send + Sync + 'static,
    ) -> Dataset<U> {
        let f: Arc<dyn Fn(T, u64, u64) -> Result<U> + Send + Sync> =
            Arc::new(move |x, epoch, idx| {
                let mut rng = Rng::new(mix_seed(seed, epoch, idx));
                f(x, &mut rng)
            });
        self.par_map_indexed(workers.max(1), true, seed, f)
    }

    /// Maps and batches in one stage, writing each element straight into its slot of the
    /// batch tensor (no per-element tensor, no stacking copy). Each of `workers` threads builds
    /// whole batches: it takes `batch` consecutive elements, allocates the `[n, elem_shape..]`
    /// f32 buffer and calls `f(element, rng, slot)` for each, where `slot` is that element's
    /// `elem_shape.iter().product()` values. The generator is seeded from `seed`, the epoch and
    /// the element's position exactly as in [`map_seeded`](Self::map_seeded), so the result
    /// equals `map_seeded(..)` followed by `batch(batch, drop_remainder)` whatever the number of
    /// workers; batches come in order. An element whose `f` fails (or an upstream error) makes
    /// its whole batch an error (like `batch`, the batch's other elements are dropped). At most
    /// `2 x workers` batches are in flight.
    pub fn map_batch_seeded(
        &self,
        workers: usize,
        seed: u64,
        batch: usize,
        drop_remainder: bool,
        elem_shape: &[usize],
        f: impl Fn(T, &mut Rng, &mut [f32]) -> Result<()> + Send + Sync + 'static,
    ) -> Dataset<Tensor> {
        self.map_batch_impl(
            "map_batch",
            workers,
            seed,
            batch,
            drop_remainder,
            elem_shape,
            f,
            |t, _| Ok(t),
        )
    }

    /// [`map_batch_seeded`](Self::map_batch_seeded) for labelled data: `f` also returns the
    /// element's label, and each batch is `(images [n, elem_shape..] f32, labels [n] i64)`
    /// (what `Model::fit_source` takes).
    pub fn map_batch_seeded_labeled(
        &self,
        workers: usize,
        seed: u64,
        batch: usize,
        drop_remainder: bool,
        elem_shape: &[usize],
        f: impl Fn(T, &mut Rng, &mut [f32]) -> Result<i64> + Send + Sync + 'static,
    ) -> Dataset<(Tensor, Tensor)> {
        self.map_batch_impl(
            "map_batch_labeled",
            workers,
            seed,
            batch,
            drop_remainder,
            elem_shape,
            f,
            |t, labels: Vec<i64>| {
                let n = labels.len();
                Ok((t, Tensor::from_vec(labels, &[n])?))
            },
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn map_batch_impl<L: Send + 'static, O: DataElement>(
        &self,
        name: &str,
        workers: usize,
        seed: u64,
        batch: usize,
        drop_remainder: bool,
        elem_shape: &[usize],
        f: impl Fn(T, &mut Rng, &mut [f32]) -> Result<L> + Send + Sync + 'static,
        finish: impl Fn(Tensor, Vec<L>) -> Result<O> + Send + Sync + 'static,
    ) -> Dataset<O> {
        let batch = batch.max(1);
        let workers = workers.max(1);
        let shape = elem_shape.to_vec();
        let elem_len: usize = shape.iter().product();
        let epoch = Arc::new(AtomicU64::new(0));
        let up = self.factory.clone();
        let stats = StageStats::new(format!("{name}(workers={workers},batch={batch})"));
        let st = stats.clone();
        let mut stages = self.stages.clone();
        stages.push(stats);
        let run: Arc<dyn Fn(Vec<T>, u64, u64) -> Result<O> + Send + Sync> =
            Arc::new(move |items: Vec<T>, ep: u64, b: u64| {
                let n = items.len();
                let mut data = vec![0f32; n * elem_len];
                let mut extra = Vec::with_capacity(n);
                for (j, (x, slot)) in items
                    .into_iter()
                    .zip(data.chunks_exact_mut(elem_len.max(1)))
                    .enumerate()
                {
                    let mut rng = Rng::new(mix_seed(seed, ep, b * batch as u64 + j as u64));
                    extra.push(f(x, &mut rng, slot)?);
                }
                let mut s = Vec::with_capacity(shape.len() + 1);
                s.push(n);
                s.extend_from_slice(&shape);
                finish(Tensor::from_vec(data, &s)?, extra)
            });
        Dataset {
            factory: Arc::new(move || {
                let ep = epoch.fetch_add(1, Ordering::Relaxed);
                let mut upi = up()?;
                // Groups of `batch` upstream elements; an upstream error ends its group early
                // and travels alone (the group's elements are dropped, as in `batch`).
                let groups: BoxIter<Vec<T>> = Box::new(std::iter::from_fn(move || {
                    let mut items = Vec::with_capacity(batch.min(MAX_PREALLOC));
                    while items.len() < batch {
                        match upi.next() {
                            Some(Ok(x)) => items.push(x),
                            Some(Err(e)) => return Some(Err(e)),
                            None => break,
                        }
                    }
                    if items.is_empty() || (drop_remainder && items.len() < batch) {
                        return None;
                    }
                    Some(Ok(items))
                }));
                let it: BoxIter<O> = Box::new(ParMap::start(
                    groups,
                    workers,
                    true,
                    run.clone(),
                    ep,
                    st.clone(),
                    2 * workers,
                ));
                Ok(Box::new(Timed {
                    inner: it,
                    stats: st.clone(),
                    work_is_next: false,
                }) as BoxIter<O>)
            }),
            stages,
        }
    }

    fn par_map_indexed<U: DataElement>(
        &self,
        workers: usize,
        ordered: bool,
        _seed: u64,
        f: Arc<dyn Fn(T, u64, u64) -> Result<U> + Send + Sync>,
    ) -> Dataset<U> {
        let epoch = Arc::new(AtomicU64::new(0));
        let name = if workers <= 1 {
            "map".to_string()
        } else {
            format!(
                "map(workers={workers}{})",
                if ordered { "" } else { ",unordered" }
            )
        };
        self.stage(
            name,
            move |up, st| {
                let ep = epoch.fetch_add(1, Ordering::Relaxed);
                if workers <= 1 {
                    let f = f.clone();
                    let st = st.clone();
                    let mut idx = 0u64;
                    return Ok(Box::new(up.map(move |x| {
                        let i = idx;
                        idx += 1;
                        let x = x?;
                        let t = Instant::now();
                        let r = f(x, ep, i);
                        st.add_work(t.elapsed().as_nanos() as u64);
                        r
                    })) as BoxIter<U>);
                }
                Ok(Box::new(ParMap::start(
                    up,
                    workers,
                    ordered,
                    f.clone(),
                    ep,
                    st.clone(),
                    workers * 4,
                )) as BoxIter<U>)
            },
            false,
        )
    }

    /// Keeps the elements for which `pred` is true.
    pub fn filter(&self, pred: impl Fn(&T) -> bool + Send + Sync + 'static) -> Dataset<T> {
        let pred = Arc::new(pred);
        self.stage(
            "filter".into(),
            move |up, _| {
                let pred = pred.clone();
                Ok(Box::new(up.filter(move |x| match x {
                    Ok(v) => pred(v),
                    Err(_) => true,
                })) as BoxIter<T>)
            },
            true,
        )
    }

    /// Drops failed elements and counts them (see [`StatsReport::skipped_errors`]).
    pub fn ignore_errors(&self) -> Dataset<T> {
        self.stage(
            "ignore_errors".into(),
            |up, st| {
                let st = st.clone();
                Ok(Box::new(up.filter(move |x| {
                    if x.is_err() {
                        st.add_error();
                        false
                    } else {
                        true
                    }
                })) as BoxIter<T>)
            },
            false,
        )
    }

    /// Shuffles with a buffer of `buffer` elements (uniform when the buffer holds the whole
    /// dataset). With `reshuffle`, each pass uses a different order (seeded by the pass number).
    pub fn shuffle(&self, buffer: usize, seed: u64, reshuffle: bool) -> Dataset<T> {
        let epoch = Arc::new(AtomicU64::new(0));
        let buffer = buffer.max(1);
        self.stage(
            format!("shuffle({buffer})"),
            move |mut up, _| {
                let ep = epoch.fetch_add(1, Ordering::Relaxed);
                let mut rng = Rng::new(mix_seed(seed, if reshuffle { ep } else { 0 }, 0x5A));
                let mut buf: Vec<Result<T>> = Vec::with_capacity(buffer.min(MAX_PREALLOC));
                let mut exhausted = false;
                Ok(Box::new(std::iter::from_fn(move || {
                    while !exhausted && buf.len() < buffer {
                        match up.next() {
                            Some(x) => buf.push(x),
                            None => exhausted = true,
                        }
                    }
                    if buf.is_empty() {
                        return None;
                    }
                    let i = rng.below(buf.len() as u64) as usize;
                    Some(buf.swap_remove(i))
                })) as BoxIter<T>)
            },
            true,
        )
    }

    /// Groups `n` consecutive elements into one batched element.
    pub fn batch(&self, n: usize, drop_remainder: bool) -> Dataset<T>
    where
        T: Batchable,
    {
        self.batch_with(n, drop_remainder, format!("batch({n})"), |v| T::batch(v))
    }

    /// Batches with padding to the largest shape in each batch (per-component pad values).
    pub fn padded_batch(&self, n: usize, drop_remainder: bool, pad: T::Pad) -> Dataset<T>
    where
        T: PaddedBatchable,
    {
        self.batch_with(n, drop_remainder, format!("padded_batch({n})"), move |v| {
            T::padded_batch(v, &pad)
        })
    }

    fn batch_with(
        &self,
        n: usize,
        drop_remainder: bool,
        name: String,
        combine: impl Fn(Vec<T>) -> Result<T> + Send + Sync + 'static,
    ) -> Dataset<T> {
        let n = n.max(1);
        let combine = Arc::new(combine);
        self.stage(
            name,
            move |mut up, st| {
                let combine = combine.clone();
                let st = st.clone();
                Ok(Box::new(std::iter::from_fn(move || {
                    let mut items = Vec::with_capacity(n.min(MAX_PREALLOC));
                    while items.len() < n {
                        match up.next() {
                            Some(Ok(x)) => items.push(x),
                            Some(Err(e)) => return Some(Err(e)),
                            None => break,
                        }
                    }
                    if items.is_empty() || (drop_remainder && items.len() < n) {
                        return None;
                    }
                    let t = Instant::now();
                    let r = combine(items);
                    st.add_work(t.elapsed().as_nanos() as u64);
                    Some(r)
                })) as BoxIter<T>)
            },
            false,
        )
    }

    /// Splits batched elements back into items.
    pub fn unbatch(&self) -> Dataset<T>
    where
        T: Unbatchable,
    {
        self.flat_map_iter("unbatch".into(), |x: T| x.unbatch())
    }

    fn flat_map_iter(
        &self,
        name: String,
        f: impl Fn(T) -> Result<Vec<T>> + Send + Sync + 'static,
    ) -> Dataset<T> {
        let f = Arc::new(f);
        self.stage(
            name,
            move |mut up, _| {
                let f = f.clone();
                let mut pending: VecDeque<T> = VecDeque::new();
                Ok(Box::new(std::iter::from_fn(move || loop {
                    if let Some(x) = pending.pop_front() {
                        return Some(Ok(x));
                    }
                    match up.next()? {
                        Ok(x) => match f(x) {
                            Ok(v) => pending.extend(v),
                            Err(e) => return Some(Err(e)),
                        },
                        Err(e) => return Some(Err(e)),
                    }
                })) as BoxIter<T>)
            },
            true,
        )
    }

    /// Repeats the dataset `times` passes (`None` = forever). Each pass re-runs the upstream
    /// (so shuffles reshuffle and augmentations draw new numbers).
    pub fn repeat(&self, times: Option<usize>) -> Dataset<T> {
        let up = self.factory.clone();
        self.stage(
            match times {
                Some(n) => format!("repeat({n})"),
                None => "repeat".into(),
            },
            move |first, _| {
                let up = up.clone();
                let mut cur = if times == Some(0) { None } else { Some(first) };
                let mut done_passes = 0usize;
                let mut failed = false;
                Ok(Box::new(std::iter::from_fn(move || loop {
                    if let Some(it) = cur.as_mut() {
                        match it.next() {
                            Some(x) => return Some(x),
                            None => {
                                done_passes += 1;
                                cur = None;
                            }
                        }
                    }
                    if failed || times.is_some_and(|n| done_passes >= n) {
                        return None;
                    }
                    match up() {
                        Ok(it) => cur = Some(it),
                        Err(e) => {
                            failed = true;
                            return Some(Err(e));
                        }
                    }
                })) as BoxIter<T>)
            },
            false,
        )
    }

    /// The first `n` elements.
    pub fn take(&self, n: usize) -> Dataset<T> {
        self.stage(
            format!("take({n})"),
            move |up, _| Ok(Box::new(up.take(n)) as BoxIter<T>),
            false,
        )
    }

    /// All but the first `n` elements.
    pub fn skip(&self, n: usize) -> Dataset<T> {
        self.stage(
            format!("skip({n})"),
            move |up, _| Ok(Box::new(up.skip(n)) as BoxIter<T>),
            false,
        )
    }

    /// Every `num_shards`-th element starting at `index` (one worker's share in multi-worker
    /// training; shard before shuffling and augmenting so each worker reads only its files).
    pub fn shard(&self, num_shards: usize, index: usize) -> Dataset<T> {
        let n = num_shards.max(1);
        self.stage(
            format!("shard({index}/{n})"),
            move |up, _| Ok(Box::new(up.skip(index).step_by(n)) as BoxIter<T>),
            false,
        )
    }

    /// Pairs elements of two datasets; stops at the shorter one.
    pub fn zip<U: DataElement>(&self, other: &Dataset<U>) -> Dataset<(T, U)> {
        let other_f = other.factory.clone();
        let mut ds = self.stage(
            "zip".into(),
            move |up, _| {
                let o = other_f()?;
                Ok(Box::new(up.zip(o).map(|(a, b)| Ok((a?, b?)))) as BoxIter<(T, U)>)
            },
            false,
        );
        // The other branch's stages come right before the zip row.
        let zip_row = ds.stages.pop().unwrap();
        ds.stages.extend(other.stages.iter().cloned());
        ds.stages.push(zip_row);
        ds
    }

    /// This dataset followed by `other`.
    pub fn concatenate(&self, other: &Dataset<T>) -> Dataset<T> {
        let other_f = other.factory.clone();
        let mut ds = self.stage(
            "concatenate".into(),
            move |up, _| {
                let o = other_f()?;
                Ok(Box::new(up.chain(o)) as BoxIter<T>)
            },
            false,
        );
        let row = ds.stages.pop().unwrap();
        ds.stages.extend(other.stages.iter().cloned());
        ds.stages.push(row);
        ds
    }

    /// Pairs each element with its position in the pass.
    pub fn enumerate(&self) -> Dataset<(u64, T)> {
        self.stage(
            "enumerate".into(),
            |up, _| {
                Ok(Box::new(up.enumerate().map(|(i, x)| Ok((i as u64, x?)))) as BoxIter<(u64, T)>)
            },
            false,
        )
    }

    /// Maps each element to a dataset and interleaves them: `cycle_length` open at once, taking
    /// `block_length` consecutive elements from each in turn. With `parallel`, each open dataset
    /// is read ahead by its own thread (bounded).
    pub fn interleave<U: DataElement>(
        &self,
        cycle_length: usize,
        block_length: usize,
        parallel: bool,
        f: impl Fn(T) -> Result<Dataset<U>> + Send + Sync + 'static,
    ) -> Dataset<U> {
        let f = Arc::new(f);
        let cycle = cycle_length.max(1);
        let block = block_length.max(1);
        self.stage(
            format!(
                "interleave(cycle={cycle},block={block}{})",
                if parallel { ",parallel" } else { "" }
            ),
            move |mut up, _| {
                let f = f.clone();
                let mut open: Vec<BoxIter<U>> = Vec::new();
                let mut pos = 0usize;
                let mut taken = 0usize;
                let mut up_done = false;
                Ok(Box::new(std::iter::from_fn(move || loop {
                    // Fill the cycle.
                    while !up_done && open.len() < cycle {
                        match up.next() {
                            None => up_done = true,
                            Some(Err(e)) => return Some(Err(e)),
                            Some(Ok(x)) => match f(x) {
                                Err(e) => return Some(Err(e)),
                                Ok(ds) => {
                                    let it = if parallel {
                                        Box::new(Prefetch::start(ds.iter_boxed(), block * 2))
                                            as BoxIter<U>
                                    } else {
                                        ds.iter_boxed()
                                    };
                                    open.push(it);
                                }
                            },
                        }
                    }
                    if open.is_empty() {
                        return None;
                    }
                    if pos >= open.len() {
                        pos = 0;
                    }
                    match open[pos].next() {
                        Some(x) => {
                            taken += 1;
                            if taken >= block {
                                taken = 0;
                                pos += 1;
                            }
                            return Some(x);
                        }
                        None => {
                            // Like tf.data: the next input element opens in this slot, and the
                            // turn passes to the next slot.
                            taken = 0;
                            let next = if up_done { None } else { up.next() };
                            match next {
                                None => {
                                    up_done = true;
                                    drop(open.remove(pos));
                                }
                                Some(Err(e)) => {
                                    drop(open.remove(pos));
                                    return Some(Err(e));
                                }
                                Some(Ok(x)) => match f(x) {
                                    Err(e) => {
                                        drop(open.remove(pos));
                                        return Some(Err(e));
                                    }
                                    Ok(ds) => {
                                        open[pos] = if parallel {
                                            Box::new(Prefetch::start(ds.iter_boxed(), block * 2))
                                        } else {
                                            ds.iter_boxed()
                                        };
                                        pos += 1;
                                    }
                                },
                            }
                        }
                    }
                })) as BoxIter<U>)
            },
            false,
        )
    }

    fn iter_boxed(&self) -> BoxIter<T> {
        match (self.factory)() {
            Ok(it) => it,
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    /// Produces up to `buffer` elements ahead on a background thread.
    pub fn prefetch(&self, buffer: usize) -> Dataset<T> {
        let buffer = buffer.max(1);
        self.stage(
            format!("prefetch({buffer})"),
            move |up, _| Ok(Box::new(Prefetch::start(up, buffer)) as BoxIter<T>),
            false,
        )
    }

    /// Keeps the elements of the first complete pass in memory; later passes replay them
    /// without running the upstream stages.
    pub fn cache(&self) -> Dataset<T>
    where
        T: Clone + Sync,
    {
        let store: Arc<Mutex<Option<Arc<Vec<T>>>>> = Arc::new(Mutex::new(None));
        let up = self.factory.clone();
        let stats = StageStats::new("cache(memory)");
        let st = stats.clone();
        let mut stages = self.stages.clone();
        stages.push(stats);
        Dataset {
            factory: Arc::new(move || {
                let cached = store.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let inner: BoxIter<T> = if let Some(v) = cached {
                    Box::new((0..v.len()).map(move |i| Ok(v[i].clone())))
                } else {
                    let mut it = up()?;
                    let store = store.clone();
                    let mut acc = Vec::new();
                    let mut failed = false;
                    Box::new(std::iter::from_fn(move || match it.next() {
                        Some(Ok(x)) => {
                            acc.push(x.clone());
                            Some(Ok(x))
                        }
                        Some(Err(e)) => {
                            failed = true;
                            Some(Err(e))
                        }
                        None => {
                            if !failed {
                                *store.lock().unwrap_or_else(|e| e.into_inner()) =
                                    Some(Arc::new(std::mem::take(&mut acc)));
                            }
                            None
                        }
                    }))
                };
                Ok(Box::new(Timed {
                    inner,
                    stats: st.clone(),
                    work_is_next: false,
                }) as BoxIter<T>)
            }),
            stages,
        }
    }

    /// Writes the elements of the first complete pass to `path` (TFRecord framing, atomic), and
    /// reads them back on later passes and later runs, skipping the upstream stages (decoding).
    pub fn cache_to_file(&self, path: impl AsRef<Path>) -> Dataset<T>
    where
        T: Cacheable,
    {
        let path: PathBuf = path.as_ref().to_path_buf();
        let up = self.factory.clone();
        let stats = StageStats::new(format!("cache({})", path.display()));
        let st = stats.clone();
        let mut stages = self.stages.clone();
        stages.push(stats);
        Dataset {
            factory: Arc::new(move || {
                let inner: BoxIter<T> = if path.exists() {
                    let mut r = RecordReader::open(&path)?;
                    let mut buf = Vec::new();
                    Box::new(std::iter::from_fn(move || match r.read_into(&mut buf) {
                        Ok(true) => Some(T::decode(&buf)),
                        Ok(false) => None,
                        Err(e) => Some(Err(e)),
                    }))
                } else {
                    let mut it = up()?;
                    let mut w = Some(RecordWriter::create(&path)?);
                    let mut scratch = Vec::new();
                    Box::new(std::iter::from_fn(move || match it.next() {
                        Some(Ok(x)) => {
                            if let Some(wr) = w.as_mut() {
                                scratch.clear();
                                let r = x
                                    .encode(&mut scratch)
                                    .and_then(|_| wr.write_record(&scratch));
                                if let Err(e) = r {
                                    w = None;
                                    return Some(Err(e));
                                }
                            }
                            Some(Ok(x))
                        }
                        Some(Err(e)) => {
                            // An incomplete pass must not leave a cache that later passes trust.
                            w = None;
                            Some(Err(e))
                        }
                        None => {
                            if let Some(wr) = w.take() {
                                if let Err(e) = wr.finish() {
                                    return Some(Err(e));
                                }
                            }
                            None
                        }
                    }))
                };
                Ok(Box::new(Timed {
                    inner,
                    stats: st.clone(),
                    work_is_next: false,
                }) as BoxIter<T>)
            }),
            stages,
        }
    }
}

impl Dataset<Tensor> {
    /// Slices a tensor along its first axis: element `i` is `t[i]`.
    pub fn from_tensor_slices(t: &Tensor) -> Result<Dataset<Tensor>> {
        if t.rank() == 0 {
            return Err(Error::invalid(
                "from_tensor_slices",
                "needs a tensor of rank >= 1",
            ));
        }
        let t = t.contiguous()?;
        Ok(Dataset::from_factory("from_tensor_slices", move || {
            let t = t.clone();
            let n = t.shape()[0];
            let shape = t.shape()[1..].to_vec();
            Ok((0..n).map(move |i| Ok(t.narrow(0, i, 1)?.reshape(&shape)?)))
        }))
    }
}

impl Dataset<i64> {
    /// `start, start+step, ...` up to (not including) `end`.
    pub fn range(start: i64, end: i64, step: i64) -> Result<Dataset<i64>> {
        if step == 0 {
            return Err(Error::invalid("range", "step must not be 0"));
        }
        Ok(Dataset::from_factory("range", move || {
            let mut v = start;
            Ok(std::iter::from_fn(move || {
                if (step > 0 && v >= end) || (step < 0 && v <= end) {
                    return None;
                }
                let r = v;
                v += step;
                Some(Ok(r))
            }))
        }))
    }
}

/// One pass over a dataset.
pub struct DatasetIter<T> {
    inner: Option<BoxIter<T>>,
    first_err: Option<Error>,
}

impl<T> Iterator for DatasetIter<T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        if let Some(e) = self.first_err.take() {
            return Some(Err(e));
        }
        self.inner.as_mut()?.next()
    }
}
