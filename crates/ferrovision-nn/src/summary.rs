//! `summary()`: the Keras-style table of layers, output shapes and parameter counts.
//!
//! A pure formatter: [`crate::NetworkExt::summary`] gathers the rows and weights of a model and
//! calls [`summarize`], so this module does not depend on the model traits.

use crate::layer::{shape_str, Shape};
use crate::Param;

/// One line of a summary.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// Layer name.
    pub name: String,
    /// Layer type.
    pub class_name: String,
    /// One shape per output (none when unknown; a multi-output call has several).
    pub output_shapes: Vec<Shape>,
    /// Parameters owned by the layer (0 for a repeated call of a shared layer).
    pub params: usize,
    /// Names of the layers feeding it (functional models).
    pub connected_to: Vec<String>,
}

/// `61706` -> `61,706`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// f32 bytes as Keras prints them: `241.04 KB`.
fn bytes(params: usize) -> String {
    let b = params as f64 * 4.0;
    if b < 1024.0 {
        format!("{b:.2} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2} KB", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} MB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2} GB", b / 1024.0 / 1024.0 / 1024.0)
    }
}

/// The "Output Shape" cell: one shape as `(None, 10)`, several as Keras' list
/// `[(None, 10), (None, 4)]`, `?` for an unknown one.
fn shapes_cell(shapes: &[Shape]) -> String {
    let one = |s: &Shape| {
        if s.is_empty() {
            "?".to_string()
        } else {
            shape_str(s)
        }
    };
    match shapes {
        [] => "?".to_string(),
        [s] => one(s),
        _ => format!(
            "[{}]",
            shapes.iter().map(one).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The summary table of the model `title` with these rows and (named) weights.
pub fn summarize(title: &str, rows: &[SummaryRow], weights: &[(String, Param)]) -> String {
    let functional = rows.iter().any(|r| !r.connected_to.is_empty());
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                format!("{} ({})", r.name, r.class_name),
                shapes_cell(&r.output_shapes),
                thousands(r.params),
                r.connected_to.join(", "),
            ]
        })
        .collect();
    let header = ["Layer (type)", "Output Shape", "Param #", "Connected to"];
    let ncol = if functional { 4 } else { 3 };
    let widths: Vec<usize> = (0..ncol)
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
                + 3
        })
        .collect();
    let total_width: usize = widths.iter().sum::<usize>() + 1;
    let line = |cols: &[String]| -> String {
        let mut s = String::from(" ");
        for (c, w) in cols.iter().zip(&widths) {
            s.push_str(&format!("{c:<w$}"));
        }
        s.trim_end().to_string()
    };
    let mut out = String::new();
    out.push_str(&format!("Model: \"{title}\"\n"));
    out.push_str(&"_".repeat(total_width));
    out.push('\n');
    out.push_str(&line(
        &header[..ncol]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    ));
    out.push('\n');
    out.push_str(&"=".repeat(total_width));
    out.push('\n');
    for (i, r) in cells.iter().enumerate() {
        out.push_str(&line(&r[..ncol]));
        out.push('\n');
        if i + 1 < cells.len() {
            out.push('\n');
        }
    }
    out.push_str(&"=".repeat(total_width));
    out.push('\n');
    let total: usize = weights.iter().map(|(_, p)| p.numel()).sum();
    let trainable: usize = weights
        .iter()
        .filter(|(_, p)| p.trainable())
        .map(|(_, p)| p.numel())
        .sum();
    for (label, n) in [
        ("Total params", total),
        ("Trainable params", trainable),
        ("Non-trainable params", total - trainable),
    ] {
        out.push_str(&format!("{label}: {} ({})\n", thousands(n), bytes(n)));
    }
    out.push_str(&"_".repeat(total_width));
    out.push('\n');
    out
}
