//! `history.png`: training curves (loss, accuracy, ...) per epoch, one panel per quantity, the
//! training value in blue and the validation value (`val_*`) in orange.
//!
//! plotters draws the grid, frame, lines and markers into an RGB buffer (bitmap backend, no
//! encoder features); the labels are drawn with the small pixel font in [`crate::font`], and the
//! buffer is encoded as PNG with the `image` crate the CLI already uses for `predict`.

use crate::error::{CliError, Result};
use ferrovision_train::History;
use ferrovision_vision::draw::font;
use plotters::prelude::*;
use std::path::Path;

/// Size of one panel in pixels.
const PANEL_W: u32 = 520;
const PANEL_H: u32 = 380;
/// Space around the plot area inside a panel: left (y labels), right, top (title), bottom.
const M_LEFT: u32 = 64;
const M_RIGHT: u32 = 16;
const M_TOP: u32 = 34;
const M_BOTTOM: u32 = 44;

const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
const VAL_COLOR: RGBColor = RGBColor(255, 127, 14);
const GRID_COLOR: RGBColor = RGBColor(225, 225, 225);
const TEXT_COLOR: [u8; 3] = [30, 30, 30];

/// Colours of further series (tab10 after blue and orange).
const MORE_COLORS: [RGBColor; 8] = [
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn series_color(i: usize) -> RGBColor {
    match i {
        0 => TRAIN_COLOR,
        1 => VAL_COLOR,
        _ => MORE_COLORS[(i - 2) % MORE_COLORS.len()],
    }
}

/// One panel: a quantity (title) and its named series of (epoch, value) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// The title, e.g. the log key (`"loss"`, `"accuracy"`).
    pub key: String,
    /// Named series (`"train"`, `"val"`, or one per run), drawn in tab10 colours.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Groups a history into panels: every logged key except `lr` and `val_*`, each with its
/// `val_` counterpart. Epochs are shown counting from 1. Non-finite values are left out.
pub fn panels(history: &History) -> Vec<Panel> {
    let mut keys: Vec<String> = Vec::new();
    for logs in &history.logs {
        for (k, _) in logs.iter() {
            if k != "lr" && !k.starts_with("val_") && !keys.iter().any(|x| x == k) {
                keys.push(k.to_string());
            }
        }
    }
    let series = |key: &str| -> Vec<(f64, f64)> {
        history
            .epochs
            .iter()
            .zip(&history.logs)
            .filter_map(|(&e, l)| l.get(key).map(|v| (e as f64 + 1.0, v)))
            .filter(|(_, v)| v.is_finite())
            .collect()
    };
    keys.into_iter()
        .map(|k| {
            let val = series(&format!("val_{k}"));
            let mut s = vec![("train".to_string(), series(&k))];
            if !val.is_empty() {
                s.push(("val".to_string(), val));
            }
            Panel { key: k, series: s }
        })
        .collect()
}

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `target` ticks over `span`.
fn nice_step(span: f64, target: f64) -> f64 {
    let raw = (span / target).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Axis range expanded to whole ticks, and the ticks.
fn axis(lo: f64, hi: f64, target: f64, integer: bool) -> (f64, f64, Vec<f64>) {
    let (mut lo, mut hi) = (lo, hi);
    if hi - lo < 1e-12 {
        let pad = if lo.abs() > 1e-6 { lo.abs() * 0.1 } else { 0.5 };
        lo -= pad;
        hi += pad;
    }
    let mut step = nice_step(hi - lo, target);
    if integer {
        step = step.max(1.0).round();
    }
    let a = (lo / step).floor() * step;
    let b = (hi / step).ceil() * step;
    let n = ((b - a) / step).round() as usize;
    let ticks = (0..=n).map(|i| a + i as f64 * step).collect();
    (a, b, ticks)
}

/// Formats a tick value with as many decimals as the step needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

/// Text to draw after plotters is done: (text, x, y, scale, colour).
type Label = (String, i32, i32, i32, [u8; 3]);

fn draw_err<E: std::fmt::Debug>(e: E) -> CliError {
    CliError::new(format!("drawing the plot failed: {e:?}"))
}

/// Draws the panels side by side and returns the RGB buffer, its size and the labels to add.
fn render(panels: &[Panel]) -> Result<(Vec<u8>, u32, u32)> {
    let (w, h) = (PANEL_W * panels.len() as u32, PANEL_H);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let mut labels: Vec<Label> = Vec::new();
    let mut legend_lines: Vec<(i32, i32, RGBColor)> = Vec::new();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let areas = root.split_evenly((1, panels.len()));
        for (i, (area, p)) in areas.iter().zip(panels).enumerate() {
            let x_off = (i as u32 * PANEL_W) as i32;
            let all: Vec<(f64, f64)> = p
                .series
                .iter()
                .flat_map(|(_, s)| s.iter().copied())
                .collect();
            if all.is_empty() {
                labels.push((
                    format!("{}: no values", p.key),
                    x_off + 20,
                    20,
                    2,
                    TEXT_COLOR,
                ));
                continue;
            }
            let (xmin, xmax) = all
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &(x, _)| (a.min(x), b.max(x)));
            let (ymin, ymax) = all
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &(_, y)| (a.min(y), b.max(y)));
            let (x0, x1, xticks) = axis(xmin.clamp(0.0, 1.0), xmax, 8.0, true);
            let (y0, y1, yticks) = axis(ymin, ymax, 5.0, false);
            let ystep = yticks.get(1).map_or(1.0, |t| t - yticks[0]);

            let mut chart = ChartBuilder::on(area)
                .margin_left(M_LEFT)
                .margin_right(M_RIGHT)
                .margin_top(M_TOP)
                .margin_bottom(M_BOTTOM)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(draw_err)?;
            for &t in &yticks {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x0, t), (x1, t)],
                        GRID_COLOR,
                    )))
                    .map_err(draw_err)?;
                let (px, py) = chart.backend_coord(&(x0, t));
                let s = tick_label(t, ystep);
                labels.push((
                    s.clone(),
                    px - 8 - font::text_width(&s, 1),
                    py - 3,
                    1,
                    TEXT_COLOR,
                ));
            }
            for &t in &xticks {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(t, y0), (t, y1)],
                        GRID_COLOR,
                    )))
                    .map_err(draw_err)?;
                let (px, py) = chart.backend_coord(&(t, y0));
                let s = tick_label(t, 1.0);
                labels.push((
                    s.clone(),
                    px - font::text_width(&s, 1) / 2,
                    py + 8,
                    1,
                    TEXT_COLOR,
                ));
            }
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, y0), (x1, y1)],
                    BLACK.stroke_width(1),
                )))
                .map_err(draw_err)?;
            for (i, (_, series)) in p.series.iter().enumerate() {
                let color = series_color(i);
                if series.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(
                        series.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(draw_err)?;
                chart
                    .draw_series(series.iter().map(|&pt| Circle::new(pt, 3, color.filled())))
                    .map_err(draw_err)?;
            }
            // Title, axis name, legend.
            labels.push((p.key.clone(), x_off + M_LEFT as i32, 10, 2, TEXT_COLOR));
            let (ax, ay) = chart.backend_coord(&((x0 + x1) / 2.0, y0));
            labels.push((
                "epoch".into(),
                ax - font::text_width("epoch", 2) / 2,
                ay + 22,
                2,
                TEXT_COLOR,
            ));
            if p.series.len() <= 2 {
                // Two series: a one-line legend beside the title.
                let mut lx = x_off + PANEL_W as i32 - M_RIGHT as i32;
                for (i, (name, series)) in p.series.iter().enumerate().rev() {
                    if series.is_empty() {
                        continue;
                    }
                    lx -= font::text_width(name, 2);
                    labels.push((name.clone(), lx, 10, 2, TEXT_COLOR));
                    lx -= 26;
                    legend_lines.push((lx, 17, series_color(i)));
                    lx -= 14;
                }
            } else {
                // More series: a legend column inside the plot's lower right corner.
                let (rx, ry) = chart.backend_coord(&(x1, y0));
                let n = p.series.len() as i32;
                let widest = p
                    .series
                    .iter()
                    .map(|(n, _)| font::text_width(n, 1))
                    .max()
                    .unwrap_or(0);
                for (i, (name, _)) in p.series.iter().enumerate() {
                    let y = ry - 12 * (n - i as i32) - 4;
                    let x = rx - widest - 34;
                    legend_lines.push((x, y + 3, series_color(i)));
                    labels.push((name.clone(), x + 26, y, 1, TEXT_COLOR));
                }
            }
        }
        for &(x, y, c) in &legend_lines {
            root.draw(&Rectangle::new([(x, y - 1), (x + 20, y + 1)], c.filled()))
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    for (text, x, y, scale, color) in &labels {
        font::for_each_pixel(text, *x, *y, *scale, |px, py| {
            for dy in 0..*scale {
                for dx in 0..*scale {
                    let (xx, yy) = (px + dx, py + dy);
                    if xx >= 0 && yy >= 0 && (xx as u32) < w && (yy as u32) < h {
                        let k = ((yy as u32 * w + xx as u32) * 3) as usize;
                        buf[k..k + 3].copy_from_slice(color);
                    }
                }
            }
        });
    }
    Ok((buf, w, h))
}

/// Draws `history` to a PNG file at `path` (written atomically).
pub fn plot_history(history: &History, path: &Path) -> Result<()> {
    plot_panels(&panels(history), path)
}

/// Draws panels side by side to a PNG file at `path` (written atomically).
pub fn plot_panels(panels: &[Panel], path: &Path) -> Result<()> {
    if panels.is_empty() {
        return Err(CliError::new(format!(
            "{}: nothing to plot (the history has no logged values)",
            path.display()
        )));
    }
    let (buf, w, h) = render(panels)?;
    let img = image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| CliError::new("plot buffer has the wrong size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    Ok(ferrovision_io::write_atomic(path, &png)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes() {
        let (a, b, t) = axis(0.93, 0.987, 5.0, false);
        // Step 0.02: the range widens to whole steps, 0.92..1.00.
        assert!((a - 0.92).abs() < 1e-9 && (b - 1.0).abs() < 1e-9, "{a} {b}");
        assert_eq!(t.len(), 5);
        assert_eq!(tick_label(0.92, 0.01), "0.92");
        let (a, b, t) = axis(1.0, 10.0, 8.0, true);
        assert_eq!((a, b), (0.0, 10.0));
        assert_eq!(t, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        // A single value still gets a non-empty range.
        let (a, b, _) = axis(2.0, 2.0, 5.0, false);
        assert!(a < 2.0 && b > 2.0);
    }
}
