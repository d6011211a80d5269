//! Typed buffers behind tensors, and the buffer pool that keeps steady training steps off the
//! system allocator.
//!
//! A [`Storage`] is shared (`Arc`) by every view of the same memory. Its buffer sits behind an
//! `RwLock` so optimizers can update parameters in place; kernels take a read guard for the length
//! of one op. A CUDA backend adds a `Buffer::Cuda` variant here (see `docs/engine.md`).

use crate::{DType, Device};
use half::{bf16, f16};
use std::collections::BTreeMap;
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
    /// Creation order (a process-wide counter): a traced plan tells the tensors that existed
    /// before its trace (weights) from those made during it.
    id: u64,
    /// Bumped by every [`Storage::write`]: a traced plan sees in-place changes (an optimizer
    /// step on a weight it folded, an in-place op on a value it recorded).
    version: AtomicU64,
}

/// The next [`Storage`] id.
static NEXT_STORAGE_ID: AtomicU64 = AtomicU64::new(1);

impl Storage {
    pub fn new(buffer: Buffer) -> Self {
        Storage {
            buffer: RwLock::new(buffer),
            device: Device::Cpu,
            id: NEXT_STORAGE_ID.fetch_add(1, Ordering::Relaxed),
            version: AtomicU64::new(0),
        }
    }

    /// The id the next storage will get (every storage made later has an id at least this).
    pub fn next_id() -> u64 {
        NEXT_STORAGE_ID.load(Ordering::Relaxed)
    }

    /// This storage's creation id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How many times write access was taken.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
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
        self.version.fetch_add(1, Ordering::AcqRel);
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

/// The engine's one buffer free list: vectors of f32 (tensor storage, op scratch) and of i32
/// (max-pooling argmax indices) by capacity, a request served by the smallest one up to twice
/// its length. Training steps allocate the same sizes every step, so after the first step
/// nearly every buffer comes from here. [`PooledVec`] returns its buffer on drop.
pub mod pool {
    use super::*;

    /// f32 buffers below this many elements are cheap to allocate; keep them out of the pool.
    const MIN_POOLED: usize = 1024;
    /// Upper bound of pooled f32 memory, in elements (2 GiB). ResNet-50 training at batch 16
    /// cycles more than 1 GiB of buffers per step: with a 1 GiB bound ~67 of them a step went
    /// back to the allocator and were faulted in again (6 s of 34 s CPU time in the kernel);
    /// with 2 GiB none do (2.85 -> 2.26 s a step, peak RSS of the benchmark +2.6 %).
    const MAX_POOLED_ELEMS: usize = 512 << 20;
    /// i32 index buffers below this length are not kept.
    const MIN_POOLED_I32: usize = 4096;
    /// Upper bound of pooled i32 memory, in elements (256 MiB).
    const MAX_POOLED_I32: usize = 64 << 20;

    /// A request may be served by a vector up to this many times its length: the smallest
    /// such one. Exact sizes only left ResNet-50's training step (batch 16) holding 1.84 GB
    /// of buffers for a peak of 1.44 GB in use (temporaries of one size could not reuse
    /// larger idle ones); best fit within 2x holds 1.63 GB (a replay of the step's requests).
    /// Larger factors hold more: big buffers go to small requests and the big ones miss.
    const FIT_FACTOR: usize = 2;

    /// Free vectors bucketed by capacity, with a bound on the elements held.
    struct FreeList<T> {
        free: BTreeMap<usize, Vec<Vec<T>>>,
        elems: usize,
    }

    impl<T: Copy + Default> FreeList<T> {
        fn new() -> Self {
            FreeList {
                free: BTreeMap::new(),
                elems: 0,
            }
        }

        /// The smallest pooled vector of capacity `len..=FIT_FACTOR * len`, cut or grown to
        /// `len` (growing writes zeros past the length it came back with: a vector handed
        /// out shorter than its capacity keeps only that many values initialised).
        fn take(&mut self, len: usize) -> Option<Vec<T>> {
            let (&cap, list) = self.free.range_mut(len..=len * FIT_FACTOR).next()?;
            let mut v = list.pop().expect("buckets are never empty");
            if list.is_empty() {
                self.free.remove(&cap);
            }
            self.elems -= cap;
            v.resize(len, T::default());
            Some(v)
        }

        fn give_back(&mut self, v: Vec<T>, max_elems: usize) {
            let cap = v.capacity();
            if self.elems + cap <= max_elems {
                self.elems += cap;
                self.free.entry(cap).or_default().push(v);
            }
        }

        fn clear(&mut self) {
            self.free.clear();
            self.elems = 0;
        }
    }

    static POOL: Mutex<Option<FreeList<f32>>> = Mutex::new(None);
    static POOL_I32: Mutex<Option<FreeList<i32>>> = Mutex::new(None);

    fn with_list<T: Copy + Default, R>(
        m: &Mutex<Option<FreeList<T>>>,
        f: impl FnOnce(&mut FreeList<T>) -> R,
    ) -> R {
        let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
        f(g.get_or_insert_with(FreeList::new))
    }

    static HITS: AtomicU64 = AtomicU64::new(0);
    static MISSES: AtomicU64 = AtomicU64::new(0);

    fn take_pooled(len: usize) -> Option<Vec<f32>> {
        if len < MIN_POOLED {
            return None;
        }
        let v = with_list(&POOL, |p| p.take(len));
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

    /// (hits, misses): how many pooled-size f32 requests were served from the pool and how
    /// many went to the allocator since the process started.
    pub fn stats() -> (u64, u64) {
        (HITS.load(Ordering::Relaxed), MISSES.load(Ordering::Relaxed))
    }

    /// Returns a vector to the pool (or frees it if the pool is full).
    pub fn give_back(v: Vec<f32>) {
        if v.capacity() < MIN_POOLED {
            return;
        }
        with_list(&POOL, |p| p.give_back(v, MAX_POOLED_ELEMS));
    }

    /// Frees every pooled buffer. A trace calls it: a new workload starts, and what the pool
    /// holds would otherwise stay beside the new one's buffers (ResNet-50 predicting at batch
    /// 32 and then training: 455 MB, or worse, a best fit handing the new workload larger
    /// buffers than it needs).
    pub fn clear() {
        with_list(&POOL, FreeList::clear);
        with_list(&POOL_I32, FreeList::clear);
        return_free_memory_to_the_system();
    }

    /// glibc keeps freed blocks below its mmap threshold (which grows to 32 MB as large blocks
    /// are freed) in its heaps; after a clear they are idle pages (ResNet-50, inference then
    /// training: 125 MB of its peak).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn return_free_memory_to_the_system() {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim only releases free memory of the C allocator's heaps.
        unsafe {
            malloc_trim(0);
        }
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn return_free_memory_to_the_system() {}

    /// f32 elements currently held by the pool.
    pub fn pooled_elements() -> usize {
        with_list(&POOL, |p| p.elems)
    }

    /// Element types the pool keeps.
    pub trait Pooled: Sized + Copy + Default {
        /// A vector of `len` values with unspecified contents (every one written by the caller).
        fn take(len: usize) -> Vec<Self>;
        /// Returns a vector to the pool (or frees it).
        fn give_back(v: Vec<Self>);
    }

    impl Pooled for f32 {
        fn take(len: usize) -> Vec<f32> {
            take_uninit(len)
        }
        fn give_back(v: Vec<f32>) {
            give_back(v)
        }
    }

    impl Pooled for i32 {
        fn take(len: usize) -> Vec<i32> {
            if len >= MIN_POOLED_I32 {
                if let Some(v) = with_list(&POOL_I32, |p| p.take(len)) {
                    return v;
                }
            }
            vec![0; len]
        }
        fn give_back(v: Vec<i32>) {
            if v.capacity() >= MIN_POOLED_I32 {
                with_list(&POOL_I32, |p| p.give_back(v, MAX_POOLED_I32));
            }
        }
    }

    /// A pooled scratch vector that goes back to the pool when dropped (conv's im2col panels,
    /// max pooling's saved argmax indices: fresh multi-megabyte buffers would page-fault on
    /// every step).
    pub struct PooledVec<T: Pooled>(pub Vec<T>);

    impl<T: Pooled> PooledVec<T> {
        /// `len` values with unspecified contents (every one is written by the caller).
        pub fn take(len: usize) -> Self {
            PooledVec(T::take(len))
        }
    }

    impl<T: Pooled> std::ops::Deref for PooledVec<T> {
        type Target = [T];
        fn deref(&self) -> &[T] {
            &self.0
        }
    }

    impl<T: Pooled> std::ops::DerefMut for PooledVec<T> {
        fn deref_mut(&mut self) -> &mut [T] {
            &mut self.0
        }
    }

    impl<T: Pooled> Drop for PooledVec<T> {
        fn drop(&mut self) {
            T::give_back(std::mem::take(&mut self.0));
        }
    }

    #[cfg(test)]
    mod tests {
        use super::FreeList;

        #[test]
        fn a_request_takes_the_smallest_vector_up_to_twice_its_length() {
            let mut list = FreeList::<f32>::new();
            for len in [100, 150, 500] {
                list.give_back(vec![1.0; len], 1 << 20);
            }
            // 120: 150 fits best (100 is too small); 240: nothing in 240..=480.
            let v = list.take(120).unwrap();
            assert_eq!((v.len(), v.capacity()), (120, 150));
            assert!(list.take(240).is_none());
            assert_eq!(list.elems, 600);
            // Handed out short, it comes back short: taken longer, the new part is zeros.
            list.give_back(v, 1 << 20);
            let v = list.take(140).unwrap();
            assert_eq!(v.capacity(), 150);
            assert!(v[..120].iter().all(|&x| x == 1.0) && v[120..].iter().all(|&x| x == 0.0));
            assert_eq!(list.take(100).map(|v| v.capacity()), Some(100));
            assert_eq!(list.take(300).map(|v| v.capacity()), Some(500));
            assert_eq!(list.elems, 0);
        }

        #[test]
        fn a_returned_vector_is_reused_and_a_full_list_frees_returns() {
            let mut list = FreeList::<i32>::new();
            let v = vec![0; 64];
            let ptr = v.as_ptr();
            list.give_back(v, 100);
            let again = list.take(64).unwrap();
            assert_eq!(again.as_ptr(), ptr);
            list.give_back(again, 100);
            // Over the bound: not kept.
            list.give_back(vec![0; 64], 100);
            assert_eq!(list.elems, 64);
            assert!(list.take(64).is_some() && list.take(64).is_none());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pool::PooledVec;

    #[test]
    fn pooled_index_buffers_are_reused() {
        // A length no other test of this binary uses, so the bucket is this test's own. A
        // trace running beside this one empties the pool, so recycling must show in at least
        // one of a few tries.
        let len = 4096 * 3 + 7;
        let recycled = (0..5).any(|_| {
            let first = PooledVec::<i32>::take(len);
            let ptr = first.as_ptr();
            drop(first);
            let again = PooledVec::<i32>::take(len);
            assert_eq!(again.len(), len);
            again.as_ptr() == ptr
        });
        assert!(recycled, "a dropped index buffer was not recycled");
        // Short buffers are not kept.
        let short = PooledVec::<i32>::take(10);
        assert_eq!(short.len(), 10);
    }
}
