//! Transformed Winograd filters kept between inference calls.
//!
//! A Winograd convolution first transforms its filters (`U = G g Gᵀ`, 36 floats per 3×3
//! filter, [`crate::kernels::winograd::transform_filter`]). At 512 channels that is 38 MB
//! written per call, more than the saved multiplies at batch 1. Inference (gradients off) runs
//! the same weights again and again, so there the transformed filters are kept, keyed by the
//! weight's storage, its version (bumped by every in-place write: an optimizer step makes the
//! entry stale) and its view, and by the transform's orientation and layout. Entries whose
//! storage is gone or was written since are dropped at the next lookup; beyond
//! [`CAPACITY_FLOATS`] the least recently used go. Training (gradients on) never caches: its
//! weights change every step.

use crate::storage::Storage;
use crate::Tensor;
use std::sync::{Arc, Mutex, Weak};

/// Most floats kept (256 MB): ResNet-50's Winograd layers need about 45 M.
const CAPACITY_FLOATS: usize = 64 << 20;

#[derive(PartialEq, Eq)]
struct Key {
    storage: u64,
    version: u64,
    offset: usize,
    shape: Vec<usize>,
    strides: Vec<usize>,
    rotate: bool,
    in_major: bool,
}

struct Entry {
    key: Key,
    source: Weak<Storage>,
    filters: Arc<Vec<f32>>,
    last_use: u64,
}

struct Cache {
    entries: Vec<Entry>,
    clock: u64,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    entries: Vec::new(),
    clock: 0,
});

/// Drops what can never be hit again: entries whose storage is gone or was written since.
fn drop_stale(cache: &mut Cache) {
    cache.entries.retain(|e| {
        e.source
            .upgrade()
            .is_some_and(|s| s.version() == e.key.version)
    });
}

/// Frees the stale entries now. Training calls it (from its uncached Winograd convolutions)
/// so that filters cached by an earlier inference pass do not stay resident once the
/// optimizer has changed their weights.
pub(super) fn release_stale() {
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if !cache.entries.is_empty() {
        drop_stale(&mut cache);
    }
}

fn key(w: &Tensor, rotate: bool, in_major: bool) -> Key {
    let layout = w.layout();
    Key {
        storage: w.storage().id(),
        version: w.storage().version(),
        offset: layout.offset,
        shape: layout.shape.clone(),
        strides: layout.strides.clone(),
        rotate,
        in_major,
    }
}

/// The transformed filters of `w` for `(rotate, in_major)` from the cache, or computed by
/// `transform` (into a buffer of `len` floats) and cached.
pub(super) fn get_or_insert(
    w: &Tensor,
    rotate: bool,
    in_major: bool,
    len: usize,
    transform: impl FnOnce(&mut [f32]),
) -> Arc<Vec<f32>> {
    let k = key(w, rotate, in_major);
    {
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        cache.clock += 1;
        let now = cache.clock;
        drop_stale(&mut cache);
        if let Some(e) = cache.entries.iter_mut().find(|e| e.key == k) {
            e.last_use = now;
            return e.filters.clone();
        }
    }
    // Computed outside the lock (other threads' convolutions go on meanwhile).
    let mut u = vec![0.0f32; len];
    transform(&mut u);
    let filters = Arc::new(u);
    if len > CAPACITY_FLOATS {
        return filters;
    }
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.clock += 1;
    let now = cache.clock;
    let mut held: usize = cache.entries.iter().map(|e| e.filters.len()).sum();
    while held + len > CAPACITY_FLOATS {
        let Some(oldest) = cache
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.last_use)
            .map(|(i, _)| i)
        else {
            break;
        };
        held -= cache.entries.swap_remove(oldest).filters.len();
    }
    if !cache.entries.iter().any(|e| e.key == k) {
        cache.entries.push(Entry {
            key: k,
            source: Arc::downgrade(w.storage()),
            filters: filters.clone(),
            last_use: now,
        });
    }
    filters
}
