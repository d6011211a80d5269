//! Video frames: decoding runs through an `ffmpeg` executable (a subprocess; no codec is linked
//! into ferrovision), sampling picks every k-th frame, N uniformly spread frames, or the first
//! frame of each detected scene. Without ffmpeg on the PATH (or `FERROVISION_FFMPEG`), decoding
//! returns [`Error::Tool`] saying so; the sampling and scene-cut logic is plain Rust.

use crate::image::Image;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which frames to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Frames 0, k, 2k, ...
    EveryKth(usize),
    /// `n` frames spread uniformly over the clip (centres of `n` equal segments).
    Uniform(usize),
    /// The first frame of each scene; a cut is where the mean absolute difference of consecutive
    /// (downscaled) frames exceeds `threshold` (0..255 scale).
    SceneCuts { threshold: f32 },
}

/// Indices of the frames to keep out of `n_frames` (for `EveryKth` and `Uniform`).
pub fn sample_indices(n_frames: usize, s: Sampling) -> Vec<usize> {
    match s {
        Sampling::EveryKth(k) => (0..n_frames).step_by(k.max(1)).collect(),
        Sampling::Uniform(n) => {
            if n_frames == 0 || n == 0 {
                return vec![];
            }
            (0..n)
                .map(|i| (((2 * i + 1) * n_frames) / (2 * n)).min(n_frames - 1))
                .collect()
        }
        Sampling::SceneCuts { .. } => (0..n_frames).collect(),
    }
}

/// Indices of frames that start a new scene (always includes 0).
pub fn scene_cuts(frames: &[Image<u8>], threshold: f32) -> Vec<usize> {
    let mut cuts = Vec::new();
    for i in 0..frames.len() {
        if i == 0 {
            cuts.push(0);
            continue;
        }
        let (a, b) = (&frames[i - 1], &frames[i]);
        if a.data.len() != b.data.len() || a.data.is_empty() {
            cuts.push(i);
            continue;
        }
        let diff: u64 = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| x.abs_diff(*y) as u64)
            .sum();
        if diff as f32 / a.data.len() as f32 > threshold {
            cuts.push(i);
        }
    }
    cuts
}

fn ffmpeg() -> PathBuf {
    std::env::var_os("FERROVISION_FFMPEG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("ffmpeg"))
}

/// True when an ffmpeg executable can be started.
pub fn ffmpeg_available() -> bool {
    Command::new(ffmpeg())
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Decodes every frame of `path` as RGB, scaled to `width x height` (None keeps the size, which
/// is then probed with a first decode of one frame).
pub fn decode_frames(
    path: impl AsRef<Path>,
    size: Option<(usize, usize)>,
) -> Result<Vec<Image<u8>>> {
    let path = path.as_ref();
    if !path.exists() {
        return Err(Error::io(
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let (w, h) = match size {
        Some(s) => s,
        None => {
            let one = run_ffmpeg(path, None, &["-frames:v", "1"], "image2pipe", "png")?;
            let img = crate::image::decode_rgb8(&one, path)?;
            (img.width, img.height)
        }
    };
    let scale = format!("scale={w}:{h}");
    let raw = run_ffmpeg(path, Some(&scale), &[], "rawvideo", "rgb24")?;
    let fsz = w * h * 3;
    if fsz == 0 || raw.len() % fsz != 0 {
        return Err(Error::Tool {
            tool: "ffmpeg",
            msg: format!(
                "{}: {} bytes of output is not a whole number of {w}x{h} frames",
                path.display(),
                raw.len()
            ),
        });
    }
    Ok(raw
        .chunks_exact(fsz)
        .map(|c| Image {
            width: w,
            height: h,
            channels: 3,
            data: c.to_vec(),
        })
        .collect())
}

fn run_ffmpeg(
    path: &Path,
    vf: Option<&str>,
    extra: &[&str],
    fmt: &str,
    pix: &str,
) -> Result<Vec<u8>> {
    let mut cmd = Command::new(ffmpeg());
    cmd.args(["-v", "error", "-nostdin", "-i"]).arg(path);
    if let Some(f) = vf {
        cmd.args(["-vf", f]);
    }
    cmd.args(extra);
    if pix == "png" {
        cmd.args(["-f", fmt, "-vcodec", "png", "-"]);
    } else {
        cmd.args(["-f", fmt, "-pix_fmt", pix, "-"]);
    }
    let out = cmd.output().map_err(|e| Error::Tool {
        tool: "ffmpeg",
        msg: format!("cannot run '{}' ({e}); video decoding needs ffmpeg on the PATH (Debian: apt-get install ffmpeg) or FERROVISION_FFMPEG", ffmpeg().display()),
    })?;
    if !out.status.success() {
        return Err(Error::Tool {
            tool: "ffmpeg",
            msg: format!(
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(out.stdout)
}

/// Decodes a clip and keeps the sampled frames (with their indices).
pub fn sample_frames(
    path: impl AsRef<Path>,
    size: Option<(usize, usize)>,
    s: Sampling,
) -> Result<Vec<(usize, Image<u8>)>> {
    let frames = decode_frames(path, size)?;
    let idx = match s {
        Sampling::SceneCuts { threshold } => scene_cuts(&frames, threshold),
        other => sample_indices(frames.len(), other),
    };
    Ok(idx.into_iter().map(|i| (i, frames[i].clone())).collect())
}
