//! Typed buffers behind tensors, and the buffer pool that keeps steady training steps off the
//! system allocator.
//!
//! A [`Storage`] is shared (`Arc`) by every view of the same memory. Its buffer sits behind an
//! `RwLock` so optimizers can update parameters in place; kernels take a read guard for the length
//! of one op. A CUDA backend adds a `Buffer::Cuda` variant here (see `docs/engine.md`).

use crate::{DType, Device};
use half::{bf16, f16};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Host memory of one dtype.
#[derive(Debug)]
pub enum Buffer {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
}

impl Buffer {
    pub fn dtype(&self) -> DType {
        match self {
            Buffer::F32(_) => DType::F32,
            Buffer::F16(_) => DType::F16,
            Buffer::BF16(_) => DType::BF16,
            Buffer::I64(_) => DType::I64,
            Buffer::I32(_) => DType::I32,
            Buffer::U8(_) => DType::U8,
            Buffer::Bool(_) => DType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Buffer::F32(v) => v.len(),
            Buffer::F16(v) => v.len(),
            Buffer::BF16(v) => v.len(),
            Buffer::I64(v) => v.len(),
            Buffer::I32(v) => v.len(),
            Buffer::U8(v) => v.len(),
            Buffer::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Shared memory of a tensor and the device it lives on.
#[derive(Debug)]
pub struct Storage {
    buffer: RwLock<Buffer>,
    device: Device,
}

impl Storage {
    pub fn new(buffer: Buffer) -> Self {
        Storage {
            buffer: RwLock::new(buffer),
            device: Device::Cpu,
        }
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Read access for the length of one op.
    pub fn read(&self) -> RwLockReadGuard<'_, Buffer> {
        // A poisoned lock only means a panic happened elsewhere mid-write; the data is plain
        // numbers, so keep going with what is there.
        self.buffer.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access (in-place updates such as optimizer steps).
    pub fn write(&self) -> RwLockWriteGuard<'_, Buffer> {
        self.buffer.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        let buf = std::mem::replace(
            self.buffer.get_mut().unwrap_or_else(|e| e.into_inner()),
            Buffer::U8(Vec::new()),
        );
        if let Buffer::F32(v) = buf {
            pool::give_back(v);
        }
    }
}

/// A size-bucketed free list of f32 vectors. Training steps allocate the same sizes every step,
/// so after the first step nearly every buffer comes from here.
pub mod pool {
    use super::*;

    /// Buffers below this many elements are cheap to allocate; keep them out of the pool.
    const MIN_POOLED: usize = 1024;
    /// Upper bound of pooled memory, in f32 elements (1 GiB).
    const MAX_POOLED_ELEMS: usize = 256 << 20;

    struct Pool {
        free: HashMap<usize, Vec<Vec<f32>>>,
        elems: usize,
    }

    static POOL: Mutex<Option<Pool>> = Mutex::new(None);

    fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
        let mut g = POOL.lock().unwrap_or_else(|e| e.into_inner());
        let p = g.get_or_insert_with(|| Pool {
            free: HashMap::new(),
            elems: 0,
        });
        f(p)
    }

    static HITS: AtomicU64 = AtomicU64::new(0);
    static MISSES: AtomicU64 = AtomicU64::new(0);

    fn take_pooled(len: usize) -> Option<Vec<f32>> {
        if len < MIN_POOLED {
            return None;
        }
        let v = with_pool(|p| {
            let v = p.free.get_mut(&len).and_then(|list| list.pop());
            if v.is_some() {
                p.elems -= len;
            }
            v
        });
        let counter = if v.is_some() { &HITS } else { &MISSES };
        counter.fetch_add(1, Ordering::Relaxed);
        v
    }

    /// A vector of `len` f32 whose contents are unspecified (all written by the caller).
    pub fn take_uninit(len: usize) -> Vec<f32> {
        // Zeroed allocation is as fast as uninitialised for fresh pages (calloc).
        take_pooled(len).unwrap_or_else(|| vec![0.0; len])
    }

    /// A zero-filled vector of `len` f32.
    pub fn take_zeroed(len: usize) -> Vec<f32> {
        match take_pooled(len) {
            Some(mut v) => {
                v.fill(0.0);
                v
            }
            None => vec![0.0; len],
        }
    }

    /// (hits, misses): how many pooled-size requests were served from the pool and how many
    /// went to the allocator since the process started.
    pub fn stats() -> (u64, u64) {
        (HITS.load(Ordering::Relaxed), MISSES.load(Ordering::Relaxed))
    }

    /// Returns a vector to the pool (or frees it if the pool is full).
    pub fn give_back(v: Vec<f32>) {
        let len = v.len();
        if len < MIN_POOLED || v.capacity() != len {
            return;
        }
        with_pool(|p| {
            if p.elems + len <= MAX_POOLED_ELEMS {
                p.elems += len;
                p.free.entry(len).or_default().push(v);
            }
        });
    }

    /// Frees every pooled buffer.
    pub fn clear() {
        with_pool(|p| {
            p.free.clear();
            p.elems = 0;
        });
    }

    /// Elements currently held by the pool.
    pub fn pooled_elements() -> usize {
        with_pool(|p| p.elems)
    }
}
