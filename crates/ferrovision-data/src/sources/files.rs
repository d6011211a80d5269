//! File globs (`*`, `?`, `**`) and text-line datasets.

use crate::dataset::Dataset;
use crate::{Error, Result};
use ferrovision_tensor::rng::Rng;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn wildcard(pat: &[u8], s: &[u8]) -> bool {
    // Iterative `*`/`?` matcher with backtracking to the last star.
    let (mut p, mut i, mut star, mut mark) = (0, 0, None, 0);
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some(p);
            mark = i;
            p += 1;
        } else if let Some(sp) = star {
            p = sp + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Paths matching a glob (`*` and `?` in any component, `**` for any depth), sorted; with
/// `shuffle_seed` the order is shuffled reproducibly.
pub fn glob(pattern: &str, shuffle_seed: Option<u64>) -> Result<Vec<PathBuf>> {
    let comps: Vec<&str> = pattern.split('/').collect();
    let (root, rest) = if pattern.starts_with('/') {
        (PathBuf::from("/"), &comps[1..])
    } else {
        (PathBuf::from("."), &comps[..])
    };
    let mut out = Vec::new();
    glob_walk(&root, rest, pattern.starts_with('/'), &mut out)?;
    out.sort();
    out.dedup();
    if let Some(seed) = shuffle_seed {
        let mut rng = Rng::new(seed);
        for i in (1..out.len()).rev() {
            out.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    Ok(out)
}

fn glob_walk(dir: &Path, comps: &[&str], absolute: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let Some((first, rest)) = comps.split_first() else {
        return Ok(());
    };
    let join = |name: &str| {
        if !absolute && dir == Path::new(".") {
            PathBuf::from(name)
        } else {
            dir.join(name)
        }
    };
    if *first == "**" {
        glob_walk(dir, rest, absolute, out)?;
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    glob_walk(
                        &join(&e.file_name().to_string_lossy()),
                        comps,
                        absolute,
                        out,
                    )?;
                }
            }
        }
        return Ok(());
    }
    if !first.contains(['*', '?']) {
        let p = join(first);
        if rest.is_empty() {
            if p.exists() {
                out.push(p);
            }
        } else if p.is_dir() {
            glob_walk(&p, rest, absolute, out)?;
        }
        return Ok(());
    }
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(_) => return Ok(()),
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !wildcard(first.as_bytes(), name.as_bytes()) {
            continue;
        }
        let p = join(&name);
        if rest.is_empty() {
            out.push(p);
        } else if p.is_dir() {
            glob_walk(&p, rest, absolute, out)?;
        }
    }
    Ok(())
}

/// `tf.data.Dataset.list_files`: matching paths as a dataset (shuffled with a seed if given).
pub fn list_files(pattern: &str, shuffle_seed: Option<u64>) -> Result<Dataset<PathBuf>> {
    let files = glob(pattern, shuffle_seed)?;
    if files.is_empty() {
        return Err(Error::invalid(
            "list_files",
            format!("no file matches '{pattern}'"),
        ));
    }
    Ok(Dataset::from_vec(files))
}

/// The lines of text files, in order (`\n` or `\r\n`), streamed.
pub fn text_lines(paths: Vec<PathBuf>) -> Dataset<String> {
    use std::io::BufRead;
    let paths = Arc::new(paths);
    Dataset::from_factory("text_lines", move || {
        let paths = paths.clone();
        Ok(paths
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
            .flat_map(|p| {
                let f = match std::fs::File::open(&p) {
                    Ok(f) => f,
                    Err(e) => {
                        return Box::new(std::iter::once(Err(Error::io(&p, e))))
                            as Box<dyn Iterator<Item = Result<String>> + Send>
                    }
                };
                let p2 = p.clone();
                Box::new(
                    std::io::BufReader::new(f)
                        .lines()
                        .enumerate()
                        .map(move |(i, l)| {
                            l.map_err(|e| {
                                Error::parse(&p2, Some(i + 1), format!("cannot read line: {e}"))
                            })
                            .map(|s| s.trim_end_matches('\r').to_string())
                        }),
                )
            }))
    })
}
