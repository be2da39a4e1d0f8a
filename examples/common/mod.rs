//! Code shared by the examples that is not part of the crate's API.

#![allow(dead_code)]

pub mod agreement;
pub mod decode;
#[path = "../../tests/support/helpers.rs"]
pub mod helpers;
pub mod machine;
pub mod metrics;
pub mod motion_eval;
pub mod multicam;
pub mod provenance;
pub mod speed;
pub mod stats;
