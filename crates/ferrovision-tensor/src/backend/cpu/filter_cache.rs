//! Transformed convolution filters kept between calls.
//!
//! A Winograd convolution first transforms its filters (`U = G g Gᵀ`, 36 floats per 3×3
//! filter, [`crate::kernels::winograd::transform_filter`]). At 512 channels that is 38 MB
//! written per call, more than the saved multiplies at batch 1; the dense form of a small-map
//! convolution (`conv_dense.rs`) likewise rewrites its weights into a larger matrix, and the
//! im2col and 1×1 GEMMs pack theirs into micro-panels (`PanelLayout`) on every call. Inference
//! (gradients off) runs the same weights again and again, so there the transformed filters are
//! kept (where a GEMM reads them as its B, in its B-panel layout, `BPanelLayout`), keyed by the weight's storage, its version (bumped by every in-place write: an
//! optimizer step makes the entry stale) and its view, and by the form ([`Form`]). Entries
//! whose storage is gone or was written since are dropped at the next lookup; beyond
//! [`CAPACITY_FLOATS`] the least recently used go. Training's Winograd filters are never
//! cached (its weights change every step, and the forward and backward passes use different
//! transforms); its dense matrices are, so that a step's input gradient reuses the forward's.
//! A traced plan that folds batch norms into copies of the weights [`forget`]s the originals.

use crate::kernels::gemm::{BPanelLayout, PanelLayout};
use crate::kernels::im2col::Window;
use crate::storage::Storage;
use crate::Tensor;
use std::sync::{Arc, Mutex, Weak};

/// Most floats kept (256 MB): ResNet-50's Winograd layers need about 45 M, its other weights'
/// panels about 12 M (batch 32; 25 M at batch 1, where its 14 and 7 px layers run im2col).
const CAPACITY_FLOATS: usize = 64 << 20;

#[derive(PartialEq, Eq)]
struct Key {
    storage: u64,
    version: u64,
    offset: usize,
    shape: Vec<usize>,
    strides: Vec<usize>,
    form: Form,
}

/// What was made from the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Form {
    /// Winograd filters: rotated for the input gradient or not, in the whole-batch layout
    /// (`in_major`) or the tiled one.
    Winograd { rotate: bool, in_major: bool },
    /// Winograd filters of the whole-batch layout (not rotated), each of the 36 planes in
    /// this B-panel layout ([`crate::kernels::winograd::WideFilters::Panels`]).
    WinogradPanels(BPanelLayout),
    /// The dense matrix of a small-map convolution over this window.
    Dense(Window),
    /// The same in this B-panel layout (inference's forward pass).
    DensePanels(Window, BPanelLayout),
    /// The weights of each of `groups` groups packed as the GEMM reads them (im2col and 1×1
    /// convolutions).
    Panels { layout: PanelLayout, groups: usize },
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

/// Drops every entry made from `w`'s storage: a traced plan that folded a batch norm into a
/// copy of these weights reads the copy, so what the eager tracing pass cached for the
/// originals would only hold memory (ResNet-50's batch-1 inference: 190 MB).
pub(crate) fn forget(w: &Tensor) {
    let id = w.storage().id();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.entries.retain(|e| e.key.storage != id);
}

fn key(w: &Tensor, form: Form) -> Key {
    let layout = w.layout();
    Key {
        storage: w.storage().id(),
        version: w.storage().version(),
        offset: layout.offset,
        shape: layout.shape.clone(),
        strides: layout.strides.clone(),
        form,
    }
}

/// The filters of `w` in `form` from the cache, or made by `make` and cached.
pub(super) fn get_or_insert(
    w: &Tensor,
    form: Form,
    make: impl FnOnce() -> Vec<f32>,
) -> Arc<Vec<f32>> {
    let k = key(w, form);
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
    let filters = Arc::new(make());
    let len = filters.len();
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
