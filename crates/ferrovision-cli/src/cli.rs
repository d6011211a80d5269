//! Command-line arguments (clap derive) and their help texts.

use crate::data::DataSpec;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const ABOUT: &str = "Train, evaluate and use small image classifiers (LeNet-5, an MLP) on \
MNIST-style 28x28 grey images, evaluate detections (COCO, Pascal VOC) and draw boxes, with no \
Python and no downloads.";

const LONG_ABOUT: &str = "Train, evaluate and use small image classifiers (LeNet-5, an MLP) on \
MNIST-style 28x28 grey images, evaluate detections (COCO, Pascal VOC) and draw boxes, with no \
Python and no downloads.

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
  ferrovision evaluate --model-file runs/lenet5/model.safetensors --data mnist:/data/mnist
      Accuracy of a saved model on the MNIST test set.
  ferrovision predict --model-file runs/lenet5/model.safetensors my-digit.png another.jpg
      Top-3 classes for your own images.
  ferrovision summary --model lenet5
      Layers, output shapes and parameter counts.
  ferrovision eval coco --gt instances.json --dt detections.json
      The 12 COCO numbers, identical to pycocotools.
  ferrovision draw --image photo.jpg --boxes boxes.json
      Boxes, labels and scores drawn into photo-boxes.png.

Data sources (--data):
  builtin               6000 training + 1000 test MNIST digits inside this program
                        (MNIST by Yann LeCun, Corinna Cortes and Christopher Burges, CC BY-SA 3.0)
  mnist:<dir>           MNIST IDX files in <dir> (train-images-idx3-ubyte, t10k-..., raw or .gz)
  fashion-mnist:<dir>   Fashion-MNIST IDX files in <dir> (same file names)";

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

Training images go through the input pipeline: shuffled each epoch, augmented (--augment, a \
JSON list of ops as in configs/augment_digits.json; see docs/data.md) and batched by --workers \
threads while the model computes. Shuffling and augmentation depend only on --seed and the \
epoch, so a resumed run sees the same batches as an uninterrupted one.")]
    Train(TrainArgs),
    /// Print a saved model's loss and accuracy on the test split of a dataset
    #[command(
        after_help = "Example:\n  ferrovision evaluate --model-file runs/lenet5/model.safetensors --data mnist:/data/mnist"
    )]
    Evaluate(EvaluateArgs),
    /// Classify PNG or JPEG images with a saved model and print the top-3 classes
    #[command(
        after_help = "Images can be any size and either white-on-black (like MNIST) or \
dark ink on light paper: each is converted to grey, inverted if its border is bright, cropped to \
the ink, scaled to fit 20x20 and centred in 28x28, as MNIST's digits were.

Example:
  ferrovision predict --model-file runs/demo/model.safetensors digit.png photo-of-a-seven.jpg"
    )]
    Predict(PredictArgs),
    /// Print a model's layers, output shapes and parameter counts (like Keras' summary())
    #[command(after_help = "Examples:
  ferrovision summary --model lenet5
  ferrovision summary --model-file runs/lenet5/model.safetensors")]
    Summary(SummaryArgs),
    /// Evaluate detections: COCO metrics (identical to pycocotools) or Pascal VOC AP
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Draw boxes (with labels and scores) on an image and write a PNG
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

/// `ferrovision eval coco`.
#[derive(Debug, Clone, Args)]
pub struct EvalCocoArgs {
    /// Ground truth in COCO format (images, annotations, categories)
    #[arg(long, value_name = "FILE")]
    pub gt: PathBuf,
    /// Detections in COCO results format
    #[arg(long, value_name = "FILE")]
    pub dt: PathBuf,
    /// What is compared: bbox (boxes) or segm (masks: polygons / RLE)
    #[arg(long, default_value = "bbox")]
    pub iou_type: String,
    /// Print one JSON object (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl)
    #[arg(long)]
    pub json: bool,
}

/// `ferrovision eval voc`.
#[derive(Debug, Clone, Args)]
pub struct EvalVocArgs {
    /// Folder of Pascal VOC XML annotation files
    #[arg(long, value_name = "DIR")]
    pub gt: PathBuf,
    /// Detections (JSON list, see below)
    #[arg(long, value_name = "FILE")]
    pub dt: PathBuf,
    /// IoU a detection must exceed to match
    #[arg(long, default_value_t = 0.5)]
    pub iou: f64,
    /// 11-point interpolated AP (VOC2007) instead of the all-point area (VOC2010+)
    #[arg(long)]
    pub use_07: bool,
}

/// `ferrovision draw`.
#[derive(Debug, Clone, Args)]
pub struct DrawArgs {
    /// The image (PNG, JPEG, BMP or GIF)
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// The boxes (JSON list, see below)
    #[arg(long, value_name = "FILE")]
    pub boxes: PathBuf,
    /// Output PNG (default: <image name>-boxes.png next to the image)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The built-in architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    /// LeNet-5 (ReLU, max pooling): Conv(6,5x5,same)-Pool-Conv(16,5x5)-Pool-Dense(120)-Dense(84)-Dense(10)
    Lenet5,
    /// Multilayer perceptron: Flatten-Dense(128, ReLU)-Dense(10)
    Mlp,
}

impl ModelKind {
    /// The name used on the command line and in run directories.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Lenet5 => "lenet5",
            ModelKind::Mlp => "mlp",
        }
    }
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
    /// Optimizer: sgd, momentum, nesterov, adagrad, adadelta, rmsprop, adam, nadam, adamw
    /// [default: adam]
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
    /// result must stay 28x28 grey
    #[arg(long, value_name = "FILE")]
    pub augment: Option<PathBuf>,
    #[command(flatten)]
    pub pipeline: PipelineOpts,
}

/// Input-pipeline options of the commands that read a dataset.
#[derive(Debug, Clone, Args)]
pub struct PipelineOpts {
    /// Threads that prepare batches (shuffling, augmentation) while the model computes
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub workers: usize,
    /// Print the input pipeline's per-stage statistics (elements, elements/s, time, MB,
    /// skipped errors): after each epoch when training, at the end when evaluating (training
    /// runs always log them to pipeline_stats.csv and tensorboard/pipeline)
    #[arg(long)]
    pub stats: bool,
}

/// `ferrovision demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Run directory to write (the model ends up in <DIR>/model.safetensors)
    #[arg(long, value_name = "DIR", default_value = "runs/demo")]
    pub out: PathBuf,
    #[command(flatten)]
    pub train: TrainOpts,
}

/// `ferrovision train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Architecture to train [default: lenet5]
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// Dataset: builtin, mnist:<dir> or fashion-mnist:<dir> [default: builtin]
    #[arg(long, value_name = "SOURCE")]
    pub data: Option<DataSpec>,
    /// Run directory (default: runs/<model>)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint; model, data, optimizer, batch size
    /// and seed default to the run's own
    #[arg(long)]
    pub resume: bool,
    /// Train on only the first N training images (quick experiments)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub train: TrainOpts,
}

/// `ferrovision evaluate`.
#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    /// Saved model (a run's model.safetensors or one of its checkpoints)
    #[arg(long, value_name = "FILE")]
    pub model_file: PathBuf,
    /// Dataset whose test split to use: builtin, mnist:<dir> or fashion-mnist:<dir>
    #[arg(long, value_name = "SOURCE", default_value = "builtin")]
    pub data: DataSpec,
    /// Images per forward pass
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub batch_size: usize,
    /// Evaluate on only the first N test images
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub pipeline: PipelineOpts,
}

/// `ferrovision predict`.
#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// Saved model (a run's model.safetensors or one of its checkpoints)
    #[arg(long, value_name = "FILE")]
    pub model_file: PathBuf,
    /// PNG or JPEG images to classify
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<PathBuf>,
    /// Names to print for the classes
    #[arg(long, value_enum, default_value_t = ClassNames::Digits)]
    pub classes: ClassNames,
    /// How many of the most likely classes to print
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub top: usize,
}

/// `ferrovision summary`.
#[derive(Debug, Clone, Args)]
pub struct SummaryArgs {
    /// Built-in architecture to describe
    #[arg(long, value_enum, default_value_t = ModelKind::Lenet5, conflicts_with = "model_file")]
    pub model: ModelKind,
    /// Describe a saved model instead
    #[arg(long, value_name = "FILE")]
    pub model_file: Option<PathBuf>,
}
