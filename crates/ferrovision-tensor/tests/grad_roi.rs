//! RoI Align / RoI Pool as engine ops: values on hand-checkable maps, finite-difference gradient
//! checks with respect to the feature map, the typed op record, and argument errors. (Values
//! against torchvision are checked by ferrovision-vision's fixture tests.)

mod common;
use common::uniform;
use ferrovision_tensor::autograd::{graph, Op};
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::{RoiAlignOpts, Tensor};

fn rois(rows: &[[f32; 5]]) -> Tensor {
    let v: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(v, &[rows.len(), 5]).unwrap()
}

/// Distinct values 0.05 apart in a scrambled order (no ties for the max under eps = 0.01).
fn distinct(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| ((i * 37) % n) as f32 * 0.05).collect();
    Tensor::from_vec(v, shape).unwrap()
}

#[test]
fn roi_align_of_a_constant_map_is_the_constant() {
    let x = Tensor::full(&[1, 2, 6, 6], 3.0f32);
    let r = rois(&[[0.0, 1.0, 1.0, 4.0, 5.0], [0.0, 0.5, 0.0, 3.0, 2.5]]);
    let opts = RoiAlignOpts {
        output_size: (2, 3),
        ..RoiAlignOpts::default()
    };
    let y = x.roi_align(&r, opts).unwrap();
    assert_eq!(y.shape(), &[2, 2, 2, 3]);
    for v in y.to_vec::<f32>().unwrap() {
        assert!((v - 3.0).abs() < 1e-6, "{v}");
    }
}

#[test]
fn roi_pool_takes_the_maximum_of_each_bin() {
    // x[h, w] = h * 4 + w on a 4x4 map; the whole map in 2x2 bins has maxima 5, 7, 13, 15.
    let x = Tensor::from_vec((0..16).map(|v| v as f32).collect(), &[1, 1, 4, 4]).unwrap();
    let r = rois(&[[0.0, 0.0, 0.0, 3.0, 3.0]]);
    let y = x.roi_pool(&r, (2, 2), 1.0).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![5.0, 7.0, 13.0, 15.0]);
}

#[test]
fn roi_align_gradient_matches_finite_differences() {
    let x = uniform(&[2, 3, 7, 8], -1.0, 1.0, 11);
    let r = rois(&[
        [0.0, 1.0, 1.5, 5.0, 6.0],
        [1.0, 0.0, 0.0, 7.5, 6.5],
        [1.0, 2.2, 3.1, 3.4, 3.9],
    ]);
    for (sampling_ratio, aligned, scale) in [(2, false, 1.0), (-1, true, 0.5), (1, true, 1.0)] {
        let opts = RoiAlignOpts {
            output_size: (3, 2),
            spatial_scale: scale,
            sampling_ratio,
            aligned,
        };
        GradCheck::default()
            .run(|xs| xs[0].roi_align(&r, opts), std::slice::from_ref(&x))
            .unwrap();
    }
}

#[test]
fn roi_pool_gradient_matches_finite_differences() {
    let x = distinct(&[2, 2, 6, 7]);
    let r = rois(&[[0.0, 0.0, 0.0, 6.0, 5.0], [1.0, 1.2, 2.0, 4.6, 4.4]]);
    GradCheck::default()
        .run(
            |xs| xs[0].roi_pool(&r, (2, 3), 1.0),
            std::slice::from_ref(&x),
        )
        .unwrap();
}

#[test]
fn roi_ops_record_typed_ops() {
    let x = uniform(&[1, 2, 5, 5], -1.0, 1.0, 3).requires_grad_(true);
    let r = rois(&[[0.0, 0.0, 0.0, 4.0, 4.0]]);
    let opts = RoiAlignOpts {
        output_size: (2, 2),
        spatial_scale: 0.5,
        sampling_ratio: 2,
        aligned: true,
    };
    let a = x.roi_align(&r, opts).unwrap();
    let p = x.roi_pool(&r, (3, 3), 0.25).unwrap();
    let nodes = graph::walk(&[&a, &p]);
    assert_eq!(
        nodes[0].op(),
        &Op::RoiAlign {
            output_size: (2, 2),
            spatial_scale: 0.5,
            sampling_ratio: 2,
            aligned: true
        }
    );
    assert_eq!(
        nodes[1].op(),
        &Op::RoiPool {
            output_size: (3, 3),
            spatial_scale: 0.25
        }
    );
    assert_eq!(nodes[0].inputs()[1].shape, &[1, 5]);
    assert_eq!(a.grad_fn_name(), Some("roi_align"));
}

#[test]
fn roi_ops_reject_bad_arguments() {
    let x = Tensor::zeros(&[1, 1, 4, 4]);
    let bad_batch = rois(&[[1.0, 0.0, 0.0, 2.0, 2.0]]);
    let e = x
        .roi_align(&bad_batch, RoiAlignOpts::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("batch index"), "{e}");
    let e = x.roi_pool(&bad_batch, (2, 2), 0.0).unwrap_err().to_string();
    assert!(e.contains("spatial_scale"), "{e}");
    assert!(x
        .roi_align(&Tensor::zeros(&[2, 4]), RoiAlignOpts::default())
        .is_err());
    assert!(Tensor::zeros(&[4, 4])
        .roi_pool(&bad_batch, (2, 2), 1.0)
        .is_err());
}
