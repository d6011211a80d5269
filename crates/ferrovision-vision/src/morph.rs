//! Segmentation post-processing on 2-D masks and label maps (row-major, `width * height`):
//! binary morphology, connected components with per-component statistics, the exact Euclidean
//! distance transform, marker-based watershed, and instance maps from a class map.
//!
//! Conventions follow scikit-image / SciPy so results can be compared with them: erosion treats
//! pixels outside the image as foreground and dilation as background (nothing erodes at the
//! border); component labels are numbered in raster order of their first pixel.

use crate::error::{Result, VisionError};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Shape of a structuring element, all centred and symmetric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructuringElement {
    /// A `(2r+1) x (2r+1)` square (scikit-image `square(2r+1)`).
    Square(usize),
    /// A plus sign of arm length `r` (`r = 1` is scikit-image `diamond(1)`).
    Cross(usize),
    /// A disc `dx^2 + dy^2 <= r^2` (scikit-image `disk(r)`).
    Disk(usize),
}

impl StructuringElement {
    /// Offsets `(dx, dy)` of the element's pixels.
    pub fn offsets(&self) -> Vec<(isize, isize)> {
        let r = match *self {
            StructuringElement::Square(r)
            | StructuringElement::Cross(r)
            | StructuringElement::Disk(r) => r as isize,
        };
        let mut v = Vec::new();
        for dy in -r..=r {
            for dx in -r..=r {
                let inside = match self {
                    StructuringElement::Square(_) => true,
                    StructuringElement::Cross(_) => dx == 0 || dy == 0,
                    StructuringElement::Disk(_) => dx * dx + dy * dy <= r * r,
                };
                if inside {
                    v.push((dx, dy));
                }
            }
        }
        v
    }
}

fn check_len(op: &'static str, len: usize, width: usize, height: usize) -> Result<()> {
    if len != width * height {
        return Err(VisionError::invalid(
            op,
            format!("{len} pixels do not form a {width}x{height} image"),
        ));
    }
    Ok(())
}

fn morph(
    mask: &[bool],
    width: usize,
    height: usize,
    se: StructuringElement,
    erode: bool,
) -> Vec<bool> {
    let offs = se.offsets();
    let mut out = vec![false; mask.len()];
    for y in 0..height {
        for x in 0..width {
            let mut acc = erode;
            for &(dx, dy) in &offs {
                let (xx, yy) = (x as isize + dx, y as isize + dy);
                let v = if xx < 0 || yy < 0 || xx >= width as isize || yy >= height as isize {
                    erode // outside: foreground for erosion, background for dilation
                } else {
                    mask[yy as usize * width + xx as usize]
                };
                if erode && !v {
                    acc = false;
                    break;
                }
                if !erode && v {
                    acc = true;
                    break;
                }
            }
            out[y * width + x] = acc;
        }
    }
    out
}

/// Binary erosion: a pixel stays set when every element pixel around it is set.
pub fn erode(
    mask: &[bool],
    width: usize,
    height: usize,
    se: StructuringElement,
) -> Result<Vec<bool>> {
    check_len("erode", mask.len(), width, height)?;
    Ok(morph(mask, width, height, se, true))
}

/// Binary dilation: a pixel is set when any element pixel around it is set.
pub fn dilate(
    mask: &[bool],
    width: usize,
    height: usize,
    se: StructuringElement,
) -> Result<Vec<bool>> {
    check_len("dilate", mask.len(), width, height)?;
    Ok(morph(mask, width, height, se, false))
}

/// Opening (erosion then dilation): removes specks smaller than the element.
pub fn open(
    mask: &[bool],
    width: usize,
    height: usize,
    se: StructuringElement,
) -> Result<Vec<bool>> {
    let e = erode(mask, width, height, se)?;
    dilate(&e, width, height, se)
}

/// Closing (dilation then erosion): fills holes smaller than the element.
pub fn close(
    mask: &[bool],
    width: usize,
    height: usize,
    se: StructuringElement,
) -> Result<Vec<bool>> {
    let d = dilate(mask, width, height, se)?;
    erode(&d, width, height, se)
}

/// Statistics of one connected component.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// Its label in the label map (1-based).
    pub label: u32,
    /// The value of its pixels in the input (1 for a binary mask, the class for a class map).
    pub value: u32,
    /// Pixel count.
    pub area: usize,
    /// `[x_min, y_min, x_max + 1, y_max + 1]`.
    pub bbox: [usize; 4],
    /// Mean `(x, y)` of its pixels.
    pub centroid: (f64, f64),
}

fn find(p: &mut [u32], mut x: u32) -> u32 {
    while p[x as usize] != x {
        p[x as usize] = p[p[x as usize] as usize];
        x = p[x as usize];
    }
    x
}

/// Labels regions of equal value (4- or 8-connected), skipping pixels equal to `background`.
/// Labels are 1.., numbered in raster order of each region's first pixel (as SciPy's `label`);
/// background pixels get 0.
pub fn label_regions(
    values: &[u32],
    width: usize,
    height: usize,
    connectivity: u8,
    background: Option<u32>,
) -> Result<(Vec<u32>, Vec<Component>)> {
    check_len("label_regions", values.len(), width, height)?;
    if connectivity != 4 && connectivity != 8 {
        return Err(VisionError::invalid(
            "label_regions",
            format!("connectivity must be 4 or 8, got {connectivity}"),
        ));
    }
    let n = values.len();
    let mut prov = vec![0u32; n];
    let mut parent: Vec<u32> = vec![0];
    for y in 0..height {
        for x in 0..width {
            let i = y * width + x;
            let v = values[i];
            if Some(v) == background {
                continue;
            }
            let mut nb: [Option<usize>; 4] = [None; 4];
            if x > 0 {
                nb[0] = Some(i - 1);
            }
            if y > 0 {
                nb[1] = Some(i - width);
                if connectivity == 8 {
                    if x > 0 {
                        nb[2] = Some(i - width - 1);
                    }
                    if x + 1 < width {
                        nb[3] = Some(i - width + 1);
                    }
                }
            }
            let mut lab = 0u32;
            for j in nb.into_iter().flatten() {
                if values[j] != v || prov[j] == 0 {
                    continue;
                }
                let r = find(&mut parent, prov[j]);
                if lab == 0 {
                    lab = r;
                } else if r != lab {
                    let (a, b) = (lab.min(r), lab.max(r));
                    parent[b as usize] = a;
                    lab = a;
                }
            }
            if lab == 0 {
                lab = parent.len() as u32;
                parent.push(lab);
            }
            prov[i] = lab;
        }
    }
    // Final labels in raster order of first appearance.
    let mut remap = vec![0u32; parent.len()];
    let mut comps: Vec<Component> = Vec::new();
    let mut sums: Vec<(f64, f64)> = Vec::new();
    let mut labels = vec![0u32; n];
    for y in 0..height {
        for x in 0..width {
            let i = y * width + x;
            if prov[i] == 0 {
                continue;
            }
            let r = find(&mut parent, prov[i]) as usize;
            if remap[r] == 0 {
                comps.push(Component {
                    label: comps.len() as u32 + 1,
                    value: values[i],
                    area: 0,
                    bbox: [x, y, x + 1, y + 1],
                    centroid: (0.0, 0.0),
                });
                sums.push((0.0, 0.0));
                remap[r] = comps.len() as u32;
            }
            let l = remap[r];
            labels[i] = l;
            let c = &mut comps[l as usize - 1];
            c.area += 1;
            c.bbox[0] = c.bbox[0].min(x);
            c.bbox[1] = c.bbox[1].min(y);
            c.bbox[2] = c.bbox[2].max(x + 1);
            c.bbox[3] = c.bbox[3].max(y + 1);
            sums[l as usize - 1].0 += x as f64;
            sums[l as usize - 1].1 += y as f64;
        }
    }
    for (c, s) in comps.iter_mut().zip(sums) {
        c.centroid = (s.0 / c.area as f64, s.1 / c.area as f64);
    }
    Ok((labels, comps))
}

/// Connected components of a binary mask (4- or 8-connectivity).
pub fn connected_components(
    mask: &[bool],
    width: usize,
    height: usize,
    connectivity: u8,
) -> Result<(Vec<u32>, Vec<Component>)> {
    let v: Vec<u32> = mask.iter().map(|&b| u32::from(b)).collect();
    label_regions(&v, width, height, connectivity, Some(0))
}

/// Instance map from a semantic class map: every connected region of one class (other than
/// `background`) becomes an instance `1..`; returns the instance map and, per instance, its
/// component statistics (`value` is the class).
pub fn instances_from_class_map(
    classes: &[u32],
    width: usize,
    height: usize,
    background: Option<u32>,
    connectivity: u8,
) -> Result<(Vec<u32>, Vec<Component>)> {
    label_regions(classes, width, height, connectivity, background)
}

/// 1-D squared distance transform (Felzenszwalb & Huttenlocher) of `f` into `d`.
fn edt_1d(f: &[f64], d: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    let mut first = f[0].is_finite();
    if !first {
        // Skip leading infinite samples: they cannot be parabola vertices.
        let Some(s) = f.iter().position(|x| x.is_finite()) else {
            d.fill(f64::INFINITY);
            return;
        };
        v[0] = s;
        first = true;
    }
    let _ = first;
    for q in v[0] + 1..n {
        if !f[q].is_finite() {
            continue;
        }
        let qf = q as f64;
        loop {
            let p = v[k];
            let pf = p as f64;
            let s = ((f[q] + qf * qf) - (f[p] + pf * pf)) / (2.0 * qf - 2.0 * pf);
            if s <= z[k] {
                if k == 0 {
                    v[0] = q;
                    z[0] = f64::NEG_INFINITY;
                    z[1] = f64::INFINITY;
                    break;
                }
                k -= 1;
                continue;
            }
            k += 1;
            v[k] = q;
            z[k] = s;
            z[k + 1] = f64::INFINITY;
            break;
        }
    }
    let mut k = 0;
    for (q, dq) in d.iter_mut().enumerate() {
        let qf = q as f64;
        while z[k + 1] < qf {
            k += 1;
        }
        let p = v[k] as f64;
        *dq = (qf - p) * (qf - p) + f[v[k]];
    }
}

/// Exact Euclidean distance from every foreground pixel to the nearest background pixel (0 on
/// background), as SciPy's `distance_transform_edt`. Without any background pixel every
/// distance is infinite.
pub fn distance_transform(mask: &[bool], width: usize, height: usize) -> Result<Vec<f32>> {
    check_len("distance_transform", mask.len(), width, height)?;
    let mut g: Vec<f64> = mask
        .iter()
        .map(|&m| if m { f64::INFINITY } else { 0.0 })
        .collect();
    let n = width.max(height);
    let (mut f, mut d) = (vec![0.0; n], vec![0.0; n]);
    let (mut v, mut z) = (vec![0usize; n], vec![0.0; n + 1]);
    for x in 0..width {
        for y in 0..height {
            f[y] = g[y * width + x];
        }
        edt_1d(&f[..height], &mut d[..height], &mut v, &mut z);
        for y in 0..height {
            g[y * width + x] = d[y];
        }
    }
    for y in 0..height {
        f[..width].copy_from_slice(&g[y * width..(y + 1) * width]);
        edt_1d(&f[..width], &mut d[..width], &mut v, &mut z);
        for x in 0..width {
            g[y * width + x] = d[x];
        }
    }
    Ok(g.iter().map(|&s| s.sqrt() as f32).collect())
}

/// Marker-based watershed by priority flooding (scikit-image `watershed` with compactness 0):
/// markers (`> 0`) grow into their neighbours in order of increasing elevation, ties in order
/// of reaching; a pixel belongs to the first marker that reaches it. Pixels outside `mask` stay
/// 0. `connectivity` 4 or 8.
pub fn watershed(
    elevation: &[f32],
    markers: &[u32],
    width: usize,
    height: usize,
    mask: Option<&[bool]>,
    connectivity: u8,
) -> Result<Vec<u32>> {
    const OP: &str = "watershed";
    check_len(OP, elevation.len(), width, height)?;
    check_len(OP, markers.len(), width, height)?;
    if let Some(m) = mask {
        check_len(OP, m.len(), width, height)?;
    }
    if connectivity != 4 && connectivity != 8 {
        return Err(VisionError::invalid(
            OP,
            format!("connectivity must be 4 or 8, got {connectivity}"),
        ));
    }
    if let Some(i) = elevation.iter().position(|v| v.is_nan()) {
        return Err(VisionError::invalid(
            OP,
            format!("elevation pixel {i} is NaN"),
        ));
    }
    let inside = |i: usize| mask.is_none_or(|m| m[i]);
    let mut out: Vec<u32> = (0..markers.len())
        .map(|i| if inside(i) { markers[i] } else { 0 })
        .collect();
    // (elevation bits ordered, age, index): min-heap via Reverse.
    let key = |v: f32| -> i64 {
        let b = (v as f64).to_bits() as i64;
        if b < 0 {
            !(b & i64::MAX)
        } else {
            b
        }
    };
    let mut heap = BinaryHeap::new();
    for (i, &m) in out.iter().enumerate() {
        if m > 0 {
            heap.push(Reverse((key(elevation[i]), 0u64, i)));
        }
    }
    let nb4: [(isize, isize); 4] = [(0, -1), (-1, 0), (1, 0), (0, 1)];
    let nb8: [(isize, isize); 8] = [
        (-1, -1),
        (0, -1),
        (1, -1),
        (-1, 0),
        (1, 0),
        (-1, 1),
        (0, 1),
        (1, 1),
    ];
    let nbs: &[(isize, isize)] = if connectivity == 4 { &nb4 } else { &nb8 };
    let mut age = 0u64;
    while let Some(Reverse((_, _, i))) = heap.pop() {
        let (x, y) = ((i % width) as isize, (i / width) as isize);
        for &(dx, dy) in nbs {
            let (xx, yy) = (x + dx, y + dy);
            if xx < 0 || yy < 0 || xx >= width as isize || yy >= height as isize {
                continue;
            }
            let j = yy as usize * width + xx as usize;
            if !inside(j) || out[j] != 0 {
                continue;
            }
            age += 1;
            out[j] = out[i];
            heap.push(Reverse((key(elevation[j]), age, j)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_transform_of_a_line() {
        // One background pixel at the left end of a 1x5 row.
        let m = [false, true, true, true, true];
        assert_eq!(
            distance_transform(&m, 5, 1).unwrap(),
            vec![0.0, 1.0, 2.0, 3.0, 4.0]
        );
        let d = distance_transform(&[true, true], 2, 1).unwrap();
        assert!(d.iter().all(|v| v.is_infinite()));
    }

    #[test]
    fn components_4_vs_8() {
        #[rustfmt::skip]
        let m = [
            true, false, false,
            false, true, false,
            false, false, true,
        ];
        assert_eq!(connected_components(&m, 3, 3, 4).unwrap().1.len(), 3);
        let (l, c) = connected_components(&m, 3, 3, 8).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].bbox, [0, 0, 3, 3]);
        assert_eq!(l[8], 1);
        assert!(connected_components(&m, 3, 2, 4).is_err());
    }
}
