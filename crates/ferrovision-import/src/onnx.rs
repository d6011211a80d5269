//! Reader for this source format: being written (issue 12).
