//! Reading results out of a [`CocoEval`]: pycocotools' 12-line summary (text and JSON),
//! per-category AP, precision-recall curves and their plot.

use super::eval::*;
use crate::error::Result;
use ferrovision_io::pyfmt::py_fixed;
use std::path::Path;

impl CocoEval {
    fn dims(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.params.iou_thrs.len(),
            self.params.rec_thrs.len(),
            self.categories.len(),
            self.params.area_rngs.len(),
            self.params.max_dets.len(),
        )
    }

    /// Mean of the entries > -1 for AP (`ap`) or AR, at IoU threshold index `t` (None: all),
    /// area index `a`, max-detections index `m`, categories `ks` (None: all); -1 when empty.
    /// The values are summed in NumPy's order (C order of the sliced array: threshold, recall,
    /// category) with NumPy's pairwise summation, so printed roundings agree with pycocotools.
    fn mean(&self, ap: bool, t: Option<usize>, a: usize, m: usize, ks: Option<usize>) -> f64 {
        let (t_n, r_n, k_n, a_n, m_n) = self.dims();
        let ts: Vec<usize> = t.map_or((0..t_n).collect(), |t| vec![t]);
        let kk: Vec<usize> = ks.map_or((0..k_n).collect(), |k| vec![k]);
        let mut vals = Vec::new();
        for &ti in &ts {
            if ap {
                for r in 0..r_n {
                    for &k in &kk {
                        vals.push(self.precision[(((ti * r_n + r) * k_n + k) * a_n + a) * m_n + m]);
                    }
                }
            } else {
                for &k in &kk {
                    vals.push(self.recall[((ti * k_n + k) * a_n + a) * m_n + m]);
                }
            }
        }
        vals.retain(|&v| v > -1.0);
        if vals.is_empty() {
            -1.0
        } else {
            numpy_pairwise_sum(&vals) / vals.len() as f64
        }
    }

    fn thr_index(&self, thr: f64) -> Option<usize> {
        self.params.iou_thrs.iter().position(|&t| t == thr)
    }

    pub(super) fn summarize(&self) -> [f64; 12] {
        let m_last = self.params.max_dets.len() - 1;
        let t50 = self.thr_index(0.5);
        let t75 = self.thr_index(0.75);
        let ap = |t: Option<usize>, a: usize| self.mean(true, t, a, m_last, None);
        let ar = |a: usize, m: usize| self.mean(false, None, a, m, None);
        [
            ap(None, 0),
            t50.map_or(-1.0, |t| ap(Some(t), 0)),
            t75.map_or(-1.0, |t| ap(Some(t), 0)),
            ap(None, 1),
            ap(None, 2),
            ap(None, 3),
            ar(0, 0),
            ar(0, 1),
            ar(0, m_last),
            ar(1, m_last),
            ar(2, m_last),
            ar(3, m_last),
        ]
    }

    /// The 12 lines pycocotools' `summarize()` prints.
    pub fn summary_text(&self) -> String {
        let p = &self.params;
        let md = |m: usize| p.max_dets[m];
        let m_last = p.max_dets.len() - 1;
        let rows: [(bool, Option<f64>, &str, usize); 12] = [
            (true, None, "all", md(m_last)),
            (true, Some(0.5), "all", md(m_last)),
            (true, Some(0.75), "all", md(m_last)),
            (true, None, "small", md(m_last)),
            (true, None, "medium", md(m_last)),
            (true, None, "large", md(m_last)),
            (false, None, "all", md(0)),
            (false, None, "all", md(1)),
            (false, None, "all", md(m_last)),
            (false, None, "small", md(m_last)),
            (false, None, "medium", md(m_last)),
            (false, None, "large", md(m_last)),
        ];
        let mut s = String::new();
        for (i, (ap, thr, area, max_det)) in rows.iter().enumerate() {
            let (title, ty) = if *ap {
                ("Average Precision", "(AP)")
            } else {
                ("Average Recall", "(AR)")
            };
            let iou = match thr {
                None => format!(
                    "{:.2}:{:.2}",
                    p.iou_thrs[0],
                    p.iou_thrs[p.iou_thrs.len() - 1]
                ),
                Some(t) => format!("{t:.2}"),
            };
            s.push_str(&format!(
                " {:<18} {} @[ IoU={:<9} | area={:>6} | maxDets={:>3} ] = {}\n",
                title,
                ty,
                iou,
                area,
                max_det,
                py_fixed(self.stats[i], 3)
            ));
        }
        s
    }

    /// The 12 numbers as one JSON object with keys [`STAT_KEYS`].
    pub fn summary_json(&self) -> String {
        let body: Vec<String> = STAT_KEYS
            .iter()
            .zip(self.stats)
            .map(|(k, v)| format!("\"{k}\": {}", json_num(v)))
            .collect();
        format!("{{{}}}", body.join(", "))
    }

    /// AP@[.5:.95] (all areas, 100 detections) per category: `(id, name, ap)`, `ap = -1` for a
    /// category without ground truth.
    pub fn per_category_ap(&self) -> Vec<(i64, String, f64)> {
        let m_last = self.params.max_dets.len() - 1;
        self.categories
            .iter()
            .enumerate()
            .map(|(k, (id, name))| (*id, name.clone(), self.mean(true, None, 0, m_last, Some(k))))
            .collect()
    }

    /// Interpolated precision at the 101 recall thresholds for category index `k` at IoU
    /// threshold `iou` (e.g. 0.5), all areas, 100 detections: `(recall, precision)` points,
    /// empty if the category has no ground truth or the threshold is not on the grid.
    pub fn pr_curve(&self, k: usize, iou: f64) -> Vec<(f64, f64)> {
        let (_, r_n, k_n, a_n, m_n) = self.dims();
        let Some(t) = self
            .params
            .iou_thrs
            .iter()
            .position(|&x| (x - iou).abs() < 1e-9)
        else {
            return Vec::new();
        };
        if k >= k_n {
            return Vec::new();
        }
        let m = m_n - 1;
        let pts: Vec<(f64, f64)> = (0..r_n)
            .map(|r| {
                (
                    self.params.rec_thrs[r],
                    self.precision[(((t * r_n + r) * k_n + k) * a_n) * m_n + m],
                )
            })
            .collect();
        if pts.iter().all(|p| p.1 < 0.0) {
            Vec::new()
        } else {
            pts
        }
    }

    /// Writes the precision-recall curves (IoU `iou`, all areas, 100 detections) of the
    /// categories with ground truth, at most `max_curves` of them, as a PNG plot.
    pub fn save_pr_curves(&self, path: &Path, iou: f64, max_curves: usize) -> Result<()> {
        let curves: Vec<(String, Vec<(f64, f64)>)> = (0..self.categories.len())
            .map(|k| (self.categories[k].1.clone(), self.pr_curve(k, iou)))
            .filter(|c| !c.1.is_empty())
            .take(max_curves)
            .collect();
        crate::draw::pr_curve_png(&curves, path, 480)
    }

    /// A per-category AP table (AP@[.5:.95] and AP50), one row per category.
    pub fn per_category_table(&self) -> String {
        let (_, r_n, k_n, a_n, m_n) = self.dims();
        let t50 = self.thr_index(0.5);
        let mut s = format!("{:<24} {:>8} {:>8}\n", "category", "AP", "AP50");
        for (k, (id, name, ap)) in self.per_category_ap().into_iter().enumerate() {
            let ap50 = t50.map_or(-1.0, |t| {
                let vals: Vec<f64> = (0..r_n)
                    .map(|r| self.precision[(((t * r_n + r) * k_n + k) * a_n) * m_n + m_n - 1])
                    .filter(|&v| v > -1.0)
                    .collect();
                if vals.is_empty() {
                    -1.0
                } else {
                    vals.iter().sum::<f64>() / vals.len() as f64
                }
            });
            let label = format!("{name} ({id})");
            s.push_str(&format!("{label:<24} {ap:>8.4} {ap50:>8.4}\n"));
        }
        s
    }
}

pub(crate) fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}
