//! Helpers shared by the fuzz targets: parsers that read files get the fuzz input as a file in
//! memory-backed scratch space (one folder per fuzzing process).

use std::path::PathBuf;

/// Writes `bytes` to `name` in this process's scratch folder (under /dev/shm when it exists,
/// so no disk I/O) and returns its path.
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("ferrovision-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("scratch file");
    path
}

/// Splits one fuzz input into two parts at a position given by its first two bytes (for
/// formats made of two files, such as a TF.js manifest and its shard).
pub fn split2(data: &[u8]) -> (&[u8], &[u8]) {
    if data.len() < 2 {
        return (data, &[]);
    }
    let at = u16::from_le_bytes([data[0], data[1]]) as usize;
    let rest = &data[2..];
    rest.split_at(at.min(rest.len()))
}
