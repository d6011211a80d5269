//! Helpers shared by the model-core tests.

/// Tests that depend on the process-wide random stream (`manual_seed` then draws) hold this
/// lock so tests running in parallel threads do not draw in between.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh temporary folder for one test.
pub fn tmp_dir(test: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ferrovision-nn-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
