//! The subcommands, one file each: `demo`, `train`, `evaluate`, `predict`, `summary`,
//! `classify`, `models`, `convert`, `eval coco|voc` and `draw`. Each file holds the command's arguments (clap derive) and its
//! `run`.

pub mod classify;
pub mod convert;
pub mod demo;
pub mod draw;
pub mod eval;
pub mod evaluate;
pub mod models;
pub mod predict;
pub mod summary;
pub mod train;

use crate::cli::{Command, EvalCommand};
use crate::error::Result;

/// Runs one parsed command line.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Demo(a) => demo::run(a),
        Command::Train(a) => train::run(*a).map(|_| ()),
        Command::Evaluate(a) => evaluate::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Summary(a) => summary::run(a),
        Command::Classify(a) => classify::run(a),
        Command::Models(a) => models::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Eval(EvalCommand::Coco(a)) => eval::coco(a),
        Command::Eval(EvalCommand::Voc(a)) => eval::voc(a),
        Command::Draw(a) => draw::run(a),
    }
}
