//! Live RTSP: a loopback gst-rtsp-server stands in for the camera; `rtspsrc ! rtph264depay !
//! h264parse ! vssdec ! vsssegment` must deliver every frame with its metas, over TCP and UDP,
//! from a live encoder and from the shipped clip, and the `rtsp_segment` example must run
//! against its own loopback server.

mod common;
#[path = "support/live.rs"]
mod live;
#[path = "support/rtsp_server.rs"]
mod rtsp_server;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use common::*;
use gstvss::meta::Branch;
use gstvss::motion::PictureType;
use live::{Watched, within};
use rtsp_server::{Backlog, LoopbackServer, file_launch, live_launch};

/// Generous bounds: a healthy run takes seconds per test, but a machine running other suites
/// can slow one down tenfold; only a deadlock should hit them.
const TEST_LIMIT: Duration = Duration::from_secs(300);
const WAIT: Duration = Duration::from_secs(120);

/// The client pipeline every test uses; `transport` is rtspsrc's `protocols`.
fn client(url: &str, transport: &str) -> String {
    format!(
        "rtspsrc location={url} latency=100 buffer-mode=none protocols={transport} ! rtph264depay \
         ! h264parse ! vssdec ! vsssegment overlay=none ! appsink name=sink"
    )
}

/// A live 25 fps camera: `frames` consecutive frames arrive, each with both metas, the first an
/// I-frame and a vsssegment keyframe, keyframes every 12 after it, P-frames with vectors.
fn assert_live_camera_frames(transport: &'static str) {
    within(
        &format!("live camera over {transport}"),
        TEST_LIMIT,
        move || {
            init();
            let server = LoopbackServer::start_with(&live_launch(320, 240, 25, 12), Backlog::Keep)
                .expect("RTSP server");
            let watched = Watched::new(&client(&server.url(), transport));
            watched.play();
            let frames = watched.wait_frames("36 frames", 0, 36, WAIT).frames.clone();
            watched.stop(WAIT);

            assert_eq!(frames[0].picture_type, Some(PictureType::I));
            for (i, f) in frames.iter().enumerate() {
                assert_eq!((f.width, f.height), (320, 240), "frame {i}");
                let seg = f.seg();
                assert_eq!(seg.keyframe, i % 12 == 0, "frame {i}: {seg:?}");
                assert_eq!(seg.distance as usize, i % 12, "frame {i}");
                let branch = if seg.keyframe {
                    Branch::Full
                } else {
                    Branch::Warp
                };
                assert_eq!(seg.branch, branch, "frame {i}");
                if f.picture_type == Some(PictureType::P) {
                    assert!(f.vectors > 0, "P-frame {i} without vectors");
                }
            }
            // Loopback loses nothing: consecutive frames are one frame (40 ms) apart in RTP time
            // (buffer-mode=none: timestamps from RTP, not re-timed by arrival on a busy machine).
            for (i, w) in frames.windows(2).enumerate() {
                let gap = ms(w[1].pts.unwrap() - w[0].pts.unwrap());
                assert!((gap - 40.0).abs() < 5.0, "frames {i}, {}: {gap} ms", i + 1);
            }
            // Latency depends on how busy the machine is: reported, not bounded.
            let mut latencies: Vec<f64> = frames.iter().filter_map(|f| f.latency).map(ms).collect();
            assert_eq!(latencies.len(), frames.len(), "frames without latency");
            latencies.sort_by(f64::total_cmp);
            eprintln!(
                "{transport}: latency ms min {:.1} median {:.1} max {:.1}",
                latencies[0],
                latencies[latencies.len() / 2],
                latencies[latencies.len() - 1]
            );
        },
    );
}

#[test]
fn live_camera_over_tcp_delivers_every_frame_with_metas() {
    assert_live_camera_frames("tcp");
}

#[test]
fn live_camera_over_udp_delivers_every_frame_with_metas() {
    assert_live_camera_frames("udp");
}

/// The shipped clip served as a camera: the frames that arrive are the clip's first frames,
/// pixel for pixel and vector for vector.
#[test]
fn served_clip_arrives_bit_exact_with_segmentation() {
    within("served clip", TEST_LIMIT, || {
        init();
        const N: usize = 40;
        let (local, _) = decode_frames(&format!(
            "filesrc location={} ! qtdemux ! h264parse ! vssdec ! appsink name=sink",
            dashcam().display()
        ));
        let server = LoopbackServer::start_with(&file_launch(&dashcam()), Backlog::Keep)
            .expect("RTSP server");
        let watched = Watched::new(&client(&server.url(), "tcp"));
        watched.play();
        let frames = watched.wait_frames("40 frames", 0, N, WAIT).frames.clone();
        watched.stop(WAIT);

        let by_checksum: HashMap<u64, usize> = local
            .iter()
            .enumerate()
            .map(|(i, f)| (f.checksum, i))
            .collect();
        for (i, f) in frames.iter().take(N).enumerate() {
            assert_eq!((f.width, f.height), (960, 540), "frame {i}");
            // Frame i over RTSP is frame i of the file: same pixels, same vectors.
            assert_eq!(
                by_checksum.get(&f.checksum),
                Some(&i),
                "frame {i} differs from the file's"
            );
            assert_eq!(f.vectors, local[i].vectors.len(), "frame {i} vectors");
            assert_eq!(f.picture_type, local[i].picture_type, "frame {i}");
            let seg = f.seg();
            assert_eq!((seg.keyframe, seg.distance as usize), (i % 12 == 0, i % 12));
        }
    });
}

/// One frame line of the example: (frame, picture type, key, distance).
fn parse_frame_line(line: &str) -> (u64, String, bool, u32, f64) {
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), 8, "{line}");
    (
        fields[0].parse().expect("frame"),
        fields[3].to_string(),
        fields[4] == "key",
        fields[6].parse().expect("distance"),
        fields[2].parse().expect("latency"),
    )
}

#[test]
fn rtsp_segment_example_serves_the_clip_and_reports_every_frame() {
    within("rtsp_segment example", TEST_LIMIT, || {
        init();
        let out = Command::new(example("rtsp_segment"))
            .arg("--serve-file")
            .arg(dashcam())
            .args(["--frames", "30", "--transport", "tcp", "--latency", "100"])
            .output()
            .expect("running rtsp_segment");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        eprintln!("{stdout}");
        let frames: Vec<_> = stdout
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(parse_frame_line)
            .collect();
        assert_eq!(frames.len(), 30);
        for (i, (frame, picture, key, distance, latency)) in frames.iter().enumerate() {
            assert_eq!(*frame, i as u64);
            assert_eq!(picture, if i == 0 { "I" } else { "P" }, "frame {i}");
            assert_eq!(
                (*key, *distance),
                (i % 12 == 0, (i % 12) as u32),
                "frame {i}"
            );
            assert!(*latency >= 0.0, "frame {i}");
        }
        let summary = stdout.lines().last().expect("summary");
        assert!(
            summary.starts_with("# 30 frames (3 keyframes), 0 dropped"),
            "{summary}"
        );
    });
}
