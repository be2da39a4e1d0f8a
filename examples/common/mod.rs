//! Code shared by the examples that is not part of the crate's API.

pub mod metrics;
