//! `ferrovision-bench`: ferrovision's benchmark harness.
//!
//! ```text
//! cargo run --release -p ferrovision-bench -- lenet5      # RESULT lenet5 train_img_s=.. infer_img_s=.. peak_rss_mb=..
//! cargo run --release -p ferrovision-bench -- mnist --data DIR  # RESULT mnist epoch_s=.. test_acc=..
//! cargo run --release -p ferrovision-bench -- resnet18    # RESULT resnet18 train_steps_s=.. infer_img_s=.. peak_rss_mb=..
//! cargo run --release -p ferrovision-bench -- gemm        # RESULT gemm gflops_1024=.. gflops_256x2304x576=.. peak_fraction=..
//! cargo run --release -p ferrovision-bench -- pipeline    # RESULT pipeline img_s=.. (input pipeline; --compare for tf.data/torchvision)
//! cargo run --release -p ferrovision-bench -- optim       # RESULT optim mparams=.. sgd_ms=.. adam_ms=.. ...
//! cargo run --release -p ferrovision-bench -- compare     # same workloads with PyTorch and TensorFlow, ratio table
//! cargo run --release -p ferrovision-bench -- vision --compare   # NMS + COCO bbox/segm eval vs torchvision / pycocotools
//! ```
//! Each workload runs alone in its own process and prints one machine-readable last line.

mod compare;
mod conv;
mod gemm;
mod lenet5;
mod mnist;
mod optim;
mod pipeline;
mod resnet18;
mod util;
mod vision;
mod zoo;

const USAGE: &str =
    "usage: ferrovision-bench <lenet5|mnist|conv|resnet18|resnet20|resnet50|mobilenet_v2|gemm|optim|pipeline|compare|nms|coco|coco-segm|vision> [options]

workloads (each prints a last line `RESULT <name> key=value ...`):
  lenet5     LeNet-5 on 6016 random 1x28x28 images, batch 64, SGD momentum:
             training img/s over 2 epochs after 1 warm-up epoch, inference img/s at batch 256
             (through traced plans, like the Model workloads' predict; FERROVISION_RUN_EAGERLY=1
             for eager inference)
  mnist      LeNet-5 trained with Model::fit on real MNIST (--data DIR with the IDX files, or
             FERROVISION_MNIST): Adam 1e-3, batch 64, --epochs N (default 3, the first a
             warm-up): median epoch seconds and test accuracy. With compare
             (--workloads mnist --data DIR) it runs Keras model.fit and a PyTorch loop too.
  conv       the 3x3 stride-1 convolutions of ResNet-20/18/50, forward, input and weight gradients,
             im2col + GEMM against Winograd F(4x4,3x3) and (2x2 and 1x1 maps) the dense form,
             interleaved: ms and ratios per shape (FERROVISION_BENCH_CONV=r20_s1,.. picks
             shapes; FERROVISION_BENCH_CONV_ALGO=im2col|dense|winograd-tiled|winograd-wide
             times one algorithm only, for profiling)
  resnet18   ResNet-18 (ferrovision-models, public model API: Model::train_on_batch, nn's
             SGD momentum) on random 3x64x64 images, batch 16: median training steps/s over
             20 steps after 3 warm-up, inference img/s at batch 32 (Model::predict)
  resnet20   CIFAR ResNet-20 on random 3x32x32 images, batch 128 (SGD momentum): training
             steps/s and the compute seconds of a 50 000-image epoch (391 steps, no input
             pipeline), inference img/s at batch 128
  resnet50, mobilenet_v2
             the zoo's ResNet-50 / MobileNet v2 (torchvision layouts; the peers run torchvision's
             and Keras applications' nets) on random 3x224x224 images, 1000 classes: inference
             img/s at batch 1 and 32, training steps/s at batch 16 (SGD momentum), peak RSS
  gemm       SGEMM GFLOP/s for 1024^3 and 256x2304x576, and the fraction of measured FP32 peak
  pipeline   decode + augment (random resized crop 224, flip, colour jitter) + batch 32 of the
             raccoon JPEGs, 1000 images: --images DIR --count N --workers N --compare
             (same work with tf.data and torchvision in the same run, --runs N) --decoders
  optim      one optimizer step over ResNet-18-sized weights (11.7 M parameters) for every
             optimizer: ms/step and effective memory bandwidth
  compare    runs the workloads above with ferrovision, PyTorch and TensorFlow in the same run
             and prints a table of medians and ratios
             options: --runs N (default 3)  --workloads lenet5,resnet18,gemm
                      --python PATH (default $FERROVISION_PYTHON, else reference/.venv/bin/python
                      here or in a checkout above; create it with reference/setup_venv.sh)
  nms        batched NMS of 1000 detector-like boxes, 80 classes, IoU 0.5: median us per call
  coco       COCO bbox evaluation of 5000 images, 80 classes, 20 detections per image:
             load + evaluate + accumulate, median s
  coco-segm  COCO segm (mask) evaluation of 4000 480x640 images, 80 classes, polygon / RLE
             ground truth, 20 compressed-RLE detections per image: load + evaluate, median s
  vision     nms, coco, then coco-segm
             options: --compare (torchvision batched_nms / pycocotools on the same inputs,
                      same run, results checked identical)  --reps N (nms, default 2000)
                      --runs N (coco, coco-segm, default 3)  --python PATH

options for every workload:
  --threads N   kernel threads (default: all cores)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    if matches!(cmd.as_str(), "nms" | "coco" | "coco-segm" | "vision") {
        std::process::exit(vision::main(cmd, &args[1..]));
    }
    if cmd == "pipeline" {
        // The pipeline workload has its own options (--images, --compare, ...).
        if let Err(e) = pipeline::run(&args[1..]) {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        return;
    }
    let opts = util::Opts::parse(&args[1..]).unwrap_or_else(|e| {
        eprintln!("error: {e}\n\n{USAGE}");
        std::process::exit(2);
    });
    if let Some(t) = opts.threads {
        if let Err(e) = ferrovision::tensor::kernels::set_num_threads(t) {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
    let result = match cmd.as_str() {
        "lenet5" => lenet5::run(&opts),
        "mnist" => mnist::run(&opts),
        "resnet18" => resnet18::run(&opts),
        "resnet20" | "resnet50" | "mobilenet_v2" => zoo::run(cmd, &opts),
        "gemm" => gemm::run(&opts),
        "conv" => conv::run(&opts),
        "compare" => compare::run(&opts),
        "optim" => optim::run(&opts),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown workload '{other}'")),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
