//! The background stages of a dataset pipeline: a bounded prefetching reader thread and the
//! parallel map (workers pull from a shared upstream at most a window ahead of the consumer;
//! the consumer restores the order). A panic or a failed thread start becomes an error element,
//! never a silently shortened stream.

use crate::dataset::BoxIter;
use crate::stats::StageStats;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// The most elements a stage reserves room for up front: batch and buffer sizes come from users
/// (`--batch-size 4611686018427387904`), so larger groups grow as elements arrive instead of
/// reserving (and overflowing) at once.
pub(crate) const MAX_PREALLOC: usize = 4096;

/// The most threads one parallel stage starts, whatever it is asked for.
pub const MAX_WORKERS: usize = 256;

/// The message of a caught panic payload.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// A bounded background reader.
pub(crate) struct Prefetch<T> {
    rx: mpsc::Receiver<Result<T>>,
    stop: Arc<AtomicBool>,
}

impl<T: Send + 'static> Prefetch<T> {
    pub(crate) fn start(mut up: BoxIter<T>, buffer: usize) -> Self {
        let (tx, rx) = mpsc::sync_channel(buffer);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let err_tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("fv-prefetch".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    // A panic upstream becomes the stream's last element, not a silent end.
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| up.next())) {
                        Ok(None) => break,
                        Ok(Some(x)) => {
                            if tx.send(x).is_err() {
                                break;
                            }
                        }
                        Err(p) => {
                            let _ = tx.send(Err(Error::User(format!(
                                "input pipeline stage panicked: {}",
                                panic_message(p.as_ref())
                            ))));
                            break;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            let _ = err_tx.try_send(Err(Error::User(format!(
                "cannot start the input pipeline's prefetch thread: {e}"
            ))));
        }
        Prefetch { rx, stop }
    }
}

impl<T> Iterator for Prefetch<T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        self.rx.recv().ok()
    }
}

impl<T> Drop for Prefetch<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct ParShared<T> {
    src: Mutex<ParSource<T>>,
    cv: Condvar,
}

struct ParSource<T> {
    up: BoxIter<T>,
    next_idx: u64,
    consumed: u64,
    done: bool,
    stop: bool,
}

/// Parallel map: workers pull from the shared upstream (at most `window` elements ahead of the
/// consumer, which bounds memory) and send `(index, result)`; the consumer restores the order.
pub(crate) struct ParMap<T, U> {
    shared: Arc<ParShared<T>>,
    rx: mpsc::Receiver<(u64, Result<U>)>,
    pending: BTreeMap<u64, Result<U>>,
    expected: u64,
    ordered: bool,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl<T: Send + 'static, U: Send + 'static> ParMap<T, U> {
    pub(crate) fn start(
        up: BoxIter<T>,
        workers: usize,
        ordered: bool,
        f: Arc<dyn Fn(T, u64, u64) -> Result<U> + Send + Sync>,
        epoch: u64,
        stats: Arc<StageStats>,
        window: usize,
    ) -> Self {
        let window = window.max(1) as u64;
        let shared = Arc::new(ParShared {
            src: Mutex::new(ParSource {
                up,
                next_idx: 0,
                consumed: 0,
                done: false,
                stop: false,
            }),
            cv: Condvar::new(),
        });
        let (tx, rx) = mpsc::channel();
        let handles = (0..workers.clamp(1, MAX_WORKERS))
            .map(|w| {
                let shared = shared.clone();
                let tx = tx.clone();
                let f = f.clone();
                let stats = stats.clone();
                std::thread::Builder::new()
                    .name(format!("fv-map-{w}"))
                    .spawn(move || loop {
                        let (idx, item) = {
                            let mut s = shared.src.lock().unwrap_or_else(|e| e.into_inner());
                            while !s.stop && !s.done && s.next_idx - s.consumed >= window {
                                s = shared.cv.wait(s).unwrap_or_else(|e| e.into_inner());
                            }
                            if s.stop || s.done {
                                return;
                            }
                            // A panic upstream ends the stream with an error, not silently.
                            let next =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    s.up.next()
                                }))
                                .unwrap_or_else(|p| {
                                    s.done = true;
                                    Some(Err(Error::User(format!(
                                        "input pipeline stage panicked: {}",
                                        panic_message(p.as_ref())
                                    ))))
                                });
                            match next {
                                None => {
                                    s.done = true;
                                    shared.cv.notify_all();
                                    return;
                                }
                                Some(x) => {
                                    let i = s.next_idx;
                                    s.next_idx += 1;
                                    (i, x)
                                }
                            }
                        };
                        let r = match item {
                            Err(e) => Err(e),
                            Ok(x) => {
                                let t = Instant::now();
                                let r =
                                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                        f(x, epoch, idx)
                                    }))
                                    .unwrap_or_else(|p| {
                                        Err(Error::User(format!(
                                            "map function panicked: {}",
                                            panic_message(p.as_ref())
                                        )))
                                    });
                                stats.add_work(t.elapsed().as_nanos() as u64);
                                r
                            }
                        };
                        if tx.send((idx, r)).is_err() {
                            return;
                        }
                    })
            })
            .collect::<Vec<_>>();
        // Fewer threads than asked still work; none at all is an error the consumer sees first.
        let mut spawn_error = None;
        let handles = handles
            .into_iter()
            .filter_map(|h| h.map_err(|e| spawn_error = Some(e)).ok())
            .collect::<Vec<_>>();
        if handles.is_empty() {
            let e = spawn_error.map_or_else(|| "no workers".to_string(), |e| e.to_string());
            let _ = tx.send((
                0,
                Err(Error::User(format!(
                    "cannot start the input pipeline's map workers: {e}"
                ))),
            ));
        }
        ParMap {
            shared,
            rx,
            pending: BTreeMap::new(),
            expected: 0,
            ordered,
            handles,
        }
    }

    fn consumed_one(&mut self) {
        let mut s = self.shared.src.lock().unwrap_or_else(|e| e.into_inner());
        s.consumed += 1;
        self.shared.cv.notify_one();
    }
}

impl<T: Send + 'static, U: Send + 'static> Iterator for ParMap<T, U> {
    type Item = Result<U>;
    fn next(&mut self) -> Option<Result<U>> {
        loop {
            if self.ordered {
                if let Some(r) = self.pending.remove(&self.expected) {
                    self.expected += 1;
                    self.consumed_one();
                    return Some(r);
                }
            }
            match self.rx.recv() {
                Ok((i, r)) => {
                    if !self.ordered {
                        self.consumed_one();
                        return Some(r);
                    }
                    self.pending.insert(i, r);
                }
                Err(_) => {
                    // All workers ended. Anything left out of order is yielded in index order.
                    let k = *self.pending.keys().next()?;
                    self.expected = k + 1;
                    return self.pending.remove(&k);
                }
            }
        }
    }
}

impl<T, U> Drop for ParMap<T, U> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.src.lock() {
            s.stop = true;
        }
        self.shared.cv.notify_all();
        // Workers end at their next check; joining keeps thread counts bounded across epochs.
        while self.rx.try_recv().is_ok() {}
        for h in self.handles.drain(..) {
            // Drain again so a worker blocked on nothing can finish; the channel is unbounded.
            let _ = h.join();
        }
    }
}
