//! Arbitrary bytes as H.264 through `appsrc ! h264parse ! vssdec ! appsink`; see
//! `targets/h264.rs`.
#![no_main]

#[path = "../targets/h264.rs"]
mod h264;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    h264::run_element(data, std::time::Duration::from_secs(20));
});
