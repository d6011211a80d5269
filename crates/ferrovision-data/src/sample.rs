//! Samples: [`ImageSample`], a decoded image with its targets in pixel coordinates (what the
//! sources produce and augmentation transforms), and [`Sample`], the same as engine tensors
//! (what the model consumes), with batching and padded batching.

use crate::element::{Batchable, DataElement, PaddedBatchable};
use crate::image::{Image, Normalize};
use crate::{Error, Result};
use ferrovision_tensor::Tensor;

/// A decoded sample with its targets, in pixel coordinates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageSample {
    /// The image (HWC, 8-bit).
    pub image: Image<u8>,
    /// Boxes `[xmin, ymin, xmax, ymax]` in pixels (continuous coordinates, 0..width).
    pub boxes: Vec<[f32; 4]>,
    /// One class index per box.
    pub box_labels: Vec<i64>,
    /// Image-level class (classification).
    pub label: Option<i64>,
    /// Per-pixel class indices (segmentation), same size as the image, 1 channel.
    pub label_map: Option<Image<u8>>,
    /// One binary mask per box (instance segmentation), same size as the image.
    pub instance_masks: Vec<Image<u8>>,
    /// Sample weight for the loss.
    pub weight: f32,
    /// Where the sample came from.
    pub file_name: String,
}

impl Default for Image<u8> {
    fn default() -> Self {
        Image {
            width: 0,
            height: 0,
            channels: 3,
            data: Vec::new(),
        }
    }
}

impl DataElement for ImageSample {
    fn nbytes(&self) -> usize {
        self.image.data.len()
            + self.boxes.len() * 24
            + self.label_map.as_ref().map_or(0, |m| m.data.len())
            + self
                .instance_masks
                .iter()
                .map(|m| m.data.len())
                .sum::<usize>()
    }
}

impl ImageSample {
    /// A sample holding only an image.
    pub fn from_image(image: Image<u8>) -> Self {
        ImageSample {
            image,
            weight: 1.0,
            ..Default::default()
        }
    }

    /// Checks that targets agree with the image (boxes inside it, sizes match).
    pub fn validate(&self) -> Result<()> {
        let (w, h) = (self.image.width as f32, self.image.height as f32);
        let err = |m: String| Error::parse(&self.file_name, None, m);
        if self.boxes.len() != self.box_labels.len() {
            return Err(err(format!(
                "{} boxes but {} box labels",
                self.boxes.len(),
                self.box_labels.len()
            )));
        }
        for (i, b) in self.boxes.iter().enumerate() {
            if !(b.iter().all(|v| v.is_finite())
                && b[0] < b[2]
                && b[1] < b[3]
                && b[0] >= 0.0
                && b[1] >= 0.0
                && b[2] <= w
                && b[3] <= h)
            {
                return Err(err(format!(
                    "box {i} {b:?} is empty or outside the {w}x{h} image"
                )));
            }
        }
        for m in self.label_map.iter().chain(&self.instance_masks) {
            if m.width != self.image.width || m.height != self.image.height || m.channels != 1 {
                return Err(err(format!(
                    "mask is {}x{}x{}, image is {}x{}",
                    m.width, m.height, m.channels, self.image.width, self.image.height
                )));
            }
        }
        if !self.instance_masks.is_empty() && self.instance_masks.len() != self.boxes.len() {
            return Err(err(format!(
                "{} instance masks for {} boxes",
                self.instance_masks.len(),
                self.boxes.len()
            )));
        }
        Ok(())
    }

    /// Converts to engine tensors: image `[C, H, W]` f32 in [0, 1] (then normalised), boxes
    /// `[N, 4]` f32, box labels `[N]` i64, label `[]` i64, label map `[H, W]` i64, weight `[]`.
    pub fn to_sample(&self, norm: Option<&Normalize>) -> Result<Sample> {
        let n = self.boxes.len();
        Ok(Sample {
            image: Some(self.image.to_tensor_chw(norm)?),
            boxes: if n > 0 || !self.box_labels.is_empty() {
                Some(Tensor::from_vec(
                    self.boxes.iter().flatten().copied().collect::<Vec<f32>>(),
                    &[n, 4],
                )?)
            } else {
                None
            },
            box_labels: if n > 0 {
                Some(Tensor::from_vec(self.box_labels.clone(), &[n])?)
            } else {
                None
            },
            label: match self.label {
                Some(l) => Some(Tensor::from_vec(vec![l], &[])?),
                None => None,
            },
            mask: match &self.label_map {
                Some(m) => Some(Tensor::from_vec(
                    m.data.iter().map(|&v| v as i64).collect::<Vec<i64>>(),
                    &[m.height, m.width],
                )?),
                None => None,
            },
            weight: Some(Tensor::from_vec(vec![self.weight], &[])?),
            file_names: vec![self.file_name.clone()],
        })
    }
}

/// A sample as engine tensors (named components; `None` where the dataset has no such target).
/// Batching adds a leading axis to every tensor.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// `[C, H, W]` (batched `[B, C, H, W]`) f32.
    pub image: Option<Tensor>,
    /// `[N, 4]` boxes (batched and padded `[B, Nmax, 4]`).
    pub boxes: Option<Tensor>,
    /// `[N]` box classes (padded with -1).
    pub box_labels: Option<Tensor>,
    /// `[]` image class.
    pub label: Option<Tensor>,
    /// `[H, W]` class-index map.
    pub mask: Option<Tensor>,
    /// `[]` sample weight.
    pub weight: Option<Tensor>,
    /// File names (one per batched item).
    pub file_names: Vec<String>,
}

impl DataElement for Sample {
    fn nbytes(&self) -> usize {
        [
            &self.image,
            &self.boxes,
            &self.box_labels,
            &self.label,
            &self.mask,
            &self.weight,
        ]
        .iter()
        .map(|t| t.as_ref().map_or(0, |t| t.nbytes()))
        .sum()
    }
}

fn batch_field(
    items: &mut [Sample],
    get: impl Fn(&mut Sample) -> Option<Tensor>,
    pad: Option<f64>,
) -> Result<Option<Tensor>> {
    let v: Vec<Option<Tensor>> = items.iter_mut().map(get).collect();
    if v.iter().all(|t| t.is_none()) {
        return Ok(None);
    }
    if v.iter().any(|t| t.is_none()) {
        // Missing ragged components (no boxes) become empty lists so they pad like the others.
        if pad.is_none() {
            return Err(Error::invalid(
                "batch",
                "some samples lack a component that others have",
            ));
        }
    }
    match pad {
        None => Ok(Some(Tensor::batch(
            v.into_iter().map(|t| t.unwrap()).collect(),
        )?)),
        Some(p) => {
            let proto = v.iter().flatten().next().unwrap().clone();
            let mut empty_shape = proto.shape().to_vec();
            empty_shape[0] = 0;
            let filled: Vec<Tensor> = v
                .into_iter()
                .map(|t| t.unwrap_or_else(|| Tensor::zeros_dtype(&empty_shape, proto.dtype())))
                .collect();
            Ok(Some(Tensor::padded_batch(filled, &p)?))
        }
    }
}

impl Batchable for Sample {
    /// Stacks every component; boxes and box labels are padded (with 0 and -1) because their
    /// counts differ between images.
    fn batch(items: Vec<Self>) -> Result<Self> {
        Self::padded_batch(items, &SamplePad::default())
    }
}

/// Pad values for [`Sample`] padded batching.
#[derive(Debug, Clone)]
pub struct SamplePad {
    /// Pad for box coordinates.
    pub boxes: f64,
    /// Pad for box labels.
    pub box_labels: f64,
    /// Pad for the label map (when image sizes differ).
    pub mask: f64,
    /// Pad for image pixels (when image sizes differ).
    pub image: f64,
}

impl Default for SamplePad {
    fn default() -> Self {
        SamplePad {
            boxes: 0.0,
            box_labels: -1.0,
            mask: 255.0,
            image: 0.0,
        }
    }
}

impl PaddedBatchable for Sample {
    type Pad = SamplePad;
    fn padded_batch(mut items: Vec<Self>, pad: &SamplePad) -> Result<Self> {
        let same_image = items.windows(2).all(|w| match (&w[0].image, &w[1].image) {
            (Some(a), Some(b)) => a.shape() == b.shape(),
            _ => true,
        });
        let image = batch_field(
            &mut items,
            |s| s.image.take(),
            if same_image { None } else { Some(pad.image) },
        )?;
        let mask = batch_field(
            &mut items,
            |s| s.mask.take(),
            if same_image { None } else { Some(pad.mask) },
        )?;
        Ok(Sample {
            image,
            mask,
            boxes: batch_field(&mut items, |s| s.boxes.take(), Some(pad.boxes))?,
            box_labels: batch_field(&mut items, |s| s.box_labels.take(), Some(pad.box_labels))?,
            label: batch_field(&mut items, |s| s.label.take(), None)?,
            weight: batch_field(&mut items, |s| s.weight.take(), None)?,
            file_names: items.into_iter().flat_map(|s| s.file_names).collect(),
        })
    }
}
