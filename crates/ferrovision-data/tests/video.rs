//! Frame sampling and scene cuts (pure Rust), and decoding when ffmpeg is present.

mod common;
use ferrovision_data::image::Image;
use ferrovision_data::video::{self, Sampling};

#[test]
fn sampling_indices() {
    assert_eq!(
        video::sample_indices(10, Sampling::EveryKth(3)),
        vec![0, 3, 6, 9]
    );
    assert_eq!(
        video::sample_indices(100, Sampling::Uniform(4)),
        vec![12, 37, 62, 87]
    );
    assert_eq!(
        video::sample_indices(3, Sampling::Uniform(5)),
        vec![0, 0, 1, 2, 2] // segment centres 0.3 0.9 1.5 2.1 2.7
    );
    assert!(video::sample_indices(0, Sampling::Uniform(5)).is_empty());
}

#[test]
fn scene_cuts_on_synthetic_frames() {
    // Three "scenes" of flat colours with small noise inside each.
    let mut frames = Vec::new();
    for (scene, base) in [(0, 30u8), (1, 200), (2, 90)] {
        for k in 0..5u8 {
            frames.push(Image::new(8, 8, 3, base + k + scene));
        }
    }
    assert_eq!(video::scene_cuts(&frames, 20.0), vec![0, 5, 10]);
}

#[test]
fn decode_real_clip_when_ffmpeg_present() {
    let Some(dir) = common::data("video") else {
        return;
    };
    let clip = dir.join("test.mp4");
    if !video::ffmpeg_available() {
        let e = video::decode_frames(&clip, Some((64, 48)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ffmpeg"), "{e}");
        eprintln!("SKIPPED: ffmpeg not installed; checked the error instead: {e}");
        return;
    }
    let frames = video::sample_frames(&clip, Some((64, 48)), Sampling::Uniform(8)).unwrap();
    assert_eq!(frames.len(), 8);
    assert!(frames.iter().all(|(_, f)| f.width == 64 && f.height == 48));
    // Every k-th frame agrees with a full decode, frame for frame.
    let all = video::decode_frames(&clip, Some((64, 48))).unwrap();
    let every = video::sample_frames(&clip, Some((64, 48)), Sampling::EveryKth(5)).unwrap();
    assert_eq!(every.len(), all.len().div_ceil(5));
    for (i, f) in &every {
        assert_eq!(f.data, all[*i].data, "frame {i}");
    }
    // Scene cuts start with frame 0 and are increasing.
    let cuts = video::sample_frames(
        &clip,
        Some((64, 48)),
        Sampling::SceneCuts { threshold: 30.0 },
    )
    .unwrap();
    assert_eq!(cuts.first().map(|(i, _)| *i), Some(0));
    assert!(cuts.windows(2).all(|w| w[0].0 < w[1].0));
    eprintln!(
        "{}: {} frames decoded, {} scene starts",
        clip.display(),
        all.len(),
        cuts.len()
    );
}
