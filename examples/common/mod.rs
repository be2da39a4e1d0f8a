//! Code shared by the examples that is not part of the crate's API.

#![allow(dead_code)]

pub mod machine;
pub mod metrics;
pub mod stats;
