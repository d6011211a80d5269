//! Feeding a `ferrovision_data::Dataset` pipeline to `fit`: batched pipelines of
//! `(inputs, targets)` or `(inputs, targets, sample_weights)` are [`BatchSource`]s. Pipeline
//! errors keep their typed `ferrovision_data::Error` as the source of [`Error::Data`].

use crate::{Batch, BatchSource, Error, Result};
use ferrovision_tensor::Tensor;

/// A batched pipeline of `(inputs, targets)` trains a single-input, single-output model:
/// `model.fit_source(&mut dataset, None, &opts, callbacks)`. The pipeline's own `shuffle`
/// reshuffles each epoch.
impl BatchSource for ferrovision_data::Dataset<(Tensor, Tensor)> {
    fn batches(&mut self, _epoch: usize) -> Result<Box<dyn Iterator<Item = Result<Batch>> + '_>> {
        Ok(Box::new(self.iter().map(|r| {
            let (x, y) = r.map_err(Error::data)?;
            Ok(Batch {
                inputs: vec![x],
                targets: vec![y],
                sample_weight: None,
            })
        })))
    }
}

/// A batched pipeline of `(inputs, targets, sample_weights)`.
impl BatchSource for ferrovision_data::Dataset<(Tensor, Tensor, Tensor)> {
    fn batches(&mut self, _epoch: usize) -> Result<Box<dyn Iterator<Item = Result<Batch>> + '_>> {
        Ok(Box::new(self.iter().map(|r| {
            let (x, y, w) = r.map_err(Error::data)?;
            Ok(Batch {
                inputs: vec![x],
                targets: vec![y],
                sample_weight: Some(w),
            })
        })))
    }
}
