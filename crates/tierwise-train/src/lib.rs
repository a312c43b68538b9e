//! Training apart from serving: the fits that produce the files `tierwise-router` reads. Nothing
//! here is on a request's path; the gateway does not link this crate.
//!
//! # Layout
//! - [`router`]: the learned router's fit — L2-regularized logistic IRT (difficulty weights,
//!   per-model abilities and deviations, the transfer head) by full-batch L-BFGS.
//! - [`calibrate`]: thresholds of the learned router for a strong share, a budget or a quality
//!   target.
//! - [`scorer`]: the cascade answer scorer's logistic regression (Newton's method).
//! - `linalg`: the Cholesky solver the transfer head and the scorer share.
//!
//! Pure: no file or network I/O. `tierwise-eval` drives these fits over outcome data sets.

pub mod calibrate;
mod linalg;
pub mod router;
pub mod scorer;
