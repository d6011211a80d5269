//! Box encodings against anchors/proposals: Faster R-CNN deltas (torchvision `BoxCoder`) and
//! YOLO offsets (sigmoid centre offsets within a grid cell, exponential size factors).

use crate::boxes::BBox;
use crate::error::{Result, VisionError};

/// Faster R-CNN box coder: `dx = wx (gx - ax) / aw`, `dw = ww ln(gw / aw)`, decoded with `dw`
/// and `dh` clamped to `clip` before the exponential (torchvision `BoxCoder`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxCoder {
    /// Weights `(wx, wy, ww, wh)`; Faster R-CNN's RoI heads use `(10, 10, 5, 5)`, the RPN `(1, 1, 1, 1)`.
    pub weights: [f32; 4],
    /// Upper clamp of `dw`/`dh` in decoding (default `ln(1000 / 16)`).
    pub clip: f32,
}

impl Default for BoxCoder {
    fn default() -> Self {
        BoxCoder {
            weights: [1.0, 1.0, 1.0, 1.0],
            clip: (1000.0f32 / 16.0).ln(),
        }
    }
}

impl BoxCoder {
    /// A coder with the given weights and the default clamp.
    pub fn new(weights: [f32; 4]) -> Self {
        BoxCoder {
            weights,
            ..Default::default()
        }
    }

    /// Regression targets of corner boxes `gt` relative to corner `anchors` (pairs).
    pub fn encode(&self, gt: &[BBox], anchors: &[BBox]) -> Result<Vec<[f32; 4]>> {
        if gt.len() != anchors.len() {
            return Err(VisionError::invalid(
                "BoxCoder::encode",
                format!("{} boxes vs {} anchors", gt.len(), anchors.len()),
            ));
        }
        let [wx, wy, ww, wh] = self.weights;
        let mut out = Vec::with_capacity(gt.len());
        for (i, (g, a)) in gt.iter().zip(anchors).enumerate() {
            let aw = a[2] - a[0];
            let ah = a[3] - a[1];
            let gw = g[2] - g[0];
            let gh = g[3] - g[1];
            if !(aw > 0.0 && ah > 0.0 && gw > 0.0 && gh > 0.0) {
                return Err(VisionError::invalid(
                    "BoxCoder::encode",
                    format!("pair {i}: box {g:?} or anchor {a:?} has no positive width and height"),
                ));
            }
            let acx = a[0] + 0.5 * aw;
            let acy = a[1] + 0.5 * ah;
            let gcx = g[0] + 0.5 * gw;
            let gcy = g[1] + 0.5 * gh;
            out.push([
                wx * (gcx - acx) / aw,
                wy * (gcy - acy) / ah,
                ww * (gw / aw).ln(),
                wh * (gh / ah).ln(),
            ]);
        }
        Ok(out)
    }

    /// Corner boxes from deltas relative to corner `anchors` (pairs).
    pub fn decode(&self, deltas: &[[f32; 4]], anchors: &[BBox]) -> Result<Vec<BBox>> {
        if deltas.len() != anchors.len() {
            return Err(VisionError::invalid(
                "BoxCoder::decode",
                format!("{} deltas vs {} anchors", deltas.len(), anchors.len()),
            ));
        }
        let [wx, wy, ww, wh] = self.weights;
        Ok(deltas
            .iter()
            .zip(anchors)
            .map(|(d, a)| {
                let aw = a[2] - a[0];
                let ah = a[3] - a[1];
                let acx = a[0] + 0.5 * aw;
                let acy = a[1] + 0.5 * ah;
                let dx = d[0] / wx;
                let dy = d[1] / wy;
                let dw = (d[2] / ww).min(self.clip);
                let dh = (d[3] / wh).min(self.clip);
                let cx = dx * aw + acx;
                let cy = dy * ah + acy;
                let w = dw.exp() * aw;
                let h = dh.exp() * ah;
                [cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h]
            })
            .collect())
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// YOLO decoding of one prediction `t = [tx, ty, tw, th]` in grid cell `(cx, cy)` with prior
/// size `(pw, ph)` in pixels: centre `((sigmoid(tx) + cx) * stride, (sigmoid(ty) + cy) * stride)`,
/// size `(pw * exp(tw), ph * exp(th))`. Returns a corner box in pixels.
pub fn yolo_decode(t: [f32; 4], cell: (usize, usize), prior: (f32, f32), stride: f32) -> BBox {
    let cx = (sigmoid(t[0]) + cell.0 as f32) * stride;
    let cy = (sigmoid(t[1]) + cell.1 as f32) * stride;
    let w = prior.0 * t[2].exp();
    let h = prior.1 * t[3].exp();
    [cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h]
}

/// YOLO encoding (inverse of [`yolo_decode`]): the cell that holds the box centre and the raw
/// targets `[tx, ty, tw, th]`. The in-cell offset is clamped to `[eps, 1 - eps]` so the logit
/// stays finite for centres on a cell border.
pub fn yolo_encode(b: BBox, prior: (f32, f32), stride: f32) -> Result<((usize, usize), [f32; 4])> {
    let w = b[2] - b[0];
    let h = b[3] - b[1];
    if !(w > 0.0 && h > 0.0 && stride > 0.0 && prior.0 > 0.0 && prior.1 > 0.0) {
        return Err(VisionError::invalid(
            "yolo_encode",
            format!("box {b:?}, prior {prior:?} and stride {stride} must have positive sizes"),
        ));
    }
    let gx = (b[0] + 0.5 * w) / stride;
    let gy = (b[1] + 0.5 * h) / stride;
    if gx < 0.0 || gy < 0.0 {
        return Err(VisionError::invalid(
            "yolo_encode",
            format!("box {b:?} has its centre outside the grid"),
        ));
    }
    let (cx, cy) = (gx.floor(), gy.floor());
    const EPS: f32 = 1e-6;
    let logit = |p: f32| {
        let p = p.clamp(EPS, 1.0 - EPS);
        (p / (1.0 - p)).ln()
    };
    Ok((
        (cx as usize, cy as usize),
        [
            logit(gx - cx),
            logit(gy - cy),
            (w / prior.0).ln(),
            (h / prior.1).ln(),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yolo_round_trip() {
        let b = [37.0, 50.0, 97.0, 130.0];
        let (cell, t) = yolo_encode(b, (40.0, 60.0), 32.0).unwrap();
        assert_eq!(cell, (2, 2));
        let d = yolo_decode(t, cell, (40.0, 60.0), 32.0);
        for k in 0..4 {
            assert!((d[k] - b[k]).abs() < 1e-3, "{d:?} vs {b:?}");
        }
    }

    #[test]
    fn faster_rcnn_round_trip_and_clamp() {
        let c = BoxCoder::new([10.0, 10.0, 5.0, 5.0]);
        let a = [[10.0, 10.0, 50.0, 30.0]];
        let g = [[12.0, 8.0, 60.0, 40.0]];
        let d = c.encode(&g, &a).unwrap();
        let back = c.decode(&d, &a).unwrap();
        for k in 0..4 {
            assert!((back[0][k] - g[0][k]).abs() < 1e-4);
        }
        let huge = c.decode(&[[0.0, 0.0, 1e4, 1e4]], &a).unwrap()[0];
        assert!((huge[2] - huge[0] - 40.0 * c.clip.exp()).abs() < 1e-1);
        assert!(c.encode(&g, &[[0.0, 0.0, 0.0, 1.0]]).is_err());
    }
}
