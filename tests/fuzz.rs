//! Seeded fuzzing in the normal test run: the bodies of the cargo-fuzz targets in `fuzz/` on
//! deterministic pseudo-random inputs, a bounded number per test. Motion fields get random
//! vectors and geometries; the decoder and the element get valid x264 streams with random
//! damage (bit flips, cut, duplicated or swapped NAL units, splices of two resolutions, start
//! codes in odd places, pure noise).
//!
//! `VSS_FUZZ_SECS=N` runs each test for N seconds instead (the longer mode), `VSS_FUZZ_SEED=S`
//! starts from another seed. A failing input is written to `target/fuzz-findings/`; replay it
//! with `VSS_FUZZ_REPLAY_<TARGET>=FILE` (e.g. `VSS_FUZZ_REPLAY_VSSDEC_ELEMENT`) or
//! `cargo fuzz run TARGET FILE` (see `fuzz/README.md`).

mod common;
#[path = "../fuzz/targets/h264.rs"]
mod h264;
#[path = "support/live.rs"]
mod live;
#[path = "../fuzz/targets/motion.rs"]
mod motion;

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use live::Rng;

/// How long a test runs: `iterations` inputs, or `VSS_FUZZ_SECS` seconds.
fn budget(iterations: u64) -> (Option<Duration>, u64) {
    match std::env::var("VSS_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(secs) => (Some(Duration::from_secs(secs)), u64::MAX),
        None => (None, iterations),
    }
}

fn seed() -> u64 {
    std::env::var("VSS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0f0f_5eed)
}

/// Runs `body` on `make(rng)` inputs within the budget; a failing input is saved and named.
fn drive(
    target: &str,
    iterations: u64,
    mut make: impl FnMut(&mut Rng) -> Vec<u8>,
    body: impl Fn(&[u8]),
) -> u64 {
    if let Ok(path) = std::env::var(format!("VSS_FUZZ_REPLAY_{}", target.to_uppercase())) {
        let input = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        body(&input);
        eprintln!("{target}: replayed {path}");
        return 1;
    }
    let (time, iterations) = budget(iterations);
    let seed = seed();
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut execs = 0u64;
    while execs < iterations && time.is_none_or(|t| started.elapsed() < t) {
        let input = make(&mut rng);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(&input))) {
            let dir = root().join("target/fuzz-findings");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{target}-{seed:x}-{execs}.bin"));
            let _ = std::fs::write(&path, &input);
            eprintln!(
                "{target}: input {execs} of seed {seed:#x} failed; saved as {}",
                path.display()
            );
            resume_unwind(panic);
        }
        execs += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{target}: {execs} inputs in {secs:.1} s ({:.0}/s), seed {seed:#x}",
        execs as f64 / secs
    );
    execs
}

fn random_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    let n = rng.below(max + 1);
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

#[test]
fn motion_field_survives_seeded_random_vectors() {
    // Inputs of a few hundred bytes: a geometry and a handful of frames of vectors.
    let execs = drive(
        "motion_field",
        5000,
        |rng| random_bytes(rng, 1200),
        motion::run,
    );
    assert!(execs > 0);
}

/// Small valid H.264 streams (byte-stream) to damage: P-only CAVLC, CABAC with B-frames, and
/// another size, so that splices change the resolution mid-stream.
fn seed_streams() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        init();
        let dir = scratch("fuzz-seeds");
        [
            ("p-only", 64, 48, "bframes=0 cabac=false key-int-max=6"),
            ("b-frames", 96, 64, "bframes=2 b-adapt=false key-int-max=8"),
            ("other-size", 48, 80, "bframes=0 key-int-max=5 ref=2"),
        ]
        .iter()
        .map(|(name, w, h, options)| {
            let path = dir.join(format!("{name}.h264"));
            encode(
                &format!(
                    "videotestsrc num-buffers=14 pattern=pinwheel horizontal-speed=3 \
                     ! video/x-raw,format=I420,width={w},height={h},framerate=25/1 \
                     ! x264enc speed-preset=ultrafast {options} ! h264parse \
                     ! video/x-h264,stream-format=byte-stream ! filesink location={{out}}"
                ),
                &path,
            );
            std::fs::read(&path).expect("seed stream")
        })
        .collect()
    })
}

/// One damaged stream: a seed with one to four random mutations, or (1 in 16) noise with start
/// codes in it. The first byte is the targets' setup byte.
fn damaged_stream(rng: &mut Rng) -> Vec<u8> {
    let seeds = seed_streams();
    let mut data = seeds[rng.below(seeds.len())].clone();
    if rng.below(16) == 0 {
        data = random_bytes(rng, 4000);
        for _ in 0..rng.below(8) {
            let at = rng.below(data.len());
            let nal = [0, 0, 1, rng.next_u64() as u8];
            data.splice(at..at, nal);
        }
    }
    for _ in 0..1 + rng.below(4) {
        let len = data.len().max(1);
        match rng.below(8) {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(len);
                    if let Some(b) = data.get_mut(at) {
                        *b ^= 1 << rng.below(8);
                    }
                }
            }
            1 => {
                for _ in 0..1 + rng.below(16) {
                    let at = rng.below(len);
                    if let Some(b) = data.get_mut(at) {
                        *b = rng.next_u64() as u8;
                    }
                }
            }
            2 => {
                let from = rng.below(len);
                let to = (from + rng.below(200)).min(data.len());
                data.drain(from.min(to)..to);
            }
            3 => {
                let from = rng.below(len);
                let to = (from + rng.below(400)).min(data.len());
                let piece: Vec<u8> = data[from.min(to)..to].to_vec();
                let at = rng.below(data.len() + 1);
                data.splice(at..at, piece);
            }
            4 => data.truncate(rng.below(len)),
            5 => {
                // A splice of another seed: a resolution change or a stream cut mid-GOP.
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(data.len() + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            6 => {
                // Whole NAL units dropped, repeated or swapped.
                let units: Vec<Vec<u8>> = h264::nal_units(&data)
                    .into_iter()
                    .map(<[u8]>::to_vec)
                    .collect();
                let mut units = units;
                if units.len() > 1 {
                    let (i, j) = (rng.below(units.len()), rng.below(units.len()));
                    match rng.below(3) {
                        0 => {
                            units.remove(i);
                        }
                        1 => {
                            let unit = units[i].clone();
                            units.insert(j, unit);
                        }
                        _ => units.swap(i, j),
                    }
                }
                data = units.concat();
            }
            _ => {
                let at = rng.below(data.len() + 1);
                data.splice(at..at, [0, 0, 0, 1]);
            }
        }
    }
    data.insert(0, rng.next_u64() as u8);
    data
}

#[test]
fn codec_decoder_survives_damaged_h264() {
    let execs = drive("h264_decoder", 1000, damaged_stream, h264::decode);
    assert!(execs > 0);
}

#[test]
fn vssdec_element_survives_damaged_h264() {
    // Every run must end (EOS or a permitted error) within the limit; the first undamaged
    // seed must also come out whole, so that the target is known to decode at all.
    h264::init();
    let mut whole = vec![0u8];
    whole.extend_from_slice(&seed_streams()[0]);
    let run = h264::run_element(&whole, Duration::from_secs(30));
    assert_eq!(run.frames, 14, "the undamaged seed through vssdec");
    let (frames, warnings) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let execs = drive("vssdec_element", 600, damaged_stream, |input| {
        let run = h264::run_element(input, Duration::from_secs(30));
        frames.set(frames.get() + run.frames);
        warnings.set(warnings.get() + run.warnings);
    });
    eprintln!(
        "vssdec_element: {} frames and {} warnings over {execs} inputs",
        frames.get(),
        warnings.get()
    );
    assert!(execs > 0);
}

// ---------------------------------------------------------------------------------------------
// Findings

/// The first seed's access units (byte-stream, one per buffer, timestamped) and their caps.
fn seed_access_units() -> (gst::Caps, Vec<gst::Buffer>) {
    init();
    let path = scratch("fuzz-access-units").join("seed.h264");
    std::fs::write(&path, &seed_streams()[0]).expect("writing the seed");
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! video/x-h264,stream-format=byte-stream,framerate=25/1 \
         ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! appsink name=sink sync=false",
        path.display()
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let sink = pipeline
        .by_name("sink")
        .expect("appsink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink");
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let mut caps = None;
    let mut units = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        caps.get_or_insert_with(|| sample.caps().expect("caps").to_owned());
        units.push(sample.buffer_owned().expect("buffer"));
    }
    pipeline.set_state(gst::State::Null).expect("NULL");
    (caps.expect("no access units"), units)
}

/// Decodes `units` with `caps` through `decoder` in a harness: the frames that come out.
fn harness_decode(decoder: &str, caps: &gst::Caps, units: &[gst::Buffer]) -> usize {
    let mut h = gst_check::Harness::new(decoder);
    h.set_src_caps(caps.clone());
    h.play();
    for (i, unit) in units.iter().enumerate() {
        if let Err(flow) = h.push(unit.clone()) {
            panic!("{decoder}: access unit {i}: {flow:?} with caps {caps}");
        }
    }
    assert!(h.push_event(gst::event::Eos::new()));
    std::iter::from_fn(|| h.try_pull()).count()
}

/// Found by `vssdec_element`: a damaged SPS whose VUI timing overflows makes h264parse announce
/// a negative frame rate (the finding's: -335544270/6). avdec_h264 decodes on; vssdec refused
/// the caps (its src template's frame-rate range was proxied upstream), so upstream stopped the
/// whole pipeline with not-negotiated. Over RTSP the parameter sets repeat at every IDR, so one
/// corrupt packet could end a camera's stream.
#[test]
fn negative_framerate_from_a_corrupt_sps_decodes_like_avdec_h264() {
    let (caps, units) = seed_access_units();
    let mut caps = caps;
    caps.make_mut()
        .set("framerate", gst::Fraction::new(-335_544_270, 6));
    assert_eq!(harness_decode("avdec_h264", &caps, &units), units.len());
    assert_eq!(harness_decode("vssdec", &caps, &units), units.len());
}
