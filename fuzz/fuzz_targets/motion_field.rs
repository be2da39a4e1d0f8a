//! Arbitrary vectors and geometries through the motion field; see `targets/motion.rs`.
#![no_main]

#[path = "../targets/motion.rs"]
mod motion;

libfuzzer_sys::fuzz_target!(|data: &[u8]| motion::run(data));
