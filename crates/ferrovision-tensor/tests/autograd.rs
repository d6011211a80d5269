//! Autodiff engine behaviour: seeds, functional gradients, scopes, custom ops, and freeing of
//! saved buffers during backward.

use ferrovision_tensor::{custom_op, grad, no_grad, Tensor};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn v(x: &[f32]) -> Tensor {
    Tensor::from_vec(x.to_vec(), &[x.len()]).unwrap()
}

#[test]
fn seed_gradient_and_non_scalar_error() {
    let x = v(&[1.0, 2.0, 3.0]).requires_grad_(true);
    let y = x.mul_scalar(2.0).unwrap();
    let err = y.backward().unwrap_err().to_string();
    assert!(err.contains("one-element"), "{err}");
    let y = x.mul_scalar(2.0).unwrap();
    y.backward_with(&v(&[1.0, 0.5, -1.0])).unwrap();
    assert_eq!(
        x.grad().unwrap().to_vec::<f32>().unwrap(),
        vec![2.0, 1.0, -2.0]
    );
    let bad = y.backward_with(&v(&[1.0])).unwrap_err().to_string();
    assert!(bad.contains("backward seed"), "{bad}");
}

#[test]
fn functional_grad_does_not_accumulate() {
    let x = v(&[1.0, -2.0]).requires_grad_(true);
    let w = v(&[3.0, 4.0]).requires_grad_(true);
    let loss = x.mul(&w).unwrap().sum_all().unwrap();
    let g = grad(&loss, &[&x, &w]).unwrap();
    assert_eq!(
        g[0].as_ref().unwrap().to_vec::<f32>().unwrap(),
        vec![3.0, 4.0]
    );
    assert_eq!(
        g[1].as_ref().unwrap().to_vec::<f32>().unwrap(),
        vec![1.0, -2.0]
    );
    assert!(x.grad().is_none() && w.grad().is_none());
    // An unrelated variable gets None; a non-leaf input is an error.
    let z = v(&[1.0]).requires_grad_(true);
    let loss = x.sum_all().unwrap();
    assert!(grad(&loss, &[&z]).unwrap()[0].is_none());
    let nonleaf = x.mul_scalar(1.0).unwrap();
    let loss = nonleaf.sum_all().unwrap();
    assert!(grad(&loss, &[&nonleaf]).is_err());
}

#[test]
fn no_grad_and_detach_cut_the_graph() {
    let x = v(&[1.0, 2.0]).requires_grad_(true);
    let y = no_grad(|| x.exp().unwrap());
    assert!(!y.requires_grad());
    let d = x.detach();
    assert!(!d.requires_grad() && d.same_storage(&x));
    assert!(d.sum_all().unwrap().backward().is_err());
    // A constant plus a variable requires grad; gradients reach only the variable.
    let c = v(&[5.0, 5.0]);
    let s = c.add(&x).unwrap();
    assert!(s.requires_grad() && !s.is_leaf());
    assert_eq!(s.grad_fn_name(), Some("add"));
}

#[test]
fn diamond_graph_sums_paths() {
    // y = x*x + exp(x): both paths meet at x.
    let x = v(&[0.5, -1.0]).requires_grad_(true);
    let y = x
        .mul(&x)
        .unwrap()
        .add(&x.exp().unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    y.backward().unwrap();
    let g = x.grad().unwrap().to_vec::<f32>().unwrap();
    for (gi, xi) in g.iter().zip([0.5f32, -1.0]) {
        assert!((gi - (2.0 * xi + xi.exp())).abs() < 1e-5);
    }
}

#[test]
fn straight_through_estimator() {
    // round() forward, identity backward.
    let x = v(&[0.2, 0.7, 1.6]).requires_grad_(true);
    let y = custom_op(
        "ste_round",
        &[&x],
        |xs| {
            let r: Vec<f32> = xs[0].to_vec::<f32>()?.iter().map(|a| a.round()).collect();
            Tensor::from_vec(r, xs[0].shape())
        },
        |g| Ok(vec![Some(g.clone())]),
    )
    .unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![0.0, 1.0, 2.0]);
    y.mul_scalar(3.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), vec![3.0; 3]);
}

/// Dropped when the backward closure that owns it is dropped.
struct Sentinel {
    drops: Arc<AtomicUsize>,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn saved_state_is_freed_as_backward_passes() {
    // Chain x -> a (op A) -> b (op B). B's backward runs first; by the time A's backward runs,
    // B's closure (and what it saved) must already be gone.
    let drops_b = Arc::new(AtomicUsize::new(0));
    let seen_in_a = Arc::new(AtomicUsize::new(usize::MAX));
    let x = v(&[1.0, 2.0]).requires_grad_(true);
    let (db, seen) = (drops_b.clone(), seen_in_a.clone());
    let a = custom_op(
        "A",
        &[&x],
        |xs| Ok(xs[0].clone()),
        move |g| {
            seen.store(db.load(Ordering::SeqCst), Ordering::SeqCst);
            Ok(vec![Some(g.clone())])
        },
    )
    .unwrap();
    let sentinel = Sentinel {
        drops: drops_b.clone(),
    };
    let b = custom_op(
        "B",
        &[&a],
        |xs| Ok(xs[0].clone()),
        move |g| {
            let _keep = &sentinel;
            Ok(vec![Some(g.clone())])
        },
    )
    .unwrap();
    b.sum_all().unwrap().backward().unwrap();
    assert_eq!(
        seen_in_a.load(Ordering::SeqCst),
        1,
        "B's saved state outlived its backward"
    );
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), vec![1.0, 1.0]);
}

#[test]
fn wrong_gradient_shape_from_custom_op_is_an_error() {
    let x = v(&[1.0, 2.0]).requires_grad_(true);
    let y = custom_op(
        "bad",
        &[&x],
        |xs| Ok(xs[0].clone()),
        |_| Ok(vec![Some(v(&[1.0]))]),
    )
    .unwrap();
    let err = y.sum_all().unwrap().backward().unwrap_err().to_string();
    assert!(
        err.contains("'bad'") && err.contains("[1]") && err.contains("[2]"),
        "{err}"
    );
}
