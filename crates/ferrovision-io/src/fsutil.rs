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
        let f = File::create(&tmp_path).map_err(|e| Error::io(&final_path, e))?;
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

    /// Flushes, syncs and renames the temporary file to the final name, then syncs the folder
    /// so the rename itself survives a power loss. Errors name the final path (the temporary
    /// name means nothing to the user); on error the temporary file is removed.
    pub fn commit(mut self) -> Result<()> {
        let out = self.out.take().expect("AtomicFile used after commit");
        let written = out
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&self.tmp_path);
            return Err(Error::io(&self.final_path, e));
        }
        let name = self
            .final_path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        crate::crash::crash_point(&format!("before-rename:{name}"));
        if let Err(e) = std::fs::rename(&self.tmp_path, &self.final_path) {
            let _ = std::fs::remove_file(&self.tmp_path);
            return Err(Error::io(&self.final_path, e));
        }
        if let Some(dir) = self
            .final_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            // Not every file system can sync a folder; the rename is done either way.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        crate::crash::crash_point(&format!("after-rename:{name}"));
        Ok(())
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

/// True for the name of an [`AtomicFile`]'s temporary file (`.<name>.tmp-<pid>-<n>`).
pub fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    let Some((_, tail)) = rest.rsplit_once(".tmp-") else {
        return false;
    };
    let mut parts = tail.split('-');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(p), Some(n), None)
            if !p.is_empty() && !n.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && n.bytes().all(|b| b.is_ascii_digit())
    )
}

/// Removes the temporary files a crashed writer left in `dir` (not recursive); returns how
/// many. Call it only while no other process writes into `dir` (e.g. under a run's lock).
pub fn remove_stale_temps(dir: impl AsRef<Path>) -> Result<usize> {
    let dir = dir.as_ref();
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(is_temp_name) && entry.path().is_file() {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
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

    #[test]
    fn stale_temporary_files_are_recognised_and_removed_and_nothing_else() {
        let dir = tmp("stale");
        std::fs::create_dir_all(&dir).unwrap();
        // What a writer killed between write and rename leaves behind.
        let f = AtomicFile::create(dir.join("model.safetensors")).unwrap();
        let tmp_name = f
            .tmp_path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        std::mem::forget(f);
        assert!(is_temp_name(&tmp_name), "{tmp_name}");
        for keep in [
            "model.safetensors",
            ".hidden",
            ".a.tmp-x-1",
            "a.tmp-1-2",
            ".log.csv.tmp-1",
        ] {
            assert!(!is_temp_name(keep), "{keep}");
            std::fs::write(dir.join(keep), b"user").unwrap();
        }
        assert_eq!(remove_stale_temps(&dir).unwrap(), 1);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 5);
        assert_eq!(remove_stale_temps(dir.join("missing")).unwrap(), 0);
        // A failed write names the file the user asked for, not the temporary one.
        let e = write_atomic(dir.join("model.safetensors/inner"), b"x").unwrap_err();
        assert!(!e.to_string().contains(".tmp-"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
