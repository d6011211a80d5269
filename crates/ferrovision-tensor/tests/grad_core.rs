//! Finite-difference gradient checks of the core ops: broadcasting arithmetic, reductions and
//! views (including non-contiguous inputs).

mod common;
use common::uniform;
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::Tensor;

fn check(f: impl Fn(&[Tensor]) -> ferrovision_tensor::Result<Tensor>, inputs: &[Tensor]) {
    GradCheck::default().run(f, inputs).unwrap();
}

#[test]
fn broadcasting_arithmetic() {
    let a = uniform(&[2, 3, 4], -1.0, 1.0, 1);
    let b = uniform(&[3, 1], -1.0, 1.0, 2);
    check(|x| x[0].add(&x[1]), &[a.clone(), b.clone()]);
    check(|x| x[0].sub(&x[1]), &[a.clone(), b.clone()]);
    check(|x| x[0].mul(&x[1]), &[a.clone(), b.clone()]);
    let bpos = uniform(&[1, 4], 0.5, 2.0, 3);
    check(|x| x[0].div(&x[1]), &[a.clone(), bpos.clone()]);
    check(
        |x| x[1].div(&x[0]),
        &[a.add_scalar(3.0).unwrap(), bpos.clone()],
    );
    let base = uniform(&[2, 3, 4], 0.5, 2.0, 4);
    check(|x| x[0].pow(&x[1]), &[base, b.clone()]);
    check(|x| x[0].maximum(&x[1]), &[a.clone(), b.clone()]);
    check(|x| x[0].minimum(&x[1]), &[a.clone(), b]);
}

#[test]
fn transposed_operands() {
    let a = uniform(&[4, 3], -1.0, 1.0, 5);
    let b = uniform(&[3, 4], -1.0, 1.0, 6);
    check(|x| x[0].t()?.mul(&x[1]), &[a, b]);
}

#[test]
fn reductions_and_views() {
    let a = uniform(&[2, 3, 5], -1.0, 1.0, 7);
    check(|x| x[0].sum(&[1], false), std::slice::from_ref(&a));
    check(|x| x[0].sum(&[0, 2], true), std::slice::from_ref(&a));
    check(|x| x[0].mean(&[-1], false), std::slice::from_ref(&a));
    check(|x| x[0].sum_all(), std::slice::from_ref(&a));
    check(
        |x| x[0].permute(&[2, 0, 1])?.exp(),
        std::slice::from_ref(&a),
    );
    check(
        |x| x[0].slice(2, 1, 5, 2)?.mul_scalar(3.0),
        std::slice::from_ref(&a),
    );
    check(
        |x| x[0].reshape(&[6, 5])?.narrow(0, 2, 3),
        std::slice::from_ref(&a),
    );
    check(
        |x| x[0].unsqueeze(0)?.expand(&[4, 2, 3, 5]),
        std::slice::from_ref(&a),
    );
    check(|x| x[0].slice(1, 0, 3, 2)?.reshape(&[4, 5]), &[a]);
}

#[test]
fn gradient_accumulates_and_graph_frees() {
    let w = Tensor::from_vec(vec![1.0f32, 2.0], &[2])
        .unwrap()
        .requires_grad_(true);
    let y = w.mul_scalar(3.0).unwrap().sum_all().unwrap();
    y.backward().unwrap();
    let err = y.backward().unwrap_err().to_string();
    assert!(err.contains("already freed"), "{err}");
    w.mul_scalar(3.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(w.grad().unwrap().to_vec::<f32>().unwrap(), vec![6.0, 6.0]);
    w.zero_grad();
    assert!(w.grad().is_none());
}

#[test]
fn no_gradient_op_is_named() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2])
        .unwrap()
        .requires_grad_(true);
    let y = ferrovision_tensor::autograd::record_non_differentiable(x.detach(), "round", &[&x]);
    let err = y.sum_all().unwrap().backward().unwrap_err().to_string();
    assert!(err.contains("'round'"), "{err}");
}

#[test]
fn shape_errors_name_the_op() {
    let a = Tensor::zeros(&[2, 3]);
    let b = Tensor::zeros(&[3, 2]);
    let e = a.add(&b).unwrap_err().to_string();
    assert!(
        e.starts_with("add:") && e.contains("[2, 3]") && e.contains("[3, 2]"),
        "{e}"
    );
}
