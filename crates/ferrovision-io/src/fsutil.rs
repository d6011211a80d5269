//! File helpers: atomic writes (temp file in the same folder + rename), so a crash or an error
//! never leaves a half-written file under the final name.

use crate::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file written under a temporary name and renamed to its final name by [`AtomicFile::commit`].
/// Dropping it without committing removes the temporary file.
pub struct AtomicFile {
    final_path: PathBuf,
    tmp_path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Opens a temporary file next to `path` (same folder, so the rename is atomic).
    pub fn create(path: impl AsRef<Path>) -> Result<AtomicFile> {
        let final_path = path.as_ref().to_path_buf();
        let name = final_path
            .file_name()
            .ok_or_else(|| Error::InvalidPath {
                path: final_path.clone(),
                msg: "AtomicFile: the path has no file name".into(),
            })?
            .to_string_lossy()
            .into_owned();
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp_path = final_path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()));
        let f = File::create(&tmp_path).map_err(|e| Error::io(&tmp_path, e))?;
        Ok(AtomicFile {
            final_path,
            tmp_path,
            out: Some(BufWriter::with_capacity(1 << 16, f)),
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.final_path
    }

    /// Flushes, syncs and renames the temporary file to the final name.
    pub fn commit(mut self) -> Result<()> {
        let out = self.out.take().expect("AtomicFile used after commit");
        let f = out
            .into_inner()
            .map_err(|e| Error::io(&self.tmp_path, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&self.tmp_path, e))?;
        drop(f);
        std::fs::rename(&self.tmp_path, &self.final_path)
            .map_err(|e| Error::io(&self.final_path, e))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out
            .as_mut()
            .expect("AtomicFile used after commit")
            .write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out
            .as_mut()
            .expect("AtomicFile used after commit")
            .flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// Writes `bytes` to `path` atomically, creating missing parent folders first.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.as_ref().parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut f = AtomicFile::create(path.as_ref())?;
    f.write_all(bytes)
        .map_err(|e| Error::io(path.as_ref(), e))?;
    f.commit()
}

/// Reads a whole file, naming it in the error.
pub fn read(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    std::fs::read(path.as_ref()).map_err(|e| Error::io(path.as_ref(), e))
}

/// Reads a whole UTF-8 text file, naming it in the error.
pub fn read_to_string(path: impl AsRef<Path>) -> Result<String> {
    std::fs::read_to_string(path.as_ref()).map_err(|e| Error::io(path.as_ref(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ferrovision-io-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn write_atomic_creates_folders_and_replaces_whole_files() {
        let dir = tmp("write");
        let p = dir.join("a/b/file.txt");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(read_to_string(&p).unwrap(), "second");
        // No temporary file is left next to it.
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["file.txt"]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_uncommitted_file_leaves_nothing_and_errors_name_the_path() {
        let dir = tmp("drop");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("never.bin");
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let err = read(dir.join("missing.bin")).unwrap_err();
        assert!(matches!(&err, Error::Io { path, .. } if path.ends_with("missing.bin")));
        assert!(matches!(
            AtomicFile::create("/"),
            Err(Error::InvalidPath { .. })
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
