//! Test helpers: locating ../shared/data and an output folder.
#![allow(dead_code)]

use std::path::PathBuf;

/// The real-data folder (env FERROVISION_DATA, or `shared/data` found walking up from the crate).
pub fn data_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("FERROVISION_DATA") {
        let d = PathBuf::from(d);
        return d.is_dir().then_some(d);
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let c = dir.join("shared/data");
        if c.is_dir() {
            return Some(c);
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// `data_dir()/sub`, or None after printing why the test is skipped.
pub fn data(sub: &str) -> Option<PathBuf> {
    match data_dir().map(|d| d.join(sub)) {
        Some(p) if p.exists() => Some(p),
        _ => {
            eprintln!("SKIPPED: real data '{sub}' not found (set FERROVISION_DATA or provide ../shared/data)");
            None
        }
    }
}

/// A fresh output folder under the test target directory.
pub fn out_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("ferrovision-data")
        .join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}
