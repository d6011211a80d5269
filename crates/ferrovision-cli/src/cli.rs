//! The command line (clap derive): the top-level help, the subcommand list and the options
//! shared by several commands. Each command's own arguments live next to it in
//! `commands/<name>.rs`.

use crate::commands::classify::ClassifyArgs;
use crate::commands::convert::ConvertArgs;
use crate::commands::demo::DemoArgs;
use crate::commands::draw::DrawArgs;
use crate::commands::eval::{EvalCocoArgs, EvalVocArgs};
use crate::commands::evaluate::EvaluateArgs;
use crate::commands::models::ModelsArgs;
use crate::commands::predict::PredictArgs;
use crate::commands::summary::SummaryArgs;
use crate::commands::train::TrainArgs;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const ABOUT: &str = "Train, evaluate and use image classifiers from a model zoo (LeNet-5, \
CIFAR and ImageNet ResNets, VGG, GoogLeNet, Inception v3, MobileNet, EfficientNet-Lite0) on \
MNIST, CIFAR-10 or your own image folders, classify photos with pretrained weights imported from \
PyTorch, Keras, TF.js or ONNX files, evaluate detections (COCO, Pascal VOC) and draw boxes, with \
no Python and no downloads.";

const LONG_ABOUT: &str = "Train, evaluate and use image classifiers from a model zoo (LeNet-5, \
CIFAR and ImageNet ResNets, VGG, GoogLeNet, Inception v3, MobileNet, EfficientNet-Lite0) on \
MNIST, CIFAR-10 or your own image folders, classify photos with pretrained weights imported from \
PyTorch, Keras, TF.js or ONNX files, evaluate detections (COCO, Pascal VOC) and draw boxes, with \
no Python and no downloads.

New here? Run `ferrovision demo`: it trains LeNet-5 on a slice of real MNIST digits built into \
this program, prints the test accuracy, saves the model and classifies a few digits it never saw.

A training run writes everything into one run directory (--out): checkpoints after each epoch, \
the final model (model.safetensors), a CSV log, TensorBoard event files, a plot of the loss and accuracy \
curves (history.png), the final numbers (metrics.json) and the input pipeline's per-stage \
statistics (pipeline_stats.csv).";

const EXAMPLES: &str = "Examples:
  ferrovision demo
      Train LeNet-5 on the built-in digits (under a minute) and try it.
  ferrovision train --model lenet5 --data mnist:/data/mnist --epochs 10 --out runs/lenet5
      Train on the full MNIST from a directory of IDX files.
  ferrovision train --out runs/lenet5 --epochs 15 --resume
      Continue that run from its last checkpoint up to epoch 15.
  ferrovision train --data mnist:/data/mnist --augment configs/augment_digits.json --stats
      Train on randomly rotated/shifted/zoomed digits and print the input pipeline's
      per-stage statistics after each epoch.
  ferrovision train --model resnet20 --data cifar10:/data/cifar10 --optimizer momentum --lr 0.05
      A CIFAR ResNet-20 on CIFAR-10 (the model is built for the data's 3x32x32 images).
  ferrovision train --model resnet20 --data folder:photos --limit 2000 --epochs 5
      Your own images: photos/train/<class>/*.jpg and photos/test/<class>/*.jpg.
  ferrovision train --model resnet20 --data cifar10:/data/cifar10 --augment configs/augment_cifar10.json
          --optimizer momentum --lr 0.1 --weight-decay 1e-4 --batch-size 128 --schedule step:82,123 --epochs 164
      He et al.'s CIFAR-10 recipe: pad-4 random crops and flips, SGD momentum 0.9, weight decay,
      the learning rate divided by 10 after epochs 82 and 123.
  ferrovision train --model resnet20 --data folder:photos --init-from runs/cifar/model.safetensors
          --freeze class:BatchNormalization --backbone-lr-multiplier 0.1
      Fine-tune: warm start by layer name, batch norms frozen, the loaded weights at lr/10.
  ferrovision evaluate --model-file runs/lenet5/model.safetensors --data mnist:/data/mnist
      Accuracy of a saved model on the MNIST test set.
  ferrovision evaluate --model-file runs/a/model.safetensors --model-file runs/b/model.safetensors --tta ten-crop
      An ensemble of two models with ten-crop test-time augmentation.
  ferrovision predict --model-file runs/lenet5/model.safetensors my-digit.png another.jpg
      Top-3 classes for your own images.
  ferrovision summary --model resnet18 --input-shape 3,224,224 --num-classes 1000
      Layers, output shapes and parameter counts.
  ferrovision eval coco --gt instances.json --dt detections.json
      The 12 COCO numbers, identical to pycocotools.
  ferrovision draw --image photo.jpg --boxes boxes.json
      Boxes, labels and scores drawn into photo-boxes.png.

Data sources (--data):
  builtin               6000 training + 1000 test MNIST digits inside this program
                        (MNIST by Yann LeCun, Corinna Cortes and Christopher Burges, CC BY-SA 3.0)
  mnist:<dir>           MNIST IDX files in <dir> (train-images-idx3-ubyte, t10k-..., raw or .gz)
  fashion-mnist:<dir>   Fashion-MNIST IDX files in <dir> (same file names)
  cifar10:<dir>         CIFAR-10 in <dir>: the binary batches (data_batch_1.bin ... test_batch.bin)
                        or the JPEG tars cifar10-train.tar and cifar10-test.tar
  folder:<dir>          your images, one folder per class: <dir>/train/<class>/*.jpg|png and
                        <dir>/test/<class>/* (or val/); resized to the first image's size

Models (--model): the zoo (`ferrovision models` lists it: lenet5, mlp, resnets, vggs, googlenet,
inception_v3, mobilenets, efficientnet_lite0); each is built for the data's image shape and
number of classes.";

/// The `ferrovision` command line.
#[derive(Debug, Parser)]
#[command(
    name = "ferrovision",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train LeNet-5 on the built-in digits, print the test accuracy, save the model and
    /// classify a few held-out digits (no downloads; under a minute)
    #[command(after_help = "Example:\n  ferrovision demo --out runs/demo")]
    Demo(DemoArgs),
    /// Train a model and write a run directory (checkpoints, CSV log, TensorBoard events,
    /// history.png, metrics.json)
    #[command(after_help = "Examples:
  ferrovision train
      LeNet-5 on the built-in digits, 10 epochs, Adam, into runs/lenet5.
  ferrovision train --model mlp --data mnist:/data/mnist --optimizer sgd --lr 0.01 --epochs 25
  ferrovision train --data fashion-mnist:/data/fashion-mnist --out runs/fashion
  ferrovision train --out runs/fashion --epochs 20 --resume
  ferrovision train --data mnist:/data/mnist --augment configs/augment_digits.json --stats
  ferrovision train --model resnet20 --data cifar10:/data/cifar10 --limit 5000 --epochs 3
  ferrovision train --model resnet20 --data cifar10:/data/cifar10 --augment configs/augment_cifar10.json \
      --optimizer momentum --lr 0.1 --weight-decay 1e-4 --schedule cosine --epochs 30

Training images go through the input pipeline: shuffled each epoch, augmented (--augment, a \
JSON list of ops as in configs/augment_digits.json; see docs/data.md) and batched by --workers \
threads while the model computes. Shuffling and augmentation depend only on --seed and the \
epoch, so a resumed run sees the same batches as an uninterrupted one; the optimizer (with its \
schedule and weight decay), frozen layers and learning-rate multipliers come from the checkpoint, \
so a resumed run is identical to an uninterrupted one.")]
    Train(Box<TrainArgs>),
    /// Print a saved model's loss and accuracy (and top-5 accuracy for 10 or more classes) on
    /// the test split of a dataset; with test-time augmentation or as an ensemble
    #[command(
        after_help = "Images are normalised as the model was trained (the --augment config's normalize).\n\nExamples:\n  ferrovision evaluate --model-file runs/lenet5/model.safetensors --data mnist:/data/mnist\n  ferrovision evaluate --model-file runs/r20/model.safetensors --data cifar10:/data/cifar10 --tta ten-crop\n  ferrovision evaluate --model-file runs/a/model.safetensors --model-file runs/b/model.safetensors"
    )]
    Evaluate(EvaluateArgs),
    /// Classify PNG or JPEG images with a saved model and print the top-3 classes
    #[command(
        after_help = "For a model of 1x28x28 digits, images can be any size and either \
white-on-black (like MNIST) or dark ink on light paper: each is converted to grey, inverted if its \
border is bright, cropped to the ink, scaled to fit 20x20 and centred in 28x28, as MNIST's digits \
were. For other models each image is converted to the model's channels (RGB or grey) and resized \
to its input size.

Example:
  ferrovision predict --model-file runs/demo/model.safetensors digit.png photo-of-a-seven.jpg"
    )]
    Predict(PredictArgs),
    /// Print a model's layers, output shapes and parameter counts (like Keras' summary())
    #[command(after_help = "Examples:
  ferrovision summary --model lenet5
  ferrovision summary --model resnet20 --input-shape 3,32,32
  ferrovision summary --model-file runs/lenet5/model.safetensors")]
    Summary(SummaryArgs),
    /// Classify photos with a pretrained zoo model (ImageNet labels) and print the top-k
    #[command(
        after_help = "The weights come from the local model cache (scripts/fetch_models.sh fills \
$FERROVISION_HOME, default ~/.ferrovision) or a file: the original PyTorch .pth or a safetensors \
file written by `ferrovision convert`. Images are prepared as the weights expect (shorter side \
resized, centre crop, per-channel normalisation).

Examples:
  ferrovision classify --model efficientnet_lite0 --weights efficientnet_lite0 dog.jpg eagle.jpg
  ferrovision classify --model efficientnet_lite0 --weights efficientnet-lite0-57934424.pth --top 3 --json photo.jpg"
    )]
    Classify(ClassifyArgs),
    /// List the model zoo's architectures and the pretrained weights of the local model cache
    Models(ModelsArgs),
    /// Convert pretrained weights (PyTorch .pth, Keras .h5, TF.js, ONNX, safetensors) into a checked safetensors file for a zoo
    /// architecture
    #[command(after_help = "Examples:
  ferrovision convert efficientnet-lite0-57934424.pth --arch efficientnet_lite0 --out lite0.safetensors
  ferrovision convert efficientnet_lite0 --arch efficientnet_lite0 --no-top --cache lite0_backbone")]
    Convert(ConvertArgs),
    /// Evaluate detections: COCO metrics (identical to pycocotools) or Pascal VOC AP
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Draw boxes (with labels and scores) on an image and write the picture (PNG, JPEG or BMP)
    #[command(
        after_help = "The boxes file is a JSON list of {\"bbox\": [x1, y1, x2, y2], \"label\": \"raccoon\", \"score\": 0.93} \
(label and score optional), in pixels of the image.

Example:
  ferrovision draw --image raccoon-1.jpg --boxes boxes.json --out raccoon-1-boxes.png"
    )]
    Draw(DrawArgs),
}

/// `ferrovision eval <coco|voc>`.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// COCO box or mask evaluation: the 12 numbers (AP@[.5:.95], AP50, AP75, APs/m/l,
    /// AR1/10/100, ARs/m/l) in pycocotools' layout, or a JSON object with --json
    #[command(
        after_help = "The detections file is the COCO results format: a JSON list of \
{\"image_id\", \"category_id\", \"bbox\": [x, y, w, h], \"score\"}; with --iou-type segm each entry \
has a \"segmentation\" (compressed RLE {\"size\": [h, w], \"counts\": \"...\"}).

Example:
  ferrovision eval coco --gt instances_val2017.json --dt detections.json --json"
    )]
    Coco(EvalCocoArgs),
    /// Pascal VOC evaluation: per-class AP and mAP at IoU 0.5 from a folder of VOC XML files
    #[command(after_help = "The detections file is a JSON list of \
{\"image_id\": \"raccoon-1\", \"class\": \"raccoon\", \"score\": 0.9, \"bbox\": [xmin, ymin, xmax, ymax]}; \
image_id is the XML file name without extension.

Example:
  ferrovision eval voc --gt data/raccoon/annotations --dt detections.json")]
    Voc(EvalVocArgs),
}

/// `--workers`: 1 to [`ferrovision_data::MAX_WORKERS`] threads.
fn parse_workers(s: &str) -> Result<usize, String> {
    let max = ferrovision_data::MAX_WORKERS;
    match s.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a number of threads from 1 to {max}")),
    }
}

/// Checks a `--model` value against the zoo (`ferrovision_models::REGISTRY`).
pub fn parse_model(name: &str) -> Result<String, String> {
    ferrovision_models::lookup(name)
        .map(|e| e.name.to_string())
        .map_err(|e| e.to_string())
}

/// Class names for `predict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClassNames {
    /// The digits 0-9 (MNIST)
    Digits,
    /// The ten Fashion-MNIST garment types
    Fashion,
}

/// Options shared by `train` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct TrainOpts {
    /// Passes over the training set; with --resume, the total to reach [default: 10, demo: 15]
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Images per training step [default: 32, demo: 64]
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Optimizer: sgd, momentum, nesterov, adagrad, adadelta, rmsprop, adam, amsgrad, nadam,
    /// adamw [default: adam]
    #[arg(long, value_name = "NAME")]
    pub optimizer: Option<String>,
    /// Learning rate [default: the optimizer's Keras default, e.g. 0.001 for Adam, 0.01 for SGD]
    #[arg(long, value_name = "RATE")]
    pub lr: Option<f64>,
    /// Seed of the weight initialization and the shuffling order (same seed, same run)
    /// [default: 42]
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Progress output: 0 none, 1 a progress bar per epoch, 2 one line per epoch
    #[arg(long, value_name = "0|1|2", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub verbose: u8,
    /// Augment the training images as a JSON config says (e.g. configs/augment_digits.json:
    /// {"ops": [{"op": "affine", "degrees": 10, ...}]}; the ops are in docs/data.md); the
    /// result must keep the images' size and channels (the model's input)
    #[arg(long, value_name = "FILE")]
    pub augment: Option<PathBuf>,
    #[command(flatten)]
    pub pipeline: PipelineOpts,
}

/// Input-pipeline options of the commands that read a dataset.
#[derive(Debug, Clone, Args)]
pub struct PipelineOpts {
    /// Threads that decode image files and prepare batches (shuffling, augmentation) while the
    /// model computes
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = parse_workers)]
    pub workers: usize,
    /// Print the input pipeline's per-stage statistics (elements, elements/s, time, MB,
    /// skipped errors): after each epoch when training, at the end when evaluating (training
    /// runs always log them to pipeline_stats.csv and tensorboard/pipeline)
    #[arg(long)]
    pub stats: bool,
}
