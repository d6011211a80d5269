//! COCO run-length encoded binary masks, bit-compatible with pycocotools' `maskApi`.
//!
//! A mask of height `h` and width `w` is read in column-major order (down the first column,
//! then the next, as COCO stores masks) and stored as alternating run lengths, starting with a
//! run of zeros (possibly empty). The string form is COCO's: each count (from the fourth on, as
//! the difference to the count two places before) in 5-bit groups, least significant first,
//! one ASCII character `48 + group` per group, bit 0x20 meaning "more groups follow" and bit
//! 0x10 of the last group the sign.
//!
//! Polygons are rasterized with COCO's rule (`rleFrPoly`): vertices scaled by 5 and rounded,
//! edges walked point by point on that grid, and a pixel column's boundary taken where the
//! walked edge crosses a pixel center column; the results are equal to pycocotools' to the
//! count. Every constructor checks that the counts cover exactly `h * w` pixels, so the
//! run-walking loops below always terminate and never index out of bounds.

/// A malformed run-length encoding or polygon: what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RleError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, RleError> {
    Err(RleError(msg.into()))
}

/// A run-length encoded binary mask (COCO's `RLE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rle {
    h: u32,
    w: u32,
    counts: Vec<u32>,
}

/// `maskApi.c` `bbIou` for one pair: IoU of `[x, y, w, h]` boxes in f64, with a crowd region
/// measured against the detection's area only.
pub(crate) fn bb_iou(d: &[f64; 4], g: &[f64; 4], crowd: bool) -> f64 {
    let ga = g[2] * g[3];
    let da = d[2] * d[3];
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let u = if crowd { da } else { da + ga - i };
    i / u
}

/// Largest polygon coordinate accepted: COCO's rasterizer walks every point of the 5x
/// upsampled boundary, so absurd coordinates would cost absurd memory.
const MAX_COORD: f64 = 1.0e6;

impl Rle {
    /// A mask from its run lengths (zeros first); they must sum to `h * w`.
    pub fn new(h: u32, w: u32, counts: Vec<u32>) -> Result<Self, RleError> {
        let n = h as u64 * w as u64;
        if n > u32::MAX as u64 {
            return err(format!(
                "size [{h}, {w}] has more than 2^32 - 1 pixels (COCO counts are 32-bit)"
            ));
        }
        let sum: u64 = counts.iter().map(|&c| c as u64).sum();
        if sum != n {
            return err(format!(
                "counts sum to {sum} pixels but size [{h}, {w}] has {n}"
            ));
        }
        Ok(Rle { h, w, counts })
    }

    /// The all-zero mask.
    pub fn zeros(h: u32, w: u32) -> Result<Self, RleError> {
        Self::new(h, w, vec![h.wrapping_mul(w)])
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.h
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.w
    }

    /// The run lengths, zeros first.
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// Encodes a column-major mask of `h * w` bytes (`mask[x * h + y]`; nonzero is foreground).
    pub fn encode(mask: &[u8], h: u32, w: u32) -> Result<Self, RleError> {
        if mask.len() as u64 != h as u64 * w as u64 {
            return err(format!(
                "mask has {} values, size [{h}, {w}] needs {}",
                mask.len(),
                h as u64 * w as u64
            ));
        }
        let mut counts = Vec::new();
        let (mut prev, mut run) = (false, 0u32);
        for &m in mask {
            let v = m != 0;
            if v != prev {
                counts.push(run);
                run = 0;
                prev = v;
            }
            run += 1;
        }
        counts.push(run);
        Self::new(h, w, counts)
    }

    /// The column-major mask (`h * w` bytes of 0 / 1).
    pub fn decode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.h as usize * self.w as usize);
        let mut v = 0u8;
        for &c in &self.counts {
            out.extend(std::iter::repeat_n(v, c as usize));
            v ^= 1;
        }
        out
    }

    /// Decodes COCO's compressed string form (`maskApi.c` `rleFrString`), checking every
    /// character, that no value is cut off or out of range, and that the counts cover `h * w`.
    pub fn from_string(s: &str, h: u32, w: u32) -> Result<Self, RleError> {
        let b = s.as_bytes();
        let mut counts: Vec<u32> = Vec::with_capacity(b.len());
        let mut p = 0;
        while p < b.len() {
            let start = p;
            let mut x: i64 = 0;
            let mut k = 0u32;
            loop {
                let Some(&ch) = b.get(p) else {
                    return err(format!(
                        "counts string ends inside the value starting at character {start}"
                    ));
                };
                if !(48..=111).contains(&ch) {
                    return err(format!(
                        "counts string has {:?} at character {p} (COCO uses ASCII 48..=111)",
                        char::from(ch)
                    ));
                }
                if k == 7 {
                    return err(format!(
                        "counts string value at character {start} has more than 7 characters"
                    ));
                }
                let c = (ch - 48) as i64;
                x |= (c & 0x1f) << (5 * k);
                p += 1;
                k += 1;
                if c & 0x20 == 0 {
                    if c & 0x10 != 0 {
                        x |= -1i64 << (5 * k);
                    }
                    break;
                }
            }
            let m = counts.len();
            if m > 2 {
                x += counts[m - 2] as i64;
            }
            if !(0..=u32::MAX as i64).contains(&x) {
                return err(format!(
                    "counts string value {m} (at character {start}) decodes to run length {x}"
                ));
            }
            counts.push(x as u32);
        }
        Self::new(h, w, counts)
    }

    /// COCO's compressed string form (`maskApi.c` `rleToString`).
    pub fn to_coco_string(&self) -> String {
        let mut s = String::with_capacity(self.counts.len() * 2);
        for (i, &c) in self.counts.iter().enumerate() {
            let mut x = c as i64;
            if i > 2 {
                x -= self.counts[i - 2] as i64;
            }
            loop {
                let mut g = x & 0x1f;
                x >>= 5;
                let more = if g & 0x10 != 0 { x != -1 } else { x != 0 };
                if more {
                    g |= 0x20;
                }
                s.push(char::from((g + 48) as u8));
                if !more {
                    break;
                }
            }
        }
        s
    }

    /// Number of foreground pixels.
    pub fn area(&self) -> u64 {
        self.counts
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&c| c as u64)
            .sum()
    }

    /// The bounding box `[x, y, w, h]` (`maskApi.c` `rleToBbox`, same arithmetic: zeros for an
    /// empty mask, the full height when a run of ones spans columns).
    pub fn to_bbox(&self) -> [f64; 4] {
        let (h, w) = (self.h, self.w);
        let m = self.counts.len() / 2 * 2;
        if m == 0 || h == 0 {
            return [0.0; 4];
        }
        let (mut xs, mut ys, mut xe, mut ye) = (w, h, 0u32, 0u32);
        let (mut cc, mut xp) = (0u32, 0u32);
        for j in 0..m {
            cc = cc.wrapping_add(self.counts[j]);
            let t = cc.wrapping_sub((j % 2) as u32);
            let y = t % h;
            let x = (t - y) / h;
            if j % 2 == 0 {
                xp = x;
            } else if xp < x {
                ys = 0;
                ye = h - 1;
            }
            xs = xs.min(x);
            xe = xe.max(x);
            ys = ys.min(y);
            ye = ye.max(y);
        }
        [
            xs as f64,
            ys as f64,
            xe.wrapping_sub(xs).wrapping_add(1) as f64,
            ye.wrapping_sub(ys).wrapping_add(1) as f64,
        ]
    }

    /// Rasterizes one polygon `[x0, y0, x1, y1, ...]` with COCO's rule (`rleFrPoly`).
    /// Polygons of one or two points give an empty mask, as in pycocotools.
    pub fn from_polygon(xy: &[f64], h: u32, w: u32) -> Result<Self, RleError> {
        if !xy.len().is_multiple_of(2) {
            return err(format!(
                "polygon has {} coordinates (x, y pairs expected)",
                xy.len()
            ));
        }
        if xy.is_empty() {
            return err("polygon has no points");
        }
        if let Some(v) = xy.iter().find(|v| !v.is_finite() || v.abs() > MAX_COORD) {
            return err(format!(
                "polygon coordinate {v} is not a finite number within +-{MAX_COORD}"
            ));
        }
        // Checks the size before any work.
        let empty = Self::zeros(h, w)?;
        if h == 0 || w == 0 {
            return Ok(empty);
        }
        let k = xy.len() / 2;
        const SCALE: f64 = 5.0;
        // C's `(int)(scale * v + .5)`: truncation toward zero, as `as` does.
        let x: Vec<i64> = (0..=k)
            .map(|j| (SCALE * xy[2 * (j % k)] + 0.5) as i64)
            .collect();
        let y: Vec<i64> = (0..=k)
            .map(|j| (SCALE * xy[2 * (j % k) + 1] + 0.5) as i64)
            .collect();
        // Every point of every edge on the upsampled grid, each edge walked along its longer
        // axis from its first to its last vertex.
        let n: usize = (0..k)
            .map(|j| (x[j] - x[j + 1]).abs().max((y[j] - y[j + 1]).abs()) as usize + 1)
            .sum();
        let mut u = Vec::with_capacity(n);
        let mut v = Vec::with_capacity(n);
        for j in 0..k {
            let (mut xs, mut xe, mut ys, mut ye) = (x[j], x[j + 1], y[j], y[j + 1]);
            let dx = (xe - xs).abs();
            let dy = (ys - ye).abs();
            let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
            if flip {
                std::mem::swap(&mut xs, &mut xe);
                std::mem::swap(&mut ys, &mut ye);
            }
            // 0 / 0 for a repeated vertex is NaN as in C; its single point never reaches the
            // boundary list (its column equals its neighbours').
            let s = if dx >= dy {
                (ye - ys) as f64 / dx as f64
            } else {
                (xe - xs) as f64 / dy as f64
            };
            if dx >= dy {
                for d in 0..=dx {
                    let t = if flip { dx - d } else { d };
                    u.push(t + xs);
                    v.push((ys as f64 + s * t as f64 + 0.5) as i64);
                }
            } else {
                for d in 0..=dy {
                    let t = if flip { dy - d } else { d };
                    v.push(t + ys);
                    u.push((xs as f64 + s * t as f64 + 0.5) as i64);
                }
            }
        }
        // Where the boundary crosses a pixel-center column: that column's y boundary.
        let (hf, wm1) = (h as f64, (w - 1) as f64);
        let mut a: Vec<u32> = Vec::new();
        for j in 1..u.len() {
            if u[j] == u[j - 1] {
                continue;
            }
            let xd = (if u[j] < u[j - 1] { u[j] } else { u[j] - 1 }) as f64;
            let xd = (xd + 0.5) / SCALE - 0.5;
            if xd.floor() != xd || xd < 0.0 || xd > wm1 {
                continue;
            }
            let yd = (if v[j] < v[j - 1] { v[j] } else { v[j - 1] }) as f64;
            let mut yd = (yd + 0.5) / SCALE - 0.5;
            if yd < 0.0 {
                yd = 0.0;
            } else if yd > hf {
                yd = hf;
            }
            let yd = yd.ceil();
            // 0 <= x <= w - 1 and 0 <= y <= h, so the index is at most h * w.
            a.push((xd as u64 * h as u64 + yd as u64) as u32);
        }
        a.push(h * w);
        // Sorted boundary positions -> run lengths; a position listed twice toggles twice,
        // so its empty run is dropped and its neighbours joined.
        a.sort_unstable();
        let mut prev = 0;
        for e in a.iter_mut() {
            let t = *e;
            *e -= prev;
            prev = t;
        }
        let mut counts = Vec::with_capacity(a.len());
        counts.push(a[0]);
        let mut j = 1;
        while j < a.len() {
            if a[j] > 0 {
                counts.push(a[j]);
                j += 1;
            } else {
                j += 1;
                if j < a.len() {
                    *counts.last_mut().expect("counts starts non-empty") += a[j];
                    j += 1;
                }
            }
        }
        Self::new(h, w, counts)
    }

    /// The union of several polygon parts (pycocotools `frPyObjects` + `merge`, as `annToRLE`
    /// does for a polygon segmentation).
    pub fn from_polygons(parts: &[Vec<f64>], h: u32, w: u32) -> Result<Self, RleError> {
        if parts.is_empty() {
            return err("segmentation has no polygons");
        }
        let rles = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Self::from_polygon(p, h, w).map_err(|e| RleError(format!("polygon {i}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::merge(&rles, false)
    }

    /// The box `[x, y, w, h]` as a mask (`rleFrBbox`: its corners as a polygon).
    pub fn from_bbox(bb: [f64; 4], h: u32, w: u32) -> Result<Self, RleError> {
        let (xs, ys) = (bb[0], bb[1]);
        let (xe, ye) = (xs + bb[2], ys + bb[3]);
        Self::from_polygon(&[xs, ys, xs, ye, xe, ye, xe, ys], h, w)
    }

    /// Union (or with `intersect`, intersection) of masks of one size (`rleMerge`, whose run
    /// layout it reproduces). An empty list gives a 0x0 mask.
    pub fn merge(rles: &[Rle], intersect: bool) -> Result<Self, RleError> {
        let Some(first) = rles.first() else {
            return Ok(Rle {
                h: 0,
                w: 0,
                counts: Vec::new(),
            });
        };
        let (h, w) = (first.h, first.w);
        if let Some((i, r)) = rles.iter().enumerate().find(|(_, r)| r.h != h || r.w != w) {
            return err(format!(
                "merge: mask {i} has size [{}, {}], mask 0 [{h}, {w}]",
                r.h, r.w
            ));
        }
        if rles.len() == 1 || h as u64 * w as u64 == 0 {
            return Ok(first.clone());
        }
        let mut acc = first.counts.clone();
        for b in &rles[1..] {
            let a = std::mem::take(&mut acc);
            let b = &b.counts;
            let mut out = Vec::with_capacity(a.len() + b.len());
            let (mut ca, mut cb) = (a[0], b[0]);
            let (mut v, mut va, mut vb) = (false, false, false);
            let (mut ia, mut ib) = (1, 1);
            let mut cc = 0u32;
            loop {
                let c = ca.min(cb);
                cc += c;
                ca -= c;
                if ca == 0 && ia < a.len() {
                    ca = a[ia];
                    ia += 1;
                    va = !va;
                }
                cb -= c;
                if cb == 0 && ib < b.len() {
                    cb = b[ib];
                    ib += 1;
                    vb = !vb;
                }
                let done = ca == 0 && cb == 0;
                let vp = v;
                v = if intersect { va && vb } else { va || vb };
                if v != vp || done {
                    out.push(cc);
                    cc = 0;
                }
                if done {
                    break;
                }
            }
            acc = out;
        }
        Self::new(h, w, acc)
    }

    /// Foreground pixels shared with `other` (same size), walking both run lists.
    pub fn intersection_area(&self, other: &Rle) -> u64 {
        let mut a = Ones::new(&self.counts);
        let mut b = Ones::new(&other.counts);
        let (mut ra, mut rb) = (a.next(), b.next());
        let mut inter = 0u64;
        while let (Some((sa, ea)), Some((sb, eb))) = (ra, rb) {
            let lo = sa.max(sb);
            let hi = ea.min(eb);
            if hi > lo {
                inter += hi - lo;
            }
            if ea <= eb {
                ra = a.next();
            } else {
                rb = b.next();
            }
        }
        inter
    }
}

/// The runs of ones of a count list as `[start, end)` pixel ranges (empty runs skipped).
struct Ones<'a> {
    counts: &'a [u32],
    i: usize,
    pos: u64,
}

impl<'a> Ones<'a> {
    fn new(counts: &'a [u32]) -> Self {
        Ones {
            counts,
            i: 0,
            pos: 0,
        }
    }
}

impl Iterator for Ones<'_> {
    type Item = (u64, u64);
    fn next(&mut self) -> Option<(u64, u64)> {
        while self.i + 1 < self.counts.len() {
            let start = self.pos + self.counts[self.i] as u64;
            let end = start + self.counts[self.i + 1] as u64;
            self.i += 2;
            self.pos = end;
            if end > start {
                return Some((start, end));
            }
        }
        None
    }
}

/// IoU of every detection mask with every ground-truth mask, `out[d * gt.len() + g]`
/// (pycocotools `maskUtils.iou` / `rleIou`): pairs whose `to_bbox` boxes do not overlap are 0
/// without touching the runs; a crowd ground truth divides the intersection by the detection's
/// area. Masks of different sizes that would be compared are an error (pycocotools returns -1).
pub fn iou(dt: &[&Rle], gt: &[&Rle], iscrowd: &[bool]) -> Result<Vec<f64>, RleError> {
    if iscrowd.len() != gt.len() {
        return err(format!(
            "iou: {} crowd flags for {} ground-truth masks",
            iscrowd.len(),
            gt.len()
        ));
    }
    let db: Vec<[f64; 4]> = dt.iter().map(|r| r.to_bbox()).collect();
    let gb: Vec<[f64; 4]> = gt.iter().map(|r| r.to_bbox()).collect();
    let da: Vec<u64> = dt.iter().map(|r| r.area()).collect();
    let n = gt.len();
    let mut out = vec![0.0; dt.len() * n];
    for (g, gr) in gt.iter().enumerate() {
        let ga = gr.area();
        for (d, dr) in dt.iter().enumerate() {
            if bb_iou(&db[d], &gb[g], iscrowd[g]) <= 0.0 {
                continue;
            }
            if dr.h != gr.h || dr.w != gr.w {
                return err(format!(
                    "iou: detection mask {d} has size [{}, {}], ground-truth mask {g} [{}, {}]",
                    dr.h, dr.w, gr.h, gr.w
                ));
            }
            let i = dr.intersection_area(gr);
            let u = if i == 0 {
                1
            } else if iscrowd[g] {
                da[d]
            } else {
                da[d] + ga - i
            };
            out[d * n + g] = i as f64 / u as f64;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        // 3 x 2, column-major: column 0 = 0 1 1, column 1 = 1 0 0.
        let m = [0u8, 1, 1, 1, 0, 0];
        let r = Rle::encode(&m, 3, 2).unwrap();
        assert_eq!(r.counts(), &[1, 3, 2]);
        assert_eq!(r.decode(), m);
        assert_eq!(r.area(), 3);
        assert_eq!(r.to_bbox(), [0.0, 0.0, 2.0, 3.0]);
        let s = r.to_coco_string();
        assert_eq!(Rle::from_string(&s, 3, 2).unwrap(), r);
    }

    #[test]
    fn string_errors() {
        assert!(Rle::from_string("1", 2, 2).unwrap_err().0.contains("sum"));
        assert!(Rle::from_string("4\u{7f}", 2, 2)
            .unwrap_err()
            .0
            .contains("character 1"));
        // 0x20 set on the last character: the value never ends.
        assert!(Rle::from_string("P", 2, 2)
            .unwrap_err()
            .0
            .contains("ends inside"));
        assert!(Rle::from_string("ooooooo0", 2, 2)
            .unwrap_err()
            .0
            .contains("7 characters"));
        // A negative first count.
        assert!(Rle::from_string("O", 2, 2).unwrap_err().0.contains("-1"));
    }

    #[test]
    fn intersection_matches_dense() {
        let a = Rle::new(4, 3, vec![1, 4, 2, 3, 2]).unwrap();
        let b = Rle::new(4, 3, vec![0, 2, 3, 6, 1]).unwrap();
        let (da, db) = (a.decode(), b.decode());
        let dense = da
            .iter()
            .zip(&db)
            .filter(|(x, y)| **x == 1 && **y == 1)
            .count() as u64;
        assert_eq!(a.intersection_area(&b), dense);
        let inter = Rle::merge(&[a.clone(), b.clone()], true).unwrap();
        assert_eq!(inter.area(), dense);
        let uni = Rle::merge(&[a.clone(), b.clone()], false).unwrap();
        assert_eq!(uni.area(), a.area() + b.area() - dense);
    }

    #[test]
    fn bad_sizes() {
        assert!(Rle::new(2, 2, vec![1, 2]).is_err());
        assert!(Rle::encode(&[0, 1], 2, 2).is_err());
        let a = Rle::zeros(2, 2).unwrap();
        let b = Rle::zeros(2, 3).unwrap();
        assert!(Rle::merge(&[a.clone(), b.clone()], false).is_err());
        let full = Rle::new(2, 3, vec![0, 6]).unwrap();
        let full2 = Rle::new(2, 2, vec![0, 4]).unwrap();
        assert!(iou(&[&full], &[&full2], &[false])
            .unwrap_err()
            .0
            .contains("size"));
        assert!(Rle::from_polygon(&[1.0, 2.0, 3.0], 5, 5)
            .unwrap_err()
            .0
            .contains("3 coordinates"));
        assert!(Rle::from_polygon(&[1.0, f64::NAN], 5, 5).is_err());
    }
}
