//! Per-stage pipeline statistics: elements, throughput, time, bytes and skipped errors.

use crate::fsutil::write_atomic;
use crate::Result;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Counters of one pipeline stage, shared by every iteration of the dataset.
#[derive(Debug)]
pub struct StageStats {
    /// Stage name, e.g. `map(workers=2)`.
    pub name: String,
    elements: AtomicU64,
    bytes: AtomicU64,
    next_ns: AtomicU64,
    work_ns: AtomicU64,
    errors: AtomicU64,
    span: Mutex<Option<(Instant, Instant)>>,
}

impl StageStats {
    pub(crate) fn new(name: impl Into<String>) -> Arc<Self> {
        Arc::new(StageStats {
            name: name.into(),
            elements: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            next_ns: AtomicU64::new(0),
            work_ns: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            span: Mutex::new(None),
        })
    }

    pub(crate) fn record_next(&self, start: Instant, produced: Option<usize>) {
        let now = Instant::now();
        self.next_ns
            .fetch_add((now - start).as_nanos() as u64, Ordering::Relaxed);
        if let Some(b) = produced {
            self.elements.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(b as u64, Ordering::Relaxed);
        }
        let mut s = self.span.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *s {
            Some((_, last)) => *last = now,
            None => *s = Some((start, now)),
        }
    }

    pub(crate) fn add_work(&self, ns: u64) {
        self.work_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub(crate) fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Elements this stage produced.
    pub fn elements(&self) -> u64 {
        self.elements.load(Ordering::Relaxed)
    }

    /// Errors this stage skipped (only `ignore_errors` stages count them).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn row(&self) -> StageRow {
        let elements = self.elements();
        let secs = self
            .span
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(a, b)| (b - a).as_secs_f64())
            .unwrap_or(0.0);
        StageRow {
            name: self.name.clone(),
            elements,
            elem_per_s: if secs > 0.0 {
                elements as f64 / secs
            } else {
                0.0
            },
            next_ms: self.next_ns.load(Ordering::Relaxed) as f64 / 1e6,
            work_ms: self.work_ns.load(Ordering::Relaxed) as f64 / 1e6,
            mbytes: self.bytes.load(Ordering::Relaxed) as f64 / 1e6,
            errors: self.errors(),
        }
    }
}

/// One row of a [`StatsReport`].
#[derive(Debug, Clone, PartialEq)]
pub struct StageRow {
    /// Stage name.
    pub name: String,
    /// Elements produced.
    pub elements: u64,
    /// Elements per second between the stage's first and last produced element.
    pub elem_per_s: f64,
    /// Milliseconds the consumer spent inside this stage's `next` (includes upstream stages that
    /// run on the same thread; for a stage fed by a background thread it is the waiting time).
    pub next_ms: f64,
    /// Milliseconds spent in the stage's own function (summed over worker threads).
    pub work_ms: f64,
    /// Megabytes of element data produced (as reported by `DataElement::nbytes`).
    pub mbytes: f64,
    /// Errors skipped by `ignore_errors`.
    pub errors: u64,
}

/// A snapshot of every stage of a dataset, source first.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsReport {
    /// The stages in pipeline order.
    pub rows: Vec<StageRow>,
}

impl StatsReport {
    pub(crate) fn from_stages(stages: &[Arc<StageStats>]) -> Self {
        StatsReport {
            rows: stages.iter().map(|s| s.row()).collect(),
        }
    }

    /// Total errors skipped by all `ignore_errors` stages.
    pub fn skipped_errors(&self) -> u64 {
        self.rows.iter().map(|r| r.errors).sum()
    }

    /// A fixed-width text table.
    pub fn table(&self) -> String {
        let w = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut s = format!(
            "{:<w$}  {:>9}  {:>10}  {:>10}  {:>10}  {:>9}  {:>7}\n",
            "stage", "elements", "elem/s", "next ms", "work ms", "MB", "errors"
        );
        for r in &self.rows {
            s += &format!(
                "{:<w$}  {:>9}  {:>10.1}  {:>10.1}  {:>10.1}  {:>9.2}  {:>7}\n",
                r.name, r.elements, r.elem_per_s, r.next_ms, r.work_ms, r.mbytes, r.errors
            );
        }
        s
    }

    /// CSV text with a header row.
    pub fn csv(&self) -> String {
        let mut s = String::from("stage,elements,elem_per_s,next_ms,work_ms,mbytes,errors\n");
        for r in &self.rows {
            s += &format!(
                "\"{}\",{},{:.3},{:.3},{:.3},{:.4},{}\n",
                r.name.replace('"', "'"),
                r.elements,
                r.elem_per_s,
                r.next_ms,
                r.work_ms,
                r.mbytes,
                r.errors
            );
        }
        s
    }

    /// Writes [`csv`](Self::csv) to `path` atomically.
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(write_atomic(path, self.csv().as_bytes())?)
    }

    /// `(tag, value)` scalars for a TensorBoard writer, e.g. `data/3_batch(32)/elem_per_s`.
    pub fn scalars(&self) -> Vec<(String, f64)> {
        let mut v = Vec::new();
        for (i, r) in self.rows.iter().enumerate() {
            let tag = format!("data/{i}_{}", r.name);
            v.push((format!("{tag}/elem_per_s"), r.elem_per_s));
            v.push((format!("{tag}/work_ms"), r.work_ms));
            v.push((format!("{tag}/mbytes"), r.mbytes));
            v.push((format!("{tag}/errors"), r.errors as f64));
        }
        v
    }
}
