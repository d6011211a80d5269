//! The model API without training: multi-output layers and nested multi-output models in the
//! functional graph, child layers found automatically (scoped names, freezing by prefix,
//! PyTorch names), the open registries (serde configs, unknown-class errors) and the
//! weight-layout adapters.

mod model_api_support;

use ferrovision_nn::layer::{build_chain, single_input, single_shape, Shape};
use ferrovision_nn::layers::{
    layer_from_config, layer_registry, BatchNormalization, Conv2D, Dense, PaddingMode,
};
use ferrovision_nn::layout::{from_keras, from_torch, to_torch_name};
use ferrovision_nn::losses::loss_from_config;
use ferrovision_nn::metrics::metric_from_config;
use ferrovision_nn::optim::optimizer_from_config;
use ferrovision_nn::tensor::rng::Rng;
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{
    layer_children, CallCtx, Functional, Graph, Layer, Network, NetworkExt, Result, Sequential,
};
use model_api_support::{register_split, two_output_inner, Split};
use serde_json::json;

#[test]
fn multi_output_layers_and_nested_multi_output_models() {
    register_split();
    let mut g = Graph::new();
    let x = g.input("x", &[Some(4)]);
    let y = g.input("y", &[Some(2)]);
    let inner = g.add_layer(two_output_inner());
    // A single-output call of a two-output model is refused, naming the layer.
    let err = g.call(inner, &[x, y]).unwrap_err().to_string();
    assert!(err.contains("inner") && err.contains("2 outputs"), "{err}");
    let outs = g.call_multi(inner, &[x, y]).unwrap();
    assert_eq!(outs.len(), 2);
    assert_eq!(g.shape(outs[0]).unwrap(), &vec![None, Some(2)]);
    assert_eq!(g.shape(outs[1]).unwrap(), &vec![None, Some(4)]);
    let head = g.apply(Dense::new(1).named("head"), &[outs[1]]).unwrap();
    let net = g.build("outer", &[x, y], &[outs[0], head]).unwrap();
    assert_eq!(net.output_names(), ["inner_0", "head"]);
    assert_eq!(
        net.output_shapes(),
        vec![vec![None, Some(2)], vec![None, Some(1)]]
    );
    let names: Vec<String> = net.named_weights().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "inner/mix/kernel",
            "inner/mix/bias",
            "head/kernel",
            "head/bias"
        ]
    );

    let mut rng = Rng::new(5);
    let xs = Tensor::randn(&[3, 4], 0.0, 1.0, &mut rng).unwrap();
    let ys = Tensor::randn(&[3, 2], 0.0, 1.0, &mut rng).unwrap();
    let run = |n: &Functional| {
        n.forward(&[xs.clone(), ys.clone()], &mut CallCtx::new(false))
            .unwrap()
    };
    let got = run(&net);
    // By hand: h = x @ W + b; out0 = h[:, :2] + y; head = h[:, 2:] @ V + c.
    let w = net.get_weights().unwrap();
    let h = xs.matmul(&w[0]).unwrap().add(&w[1]).unwrap();
    let want0 = h.narrow(1, 0, 2).unwrap().add(&ys).unwrap();
    let want1 = h
        .narrow(1, 2, 4)
        .unwrap()
        .matmul(&w[2])
        .unwrap()
        .add(&w[3])
        .unwrap();
    for (g, w) in got.iter().zip([want0, want1]) {
        let (g, w) = (g.to_vec::<f32>().unwrap(), w.to_vec::<f32>().unwrap());
        assert_eq!(g.len(), w.len());
        for (a, b) in g.iter().zip(&w) {
            assert!((a - b).abs() < 1e-5, "{g:?} vs {w:?}");
        }
    }
    // The architecture round-trips: outputs > 0 are saved as [node, index].
    let cfg = Network::config(&net).unwrap();
    assert_eq!(cfg["nodes"][3]["inputs"], json!([[2, 1]]));
    assert_eq!(cfg["outputs"], json!([2, 3]));
    let back = Functional::from_config(&cfg).unwrap();
    back.set_weights(&net.get_weights().unwrap()).unwrap();
    let again = run(&back);
    for (a, b) in got.iter().zip(&again) {
        assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    }
    // A Sequential refuses a multi-output layer with a clear error.
    let err = Sequential::new(&[4])
        .add(Split {
            name: "s".into(),
            left: 1,
        })
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("'s'") && err.contains("2 outputs"), "{err}");
}

#[test]
fn summary_rows_of_multi_output_calls_show_every_output_shape() {
    register_split();
    // Inside the model: the Split layer's call has two outputs.
    let inner = two_output_inner();
    let text = inner.summary();
    let row = text
        .lines()
        .find(|l| l.contains("split (Split)"))
        .unwrap_or_else(|| panic!("no split row:\n{text}"));
    assert!(row.contains("[(None, 2), (None, 4)]"), "{row}");
    // A nested two-output model called in an outer graph: its row lists both outputs too.
    let mut g = Graph::new();
    let x = g.input("x", &[Some(4)]);
    let y = g.input("y", &[Some(2)]);
    let inner = g.add_layer(inner);
    let outs = g.call_multi(inner, &[x, y]).unwrap();
    let net = g.build("outer", &[x, y], &outs).unwrap();
    let text = net.summary();
    let row = text
        .lines()
        .find(|l| l.contains("inner (Functional)"))
        .unwrap_or_else(|| panic!("no inner row:\n{text}"));
    assert!(row.contains("[(None, 2), (None, 4)]"), "{row}");
    // Single-output rows keep the plain shape.
    let dense = text.lines().find(|l| l.contains("x (InputLayer)")).unwrap();
    assert!(
        dense.contains("(None, 4)") && !dense.contains('['),
        "{dense}"
    );
}

/// ResNet's BasicBlock: two 3x3 conv + batch-norm pairs and an optional 1x1 projection.
struct BasicBlock {
    name: String,
    conv1: Conv2D,
    bn1: BatchNormalization,
    conv2: Conv2D,
    bn2: BatchNormalization,
    downsample: Option<Conv2D>,
}

impl BasicBlock {
    fn new(filters: usize, stride: usize, project: bool) -> Self {
        let conv = |s: usize| {
            Conv2D::new(filters, 3)
                .strides(s)
                .padding(PaddingMode::Same)
                .use_bias(false)
        };
        BasicBlock {
            name: String::new(),
            conv1: conv(stride),
            bn1: BatchNormalization::new(),
            conv2: conv(1),
            bn2: BatchNormalization::new(),
            downsample: project.then(|| Conv2D::new(filters, 1).strides(stride).use_bias(false)),
        }
    }
}

impl Layer for BasicBlock {
    fn class_name(&self) -> &'static str {
        "BasicBlock"
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
    layer_children!(conv1, bn1, conv2, bn2, downsample);
    fn build(&mut self, s: &[Shape]) -> Result<()> {
        let s = single_shape(self, s)?.clone();
        build_chain(
            &mut [
                &mut self.conv1,
                &mut self.bn1,
                &mut self.conv2,
                &mut self.bn2,
            ],
            s.clone(),
        )?;
        if let Some(d) = &mut self.downsample {
            d.build(&[s])?;
        }
        Ok(())
    }
    fn output_shape(&self, s: &[Shape]) -> Result<Shape> {
        let s = self.conv1.output_shape(s)?;
        self.conv2.output_shape(&[s])
    }
    fn call(&self, x: &[Tensor], ctx: &mut CallCtx) -> Result<Tensor> {
        let h = self
            .bn1
            .call(&self.conv1.call(x, ctx).map(|t| vec![t])?, ctx)?;
        let h = self.conv2.call(&[h.relu()?], ctx)?;
        let h = self.bn2.call(&[h], ctx)?;
        let skip = match &self.downsample {
            Some(d) => d.call(x, ctx)?,
            None => single_input(self, x)?.clone(),
        };
        Ok(h.add(&skip)?.relu()?)
    }
}

/// A stage of blocks: the block nested once more (children in a `Vec`).
struct Stage {
    name: String,
    blocks: Vec<BasicBlock>,
}

impl Layer for Stage {
    fn class_name(&self) -> &'static str {
        "Stage"
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
    layer_children!(blocks);
    fn build(&mut self, s: &[Shape]) -> Result<()> {
        let input = single_shape(self, s)?.clone();
        let mut layers: Vec<&mut dyn Layer> = self
            .blocks
            .iter_mut()
            .map(|b| b as &mut dyn Layer)
            .collect();
        build_chain(&mut layers, input)?;
        Ok(())
    }
    fn output_shape(&self, s: &[Shape]) -> Result<Shape> {
        let mut s = single_shape(self, s)?.clone();
        for b in &self.blocks {
            s = b.output_shape(&[s])?;
        }
        Ok(s)
    }
    fn call(&self, x: &[Tensor], ctx: &mut CallCtx) -> Result<Tensor> {
        let mut x = single_input(self, x)?.clone();
        for b in &self.blocks {
            x = b.call(&[x], ctx)?;
        }
        Ok(x)
    }
}

#[test]
fn child_layers_are_found_named_frozen_and_mapped_to_torch_names() {
    let stage = Stage {
        name: "layer1".into(),
        blocks: vec![BasicBlock::new(8, 2, true), BasicBlock::new(8, 1, false)],
    };
    let mut net = Sequential::new(&[4, 8, 8])
        .add(stage)
        .add(ferrovision_nn::layers::GlobalAveragePooling2D::new())
        .add(Dense::new(3).named("fc"))
        .build()
        .unwrap();
    let names: Vec<String> = net.named_weights().into_iter().map(|(n, _)| n).collect();
    let bn =
        |p: &str| ["gamma", "beta", "moving_mean", "moving_variance"].map(|w| format!("{p}/{w}"));
    let mut want = vec!["layer1/blocks/0/conv1/kernel".to_string()];
    want.extend(bn("layer1/blocks/0/bn1"));
    want.push("layer1/blocks/0/conv2/kernel".into());
    want.extend(bn("layer1/blocks/0/bn2"));
    want.push("layer1/blocks/0/downsample/kernel".into());
    want.push("layer1/blocks/1/conv1/kernel".into());
    want.extend(bn("layer1/blocks/1/bn1"));
    want.push("layer1/blocks/1/conv2/kernel".into());
    want.extend(bn("layer1/blocks/1/bn2"));
    want.extend(["fc/kernel".to_string(), "fc/bias".to_string()]);
    assert_eq!(names, want);
    let shape_of = |n: &str| {
        net.named_weights()
            .into_iter()
            .find(|(m, _)| m == n)
            .unwrap()
            .1
            .shape()
    };
    assert_eq!(shape_of("layer1/blocks/0/conv1/kernel"), [8, 4, 3, 3]);
    assert_eq!(shape_of("layer1/blocks/0/downsample/kernel"), [8, 4, 1, 1]);
    assert_eq!(shape_of("layer1/blocks/1/conv1/kernel"), [8, 8, 3, 3]);
    assert_eq!(
        net.output_shapes(),
        vec![vec![None, Some(3)]],
        "stride 2 stage, pooled, dense"
    );
    // The summary counts the block's parameters through its children.
    let block_params =
        (8 * 4 * 9 + 4 * 8 + 8 * 8 * 9 + 4 * 8 + 8 * 4) + (8 * 8 * 9 + 4 * 8 + 8 * 8 * 9 + 4 * 8);
    assert_eq!(net.count_params(), block_params + 8 * 3 + 3);
    assert_eq!(block_params, 2176);
    let s = net.summary();
    assert!(s.contains("layer1 (Stage)") && s.contains("2,176"), "{s}");
    // Layers are found by path, as in the weight names.
    let bn = net.get_layer("layer1/blocks/1/bn2").unwrap();
    assert_eq!(bn.class_name(), "BatchNormalization");
    assert_eq!(net.get_layer("layer1").unwrap().class_name(), "Stage");
    assert!(net.get_layer("layer1/blocks/2/bn2").is_none());
    // PyTorch names by rule.
    assert_eq!(
        to_torch_name("layer1/blocks/0/bn1/moving_mean"),
        "layer1.blocks.0.bn1.running_mean"
    );
    assert_eq!(to_torch_name("fc/kernel"), "fc.weight");
    assert_eq!(
        to_torch_name("layer1/blocks/1/bn2/gamma"),
        "layer1.blocks.1.bn2.weight"
    );
    assert_eq!(
        to_torch_name("layer1/blocks/1/bn2/beta"),
        "layer1.blocks.1.bn2.bias"
    );

    // Freezing by prefix reaches the children (weights and batch-norm's inference mode).
    let n = net
        .set_trainable_by_prefix("layer1/blocks/0", false)
        .unwrap();
    assert_eq!(n, 1);
    for (name, p) in net.named_weights() {
        let frozen = name.starts_with("layer1/blocks/0/");
        let stat = name.ends_with("moving_mean") || name.ends_with("moving_variance");
        assert_eq!(p.trainable(), !frozen && !stat, "{name}");
    }
    // A trailing '/' is allowed; a prefix is whole path segments ("layer1/block" is none).
    net.set_trainable_by_prefix("layer1/blocks/1/", false)
        .unwrap();
    assert_eq!(names[11], "layer1/blocks/1/conv1/kernel");
    assert!(!net.named_weights()[11].1.trainable());
    assert!(net.set_trainable_by_prefix("layer1/block", false).is_err());
    // Unfreezing the stage leaves the batch-norm statistics non-trainable.
    net.set_trainable_by_prefix("layer1", true).unwrap();
    assert_eq!(net.trainable_weights().len(), names.len() - 4 * 2);
    let err = net
        .set_trainable_by_prefix("layer1/blocks/2", false)
        .unwrap_err();
    assert!(err.to_string().contains("layer1/blocks/2"), "{err}");

    // A frozen block's batch norm runs in inference mode: its statistics do not move.
    net.set_trainable_by_prefix("layer1/blocks/0/bn1", false)
        .unwrap();
    let stat = |net: &Sequential| {
        net.named_weights()
            .into_iter()
            .find(|(m, _)| m == "layer1/blocks/0/bn1/moving_mean")
            .unwrap()
            .1
            .to_vec()
            .unwrap()
    };
    let before = stat(&net);
    let x = Tensor::randn(&[2, 4, 8, 8], 1.0, 2.0, &mut Rng::new(1)).unwrap();
    net.forward(&[x], &mut CallCtx::new(true)).unwrap();
    assert_eq!(stat(&net), before);
    let moved = net
        .named_weights()
        .into_iter()
        .find(|(m, _)| m == "layer1/blocks/0/bn2/moving_mean")
        .unwrap()
        .1
        .to_vec()
        .unwrap();
    assert!(
        moved.iter().any(|&v| v != 0.0),
        "unfrozen bn2 updates its statistics"
    );
}

#[test]
fn unregistered_classes_are_named_in_the_error() {
    let err = layer_from_config("MyMissingLayer", &json!({}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("unknown layer class 'MyMissingLayer'") && err.contains("register_layer"),
        "{err}"
    );
    let err = loss_from_config(&json!({"class_name": "MyMissingLoss", "config": {}}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("unknown loss class 'MyMissingLoss'") && err.contains("register_loss"),
        "{err}"
    );
    let err = metric_from_config(&json!({"class_name": "MyMissingMetric", "config": {}}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("unknown metric class 'MyMissingMetric'"),
        "{err}"
    );
    let err = optimizer_from_config(&json!({"class_name": "MyMissingOpt", "config": {}}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("unknown optimizer class 'MyMissingOpt'"),
        "{err}"
    );
    // A serde config with a wrong field type names the class and the field.
    register_split();
    let err = layer_from_config("Split", &json!({"name": "s", "left": "two"}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("layer 'Split' config: field 'left'") && err.contains("invalid type"),
        "{err}"
    );
    // Built-ins are pre-registered; optimizers (only) are found case-insensitively.
    assert!(layer_registry().contains("Conv2D"));
    assert!(!layer_registry().contains("conv2d"));
    assert!(optimizer_from_config(&json!({"class_name": "adam", "config": {}})).is_ok());
}

/// Values `0, 1, 2, ...` in `shape`.
fn arange(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| i as f32).collect(), shape).unwrap()
}

#[test]
fn layout_adapters_match_keras_and_torch_index_rules() {
    // Conv2D: keras[y, x, i, o] == ours[o, i, y, x].
    let (kh, kw, ci, co) = (2, 3, 4, 5);
    let keras = arange(&[kh, kw, ci, co]);
    let k = keras.to_vec::<f32>().unwrap();
    let ours = from_keras("Conv2D", "kernel", &keras).unwrap();
    assert_eq!(ours.shape(), &[co, ci, kh, kw]);
    let o = ours.to_vec::<f32>().unwrap();
    for (y, x, i, c) in itertools(kh, kw, ci, co) {
        assert_eq!(
            o[((c * ci + i) * kh + y) * kw + x],
            k[((y * kw + x) * ci + i) * co + c]
        );
    }
    // Conv2DTranspose: keras[y, x, out, in] == ours[in, out, y, x].
    let ours = from_keras("Conv2DTranspose", "kernel", &keras).unwrap();
    assert_eq!(ours.shape(), &[co, ci, kh, kw]);
    // DepthwiseConv2D: keras[y, x, c, m] == ours[c * M + m, 0, y, x].
    let (c_, m_) = (3, 2);
    let keras = arange(&[kh, kw, c_, m_]);
    let k = keras.to_vec::<f32>().unwrap();
    for (class, weight) in [
        ("DepthwiseConv2D", "kernel"),
        ("SeparableConv2D", "depthwise_kernel"),
    ] {
        let ours = from_keras(class, weight, &keras).unwrap();
        assert_eq!(ours.shape(), &[c_ * m_, 1, kh, kw]);
        let o = ours.to_vec::<f32>().unwrap();
        for (y, x, c, m) in itertools(kh, kw, c_, m_) {
            assert_eq!(
                o[((c * m_ + m) * kh + y) * kw + x],
                k[((y * kw + x) * c_ + c) * m_ + m]
            );
        }
    }
    // SeparableConv2D pointwise: keras[0, 0, j, f] == ours[f, j, 0, 0].
    let keras = arange(&[1, 1, 6, 4]);
    let ours = from_keras("SeparableConv2D", "pointwise_kernel", &keras).unwrap();
    assert_eq!(ours.shape(), &[4, 6, 1, 1]);
    let (k, o) = (
        keras.to_vec::<f32>().unwrap(),
        ours.to_vec::<f32>().unwrap(),
    );
    for j in 0..6 {
        for f in 0..4 {
            assert_eq!(o[f * 6 + j], k[j * 4 + f]);
        }
    }
    // Dense and batch norm agree with Keras; a bad rank is an error naming the layer.
    let d = arange(&[3, 2]);
    assert_eq!(
        from_keras("Dense", "kernel", &d)
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        d.to_vec::<f32>().unwrap()
    );
    let err = from_keras("DepthwiseConv2D", "kernel", &d)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("DepthwiseConv2D") && err.contains("[3, 2]"),
        "{err}"
    );
    // PyTorch: only Dense's kernel is transposed.
    let lin = arange(&[2, 3]); // Linear(3, 2).weight
    let ours = from_torch("Dense", "kernel", &lin).unwrap();
    assert_eq!(ours.shape(), &[3, 2]);
    assert_eq!(ours.to_vec::<f32>().unwrap(), vec![0., 3., 1., 4., 2., 5.]);
    let conv = arange(&[5, 4, 2, 3]);
    assert_eq!(
        from_torch("Conv2D", "kernel", &conv)
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        conv.to_vec::<f32>().unwrap()
    );
}

/// All index tuples of a 4-d shape.
fn itertools(a: usize, b: usize, c: usize, d: usize) -> Vec<(usize, usize, usize, usize)> {
    let mut out = Vec::new();
    for i in 0..a {
        for j in 0..b {
            for k in 0..c {
                for l in 0..d {
                    out.push((i, j, k, l));
                }
            }
        }
    }
    out
}
