//! The public graph walk: op sequence, attributes, input sources, shapes and dtypes of a
//! recorded network, and that the typed record survives a backward pass.

use ferrovision_tensor::autograd::graph::{self, Value};
use ferrovision_tensor::autograd::Op;
use ferrovision_tensor::{
    custom_op, ConvOpts, ConvTransposeOpts, DType, Padding, PoolOpts, Tensor,
};

fn ramp(shape: &[usize], scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| ((i % 7) as f32 - 3.0) * scale).collect();
    Tensor::from_vec(v, shape).unwrap()
}

#[test]
fn conv_relu_pool_dense_graph() {
    let x = ramp(&[2, 1, 8, 8], 0.1);
    let w = ramp(&[4, 1, 3, 3], 0.05).requires_grad_(true);
    let b = Tensor::zeros(&[4]).requires_grad_(true);
    let dw = ramp(&[64, 3], 0.01).requires_grad_(true);
    let db = Tensor::zeros(&[3]).requires_grad_(true);

    let opts = ConvOpts::new().stride(&[1]).padding(Padding::Same);
    let h = x.conv2d(&w, Some(&b), &opts).unwrap();
    let h = h.relu().unwrap();
    let h = h.max_pool2d(&PoolOpts::new(&[2])).unwrap();
    let h = h.reshape(&[2, 64]).unwrap();
    let y = h.linear(&dw, Some(&db)).unwrap();
    let loss = y.sum_all().unwrap();

    let nodes = graph::walk(&[&loss]);
    let names: Vec<&str> = nodes.iter().map(|n| n.name()).collect();
    assert_eq!(
        names,
        ["conv2d", "relu", "max_pool2d", "reshape", "linear", "sum"]
    );

    // Attributes are resolved per spatial dim.
    assert_eq!(
        nodes[0].op(),
        &Op::Conv {
            stride: vec![1, 1],
            padding: vec![(1, 1), (1, 1)],
            dilation: vec![1, 1],
            groups: 1,
            relu: false,
        }
    );
    assert_eq!(
        nodes[2].op(),
        &Op::MaxPool {
            kernel: vec![2, 2],
            stride: vec![2, 2],
            padding: vec![0, 0],
            dilation: vec![1, 1],
            ceil_mode: false,
        }
    );
    assert_eq!(nodes[4].op(), &Op::Linear { relu: false });
    assert_eq!(
        nodes[5].op(),
        &Op::Sum {
            dims: vec![0, 1],
            keepdim: false
        }
    );

    // Inputs: the image is a constant, weights are leaves, the rest are earlier nodes.
    let conv_in = nodes[0].inputs();
    assert_eq!(conv_in.len(), 3);
    assert_eq!(conv_in[0].value, Value::Constant(x.id()));
    assert_eq!(conv_in[0].shape, &[2, 1, 8, 8]);
    assert_eq!(conv_in[0].dtype, DType::F32);
    assert_eq!(conv_in[1].value, w.graph_value());
    assert!(matches!(conv_in[1].value, Value::Leaf(_)));
    assert_eq!(conv_in[2].value, b.graph_value());
    for i in 1..nodes.len() {
        assert_eq!(nodes[i].inputs()[0].value, Value::Node(nodes[i - 1].id()));
        assert_eq!(nodes[i].inputs()[0].shape, nodes[i - 1].output_shape());
    }
    assert_eq!(nodes[0].output_shape(), &[2, 4, 8, 8]);
    assert_eq!(nodes[2].output_shape(), &[2, 4, 4, 4]);
    assert_eq!(nodes[4].output_shape(), &[2, 3]);
    assert_eq!(nodes[5].output_shape(), &[] as &[usize]);
    assert_eq!(nodes[5].output_dtype(), DType::F32);
    assert_eq!(loss.graph_value(), Value::Node(nodes[5].id()));

    // The record outlives the saved tensors: a backward frees those, the walk still works.
    loss.backward().unwrap();
    let again: Vec<&str> = graph::walk(&[&loss]).iter().map(|n| n.name()).collect();
    assert_eq!(again, names);
}

#[test]
fn shared_subgraph_is_visited_once_in_topological_order() {
    let a = Tensor::ones(&[3]).requires_grad_(true);
    let s = a.exp().unwrap();
    let p = s.mul_scalar(2.0).unwrap();
    let q = s.add(&p).unwrap();
    let r = q.mul(&s).unwrap();
    let nodes = graph::walk(&[&r, &p]);
    let names: Vec<&str> = nodes.iter().map(|n| n.name()).collect();
    assert_eq!(names, ["exp", "mul_scalar", "add", "mul"]);
    assert_eq!(nodes[1].op(), &Op::MulScalar { c: 2.0 });
    let pos = |v: Value| nodes.iter().position(|n| Value::Node(n.id()) == v);
    for (i, n) in nodes.iter().enumerate() {
        for input in n.inputs() {
            if let Some(j) = pos(input.value) {
                assert!(
                    j < i,
                    "{} comes before its input {}",
                    n.name(),
                    nodes[j].name()
                );
            }
        }
    }
}

#[test]
fn untracked_outputs_and_custom_ops() {
    let c = Tensor::ones(&[2]).exp().unwrap();
    assert!(graph::walk(&[&c]).is_empty());
    assert!(matches!(c.graph_value(), Value::Constant(_)));

    let x = Tensor::ones(&[2]).requires_grad_(true);
    let y = custom_op(
        "grad_reverse",
        &[&x],
        |xs| Ok(xs[0].clone()),
        |g| Ok(vec![Some(g.neg()?)]),
    )
    .unwrap();
    let nodes = graph::walk(&[&y]);
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        nodes[0].op(),
        &Op::Custom {
            name: "grad_reverse"
        }
    );
    assert_eq!(y.grad_fn_name(), Some("grad_reverse"));
}

#[test]
fn convolution_records_resolve_padding_and_output_padding() {
    // Asymmetric "same" padding: 4 wide, kernel 2, stride 1 pads (0, 1).
    let x = Tensor::ones(&[1, 1, 4, 4]).requires_grad_(true);
    let w = Tensor::ones(&[2, 1, 2, 2]);
    let y = x
        .conv2d(&w, None, &ConvOpts::new().padding(Padding::Same))
        .unwrap();
    assert_eq!(y.shape(), &[1, 2, 4, 4]);
    let nodes = graph::walk(&[&y]);
    assert_eq!(
        nodes[0].op(),
        &Op::Conv {
            stride: vec![1, 1],
            padding: vec![(0, 1), (0, 1)],
            dilation: vec![1, 1],
            groups: 1,
            relu: false,
        }
    );
    // Transposed: the recorded attributes are the user's options, resolved per dim.
    let wt = Tensor::ones(&[1, 3, 3, 3]);
    let opts = ConvTransposeOpts::new()
        .stride(&[2])
        .padding(&[1])
        .output_padding(&[1]);
    let yt = x.conv_transpose2d(&wt, None, &opts).unwrap();
    assert_eq!(yt.shape(), &[1, 3, 8, 8]);
    let nodes = graph::walk(&[&yt]);
    assert_eq!(nodes[0].name(), "conv_transpose2d");
    assert_eq!(
        nodes[0].op(),
        &Op::ConvTranspose {
            stride: vec![2, 2],
            padding: vec![1, 1],
            output_padding: vec![1, 1],
            dilation: vec![1, 1],
            groups: 1,
        }
    );
}
