//! Real data from ../shared/data (skipped with a message when absent): raccoon VOC boxes, CamVid
//! masks, CIFAR-10 tars. Augmented samples are drawn into PNGs under the test output folder.

mod common;
use common::{data, out_dir};
use ferrovision_data::augment::{Augment, Op};
use ferrovision_data::sample::ImageSample;
use ferrovision_data::{image, sources, viz, Sample};
use ferrovision_tensor::rng::Rng;

#[test]
fn raccoon_voc_loads_and_augmented_boxes_are_drawn() {
    let Some(root) = data("raccoon") else { return };
    let ds = sources::voc(
        root.join("annotations"),
        root.join("images"),
        vec!["raccoon".into()],
        2,
    )
    .unwrap();
    let all = ds.collect_vec().unwrap();
    assert_eq!(all.len(), 200);
    assert_eq!(all.iter().map(|s| s.boxes.len()).sum::<usize>(), 217);
    // raccoon-1.xml: 650x417, one box 81 88 522 408.
    let first = all
        .iter()
        .find(|s| s.file_name.ends_with("/raccoon-1.jpg"))
        .unwrap();
    assert_eq!((first.image.width, first.image.height), (650, 417));
    assert_eq!(first.boxes, vec![[81.0, 88.0, 522.0, 408.0]]);
    let aug = Augment::new(vec![
        Op::RandomResizedCrop {
            size: [320, 320],
            scale: [0.3, 1.0],
            ratio: [0.75, 1.33],
        },
        Op::Hflip { p: 0.5 },
        Op::Affine {
            degrees: 10.0,
            translate: [0.05, 0.05],
            scale: [0.9, 1.1],
            shear: 5.0,
        },
    ]);
    let out = out_dir("raccoon_augmented");
    for (i, s) in all.iter().take(6).enumerate() {
        let mut rng = Rng::new(i as u64);
        let a = aug.apply(s.clone(), &mut rng).unwrap();
        let mut canvas = a.image.clone();
        for b in &a.boxes {
            viz::draw_box(&mut canvas, *b, [255, 0, 0], 2);
        }
        image::save(&canvas, out.join(format!("raccoon_{i}.png"))).unwrap();
        let mut orig = s.image.clone();
        for b in &s.boxes {
            viz::draw_box(&mut orig, *b, [0, 255, 0], 2);
        }
        image::save(&orig, out.join(format!("raccoon_{i}_orig.png"))).unwrap();
    }
    eprintln!("drawn raccoon samples in {}", out.display());
    // Tensors and a padded batch of boxes.
    let samples: Vec<Sample> = all
        .iter()
        .take(4)
        .map(|s| s.to_sample(None).unwrap())
        .collect();
    assert_eq!(samples[0].image.as_ref().unwrap().shape(), &[3, 417, 650]);
}

#[test]
fn camvid_masks_load_and_stay_aligned() {
    let Some(root) = data("camvid") else { return };
    let pairs = sources::seg_pair_list(root.join("train.txt"), &root, "/SegNet/CamVid/").unwrap();
    assert_eq!(pairs.len(), 367);
    let val = sources::seg_pair_list(root.join("val.txt"), &root, "/SegNet/CamVid/").unwrap();
    assert_eq!(val.len(), 101);
    let ds = sources::seg_pairs(pairs[..8].to_vec(), 2);
    let items = ds.collect_vec().unwrap();
    for s in &items {
        let m = s.label_map.as_ref().unwrap();
        assert_eq!(
            (s.image.width, s.image.height, m.width, m.height),
            (480, 360, 480, 360)
        );
        assert!(m.data.iter().all(|&v| v <= 11), "class indices 0..=11");
    }
    let aug = Augment::new(vec![
        Op::RandomResizedCrop {
            size: [256, 320],
            scale: [0.4, 1.0],
            ratio: [1.0, 1.5],
        },
        Op::Hflip { p: 0.5 },
        Op::Rotate { degrees: 12.0 },
    ]);
    let out = out_dir("camvid_augmented");
    for (i, s) in items.iter().take(4).enumerate() {
        let mut rng = Rng::new(10 + i as u64);
        let a = aug.apply(s.clone(), &mut rng).unwrap();
        let m = a.label_map.as_ref().unwrap();
        assert_eq!((m.width, m.height), (320, 256));
        // Nearest-neighbour: only original classes or the ignore fill appear.
        assert!(m.data.iter().all(|&v| v <= 11 || v == 255));
        let mut canvas = a.image.clone();
        viz::draw_mask_outline(&mut canvas, m);
        image::save(&canvas, out.join(format!("camvid_{i}.png"))).unwrap();
        let mut blend = a.image.clone();
        viz::blend_mask(&mut blend, m, 0.45);
        image::save(&blend, out.join(format!("camvid_{i}_blend.png"))).unwrap();
    }
    eprintln!("drawn CamVid samples in {}", out.display());
}

#[test]
fn cifar10_tars_load_as_image_folders() {
    let Some(root) = data("cifar10") else { return };
    let train = sources::tar_index(root.join("cifar10-train.tar")).unwrap();
    let test = sources::tar_index(root.join("cifar10-test.tar")).unwrap();
    let count = |v: &[sources::TarEntry]| v.iter().filter(|e| e.name.ends_with(".jpg")).count();
    assert_eq!(count(&train), 50_000);
    assert_eq!(count(&test), 10_000);
    let (ds, classes) = sources::tar_image_folder(root.join("cifar10-test.tar"), 2).unwrap();
    assert_eq!(
        classes,
        [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck"
        ]
    );
    // Decode every 50th test image (all 10 000 take too long in a debug test).
    let got: Vec<ImageSample> = ds.shard(50, 0).collect_vec().unwrap();
    assert_eq!(got.len(), 200);
    let mut per_class = [0usize; 10];
    for s in &got {
        assert_eq!(
            (s.image.width, s.image.height, s.image.channels),
            (32, 32, 3)
        );
        let l = s.label.unwrap() as usize;
        per_class[l] += 1;
        assert!(
            s.file_name.contains(&format!("/{}/", classes[l])),
            "{}",
            s.file_name
        );
    }
    assert_eq!(per_class, [20; 10]);
    let (train_ds, train_classes) =
        sources::tar_image_folder(root.join("cifar10-train.tar"), 2).unwrap();
    assert_eq!(train_classes, classes);
    assert_eq!(train_ds.take(3).count().unwrap(), 3);
}
