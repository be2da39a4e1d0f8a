//! Arbitrary bytes as H.264 through `codec::Decoder` and a motion track; see `targets/h264.rs`.
#![no_main]

#[path = "../targets/h264.rs"]
mod h264;

libfuzzer_sys::fuzz_target!(|data: &[u8]| h264::decode(data));
