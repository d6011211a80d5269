//! Crash points for crash-recovery tests.
//!
//! Code that must survive a crash at any moment calls [`crash_point`] at the moments that
//! matter (after a temporary file is written but before it is renamed, after each file of a run
//! directory is committed, ...). With the environment variable `FERROVISION_CRASH_AT` set to
//! `NAME` or `NAME@N`, the process aborts (as a `kill -9` would end it: no destructors, no
//! flushing) the first, or the `N`-th, time it passes the point `NAME`. Unset, a crash point
//! costs one relaxed atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable naming the crash point.
pub const CRASH_ENV: &str = "FERROVISION_CRASH_AT";

fn target() -> &'static Option<(String, u64)> {
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    TARGET.get_or_init(|| {
        let v = std::env::var(CRASH_ENV).ok()?;
        Some(match v.rsplit_once('@') {
            Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1).max(1)),
            None => (v, 1),
        })
    })
}

static HITS: AtomicU64 = AtomicU64::new(0);

/// Aborts the process here if `FERROVISION_CRASH_AT` names this point (and this is the hit it
/// asks for). See the module documentation.
pub fn crash_point(name: &str) {
    let Some((want, n)) = target() else { return };
    if want == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *n {
        eprintln!("crash point {name}@{n}: aborting (test)");
        std::process::abort();
    }
}
