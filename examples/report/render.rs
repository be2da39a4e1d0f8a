//! report.json -> report.md, the README's results block and the headline ratios.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::data::*;

/// A plot models/report_plots.py writes, and what report.md calls it.
pub struct Plot {
    pub file: &'static str,
    pub title: &'static str,
}

pub const MIOU_VS_MS: Plot = Plot {
    file: "miou_vs_ms.png",
    title: "mIoU vs ms/frame on camvid-motion",
};
pub const MIOU_VS_DISTANCE: Plot = Plot {
    file: "miou_vs_distance.png",
    title: "mIoU vs distance from the keyframe",
};
pub const SPEED: Plot = Plot {
    file: "speed.png",
    title: "frames per second per configuration",
};
pub const DECODERS: Plot = Plot {
    file: "decoders.png",
    title: "decoder throughput",
};
pub const PLOTS: [Plot; 4] = [MIOU_VS_MS, MIOU_VS_DISTANCE, SPEED, DECODERS];

pub const README_BEGIN: &str = "<!-- report:begin -->";
pub const README_END: &str = "<!-- report:end -->";

/// The three ratios the report leads with.
pub struct Headline {
    /// The fastest non-`full` mode of the default bundle on the shipped clip: its fps over
    /// full's, and the camvid-motion mIoU of both (P encode).
    pub best_mode: Option<BestMode>,
    /// vss `full` fps over the Python per-frame baseline's, shipped clip.
    pub full_vs_python: Option<f64>,
    /// vssdec (vectors exported) fps over avdec_h264's, shipped clip.
    pub vssdec_vs_avdec: Option<f64>,
}

pub struct BestMode {
    pub mode: String,
    pub speedup: f64,
    pub miou: Option<f64>,
    pub full_miou: Option<f64>,
    /// Where the two mIoU come from: real motion when the report has it.
    pub accuracy_on: &'static str,
}

fn default_bundle() -> &'static str {
    gstvss::model::DEFAULT_BUNDLE
}

fn shipped_speed(report: &Report) -> Option<&SpeedClip> {
    report.speed.iter().find(|c| c.shipped)
}

fn vss_row<'a>(clip: &'a SpeedClip, bundle: &str, mode: &str) -> Option<&'a SpeedRow> {
    clip.rows.iter().find(|r| {
        r.kind == "vss"
            && r.bundle.as_deref() == Some(bundle)
            && r.mode.as_deref() == Some(mode)
            && r.variant.is_none()
    })
}

fn motion_miou(report: &Report, bundle: &str, encode: &str, mode: &str) -> Option<f64> {
    section_run(&report.motion, bundle, encode, mode).and_then(|r| r.miou)
}

fn section_run<'a>(
    section: &'a MotionSection,
    bundle: &str,
    encode: &str,
    mode: &str,
) -> Option<&'a MotionRun> {
    section
        .runs
        .iter()
        .find(|r| r.bundle == bundle && r.encode == encode && r.mode == mode)
}

fn mean_ms(run: &MotionRun) -> Option<f64> {
    run.compute_ms.map(|t| t.mean)
}

/// Per bundle and encode of the real-motion section: `full`, and the most accurate other row
/// whose mean time per frame is at most 30% of `full`'s (the goal), if any.
pub fn real_motion_goal(
    section: &MotionSection,
) -> Vec<(String, String, &MotionRun, Option<&MotionRun>)> {
    let mut out = Vec::new();
    for full in section.runs.iter().filter(|r| r.mode == "full") {
        let cap = mean_ms(full).map(|m| 0.3 * m);
        let best = section
            .runs
            .iter()
            .filter(|r| r.bundle == full.bundle && r.encode == full.encode && r.mode != "full")
            .filter(|r| mean_ms(r).zip(cap).is_some_and(|(m, c)| m <= c))
            .max_by(|a, b| a.miou.unwrap_or(0.0).total_cmp(&b.miou.unwrap_or(0.0)));
        out.push((full.bundle.clone(), full.encode.clone(), full, best));
    }
    out
}

/// The real-motion section: its table, the correction curve and the goal.
fn real_motion_markdown(out: &mut String, report: &Report) {
    let Some(m) = &report.real_motion else {
        return;
    };
    let _ = writeln!(out, "## Accuracy: real motion (camvid-real)\n");
    let _ = writeln!(
        out,
        "CamVid's val sequence 0016E5 as video: {} consecutive frames at 15 Hz, each with its \
         hand-made label, encoded by models/camvid_real.py (x264, `p` P-only ref=1, `b` \
         B-frames, I-frame every 12 or 6 frames: p12, b12, p6, b6), each through `vssdec \
         thread-type={} ! vsssegment {} keyframe-interval={} overlay=none`; `warp@B` is warp \
         with `correction-budget=B`. Objects move on their own here, so these are the numbers \
         to choose by; camvid-motion below moves a camera over still images. None of these \
         frames is in CamVid's train split; camvid-cgnet's upstream weights saw val, so its \
         absolute numbers are inflated (its loss from `full` is what counts). ms/frame = the \
         segmentation meta's compute time; share = mean ms / `full`'s mean ms.\n",
        m.frames_per_sequence, m.decoder_thread_type, m.policy, m.keyframe_interval
    );
    let _ = writeln!(
        out,
        "| bundle | encode | mode | mIoU | vs full (points) | keyframes | ms/frame mean | share of full | p99 | max |\n\
         | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in &m.runs {
        let full = section_run(m, &r.bundle, &r.encode, "full");
        let delta = r
            .miou
            .zip(full.and_then(|f| f.miou))
            .map(|(a, f)| 100.0 * (a - f));
        let share = mean_ms(r).zip(full.and_then(mean_ms)).map(|(a, f)| a / f);
        let t = r.compute_ms.unwrap_or(Timing {
            mean: f64::NAN,
            p50: f64::NAN,
            p99: f64::NAN,
            max: f64::NAN,
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.1}% | {} | {} | {} | {} |",
            r.bundle,
            r.encode,
            r.mode,
            pct(r.miou),
            signed(delta),
            100.0 * r.keyframes as f64 / r.frames.max(1) as f64,
            ms(t.mean),
            share.map_or("—".into(), |v| format!("{:.0}%", 100.0 * v)),
            ms(t.p99),
            ms(t.max),
        );
    }
    let _ = writeln!(
        out,
        "\n**Goal** (issue 18): a mode other than `full` within 1.0 mIoU of `full` at no more \
         than 30% of its mean time per frame:\n\n\
         | bundle | encode | full | best mode within 30% of full's time | its mIoU | vs full | met |\n\
         | --- | --- | ---: | --- | ---: | ---: | --- |"
    );
    for (bundle, encode, full, best) in real_motion_goal(m) {
        let delta = best
            .and_then(|b| b.miou)
            .zip(full.miou)
            .map(|(a, f)| 100.0 * (a - f));
        let _ = writeln!(
            out,
            "| {bundle} | {encode} | {} | {} | {} | {} | {} |",
            pct(full.miou),
            best.map_or("none".into(), |b| format!("`{}`", b.mode)),
            pct(best.and_then(|b| b.miou)),
            signed(delta),
            if delta.is_some_and(|d| d >= -1.0) {
                "yes"
            } else {
                "no"
            }
        );
    }
    out.push('\n');
    distance_table(out, m);
}

pub fn headline(report: &Report) -> Headline {
    let bundle = default_bundle();
    let clip = shipped_speed(report);
    let full = clip.and_then(|c| vss_row(c, bundle, "full"));
    let best_mode = clip.zip(full).and_then(|(c, full)| {
        c.rows
            .iter()
            .filter(|r| {
                r.kind == "vss"
                    && r.bundle.as_deref() == Some(bundle)
                    && r.variant.is_none()
                    && r.mode.as_deref() != Some("full")
            })
            .max_by(|a, b| a.fps.total_cmp(&b.fps))
            .map(|r| {
                let mode = r.mode.clone().unwrap_or_default();
                // Real motion (P-only, I-frame every 12) when measured, else camvid-motion's P.
                let real = |m: &str| {
                    report
                        .real_motion
                        .as_ref()
                        .and_then(|s| section_run(s, bundle, "p12", m))
                };
                let (miou, full_miou, accuracy_on) = match (real(&mode), real("full")) {
                    (Some(r), Some(f)) => (r.miou, f.miou, "real-motion (camvid-real p12)"),
                    _ => (
                        motion_miou(report, bundle, "p", &mode),
                        motion_miou(report, bundle, "p", "full"),
                        "camvid-motion (P encode)",
                    ),
                };
                BestMode {
                    miou,
                    full_miou,
                    accuracy_on,
                    speedup: r.fps / full.fps,
                    mode,
                }
            })
    });
    let python = clip.and_then(|c| c.rows.iter().find(|r| r.kind == "python"));
    let full_vs_python = full.zip(python).map(|(f, p)| f.fps / p.fps);
    let decode = report.decoders.iter().find(|c| c.shipped);
    let fps =
        |name: &str| decode.and_then(|c| c.rows.iter().find(|r| r.name == name).map(|r| r.fps));
    let vssdec_vs_avdec = fps("vssdec export-mvs=true")
        .zip(fps("avdec_h264"))
        .map(|(v, a)| v / a);
    Headline {
        best_mode,
        full_vs_python,
        vssdec_vs_avdec,
    }
}

fn pct(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map_or("—".into(), |v| format!("{:.2}", 100.0 * v))
}

fn ms(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "—".into()
    }
}

fn ratio(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map_or("—".into(), |v| format!("{v:.2}x"))
}

fn signed(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map_or("—".into(), |v| format!("{v:+.2}"))
}

/// The headline as sentences (report.md and the README share them).
fn headline_lines(report: &Report) -> Vec<String> {
    let h = headline(report);
    let clip = shipped_speed(report).map_or("the shipped clip".into(), |c| {
        format!("{} ({}x{})", c.clip, c.width, c.height)
    });
    let bundle = default_bundle();
    let mut lines = Vec::new();
    lines.push(match &h.best_mode {
        Some(b) => format!(
            "**Best mode vs `full`**: `{}` runs at **{:.2}x** the frames per second of `full` \
             ({bundle}, {clip}), its {} mIoU differing by **{} points** ({} vs {}).",
            b.mode,
            b.speedup,
            b.accuracy_on,
            signed(b.miou.zip(b.full_miou).map(|(m, f)| 100.0 * (m - f))),
            pct(b.miou),
            pct(b.full_miou),
        ),
        None => "**Best mode vs `full`**: not measured in this run.".into(),
    });
    lines.push(match h.full_vs_python {
        Some(r) => format!(
            "**vss `full` vs the Python per-frame baseline** (PyAV decode + the same TorchScript \
             bundle on every frame): **{r:.2}x** the frames per second ({clip})."
        ),
        None => "**vss `full` vs the Python per-frame baseline**: not measured.".into(),
    });
    let decode_clip = report
        .decoders
        .iter()
        .find(|c| c.shipped)
        .map_or("the shipped clip".into(), |c| {
            format!("{} ({}x{})", c.clip, c.width, c.height)
        });
    lines.push(match h.vssdec_vs_avdec {
        Some(r) => format!(
            "**vssdec vs avdec_h264**: **{r:.2}x** the decode throughput, with motion vectors \
             exported ({decode_clip})."
        ),
        None => "**vssdec vs avdec_h264**: not measured.".into(),
    });
    lines
}

pub fn report_markdown(report: &Report) -> String {
    let mut out = String::new();
    let env = &report.environment;
    let _ = writeln!(out, "# vss benchmark and evaluation report\n");
    let _ = writeln!(
        out,
        "Profile **{}**, one run of {:.0} s started {}. Generated by `{}`; every number below \
         comes from that run.\n",
        report.profile, report.wall_s, env.started, env.command
    );

    let _ = writeln!(out, "## Headline\n");
    for line in headline_lines(report) {
        let _ = writeln!(out, "- {line}");
    }
    out.push('\n');

    let _ = writeln!(out, "## Environment\n");
    let _ = writeln!(out, "- command: `{}`", env.command);
    let _ = writeln!(out, "- git commit: {}", env.commit);
    let _ = writeln!(
        out,
        "- CPU: {}, {} cores, {} memory",
        env.cpu, env.cores, env.memory
    );
    let _ = writeln!(out, "- OS: {}, Linux {}", env.os, env.kernel);
    let _ = writeln!(
        out,
        "- libraries: vss {}, {}, {} (vssdec, avdec_h264), torch {} ({} threads for vsssegment \
         and the Python baseline), Python {}, numpy {}, PyAV {} (bundles its own FFmpeg: {}), \
         matplotlib {}, {}",
        env.vss,
        env.gstreamer,
        env.ffmpeg,
        env.torch,
        env.torch_threads,
        env.python,
        env.numpy,
        env.pyav,
        env.pyav_ffmpeg,
        env.matplotlib,
        env.rustc
    );
    let _ = writeln!(
        out,
        "- load average (1, 5, 15 min): {} before, {} after\n",
        env.load_before, env.load_after
    );

    crate::goals::goals_markdown(&mut out, report);
    real_motion_markdown(&mut out, report);
    motion_markdown(&mut out, report);
    stills_markdown(&mut out, report);
    speed_markdown(&mut out, report);
    decoders_markdown(&mut out, report);
    multicam_markdown(&mut out, report);

    if !report.notes.is_empty() {
        let _ = writeln!(out, "## Notes\n");
        for note in &report.notes {
            let _ = writeln!(out, "- {note}");
        }
        out.push('\n');
    }
    out
}

fn motion_markdown(out: &mut String, report: &Report) {
    let m = &report.motion;
    let _ = writeln!(out, "## Accuracy: camvid-motion\n");
    let _ = writeln!(
        out,
        "{} sequences x {} frames of `{}` (models/camvid_motion.py: CamVid test images under a \
         moving camera, exact labels, x264 GOP 12), each through `vssdec thread-type={} ! \
         vsssegment {} keyframe-interval={} lowres-scale={} overlay=none`, every frame scored \
         (11 classes, void ignored, one confusion matrix per row). ms/frame = the segmentation \
         meta's compute time (colour conversion, network or warp, class map); pipeline ms/frame = \
         wall time per frame from PLAYING to EOS, decode included, bundle load excluded. The \
         Python baseline decodes the P encode with PyAV and runs the same bundle on every \
         frame.\n",
        m.sequences,
        m.frames_per_sequence,
        m.data,
        m.decoder_thread_type,
        m.policy,
        m.keyframe_interval,
        m.lowres_scale
    );
    let _ = writeln!(out, "![{}]({})\n", MIOU_VS_MS.title, MIOU_VS_MS.file);
    let _ = writeln!(
        out,
        "| bundle | encode | mode | mIoU | vs full (points) | keyframes | ms/frame mean | p50 | p99 | max | pipeline ms/frame |\n\
         | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in &m.runs {
        let full = motion_miou(report, &r.bundle, &r.encode, "full");
        let delta = r.miou.zip(full).map(|(a, f)| 100.0 * (a - f));
        let t = r.compute_ms.unwrap_or(Timing {
            mean: f64::NAN,
            p50: f64::NAN,
            p99: f64::NAN,
            max: f64::NAN,
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.1}% | {} | {} | {} | {} | {} |",
            r.bundle,
            r.encode,
            r.mode,
            pct(r.miou),
            signed(delta),
            100.0 * r.keyframes as f64 / r.frames.max(1) as f64,
            ms(t.mean),
            ms(t.p50),
            ms(t.p99),
            ms(t.max),
            ms(r.pipeline_ms)
        );
    }
    for p in &m.peers {
        let full = motion_miou(report, &p.bundle, &p.encode, "full");
        let delta = p.miou.zip(full).map(|(a, f)| 100.0 * (a - f));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | 100.0% | {} | — | — | — | {} |",
            p.bundle,
            p.encode,
            p.name,
            pct(p.miou),
            signed(delta),
            ms(p.compute_ms_mean),
            ms(p.frame_ms_mean)
        );
    }
    let mismatched: Vec<String> = m
        .runs
        .iter()
        .filter(|r| r.distance_mismatches > 0)
        .map(|r| {
            format!(
                "{} {} {}: {}",
                r.bundle, r.encode, r.mode, r.distance_mismatches
            )
        })
        .collect();
    if !mismatched.is_empty() {
        let _ = writeln!(
            out,
            "\nFrames whose segmentation meta's distance differs from the codec's: {}",
            mismatched.join(", ")
        );
    }

    let _ = writeln!(
        out,
        "\n![{}]({})\n",
        MIOU_VS_DISTANCE.title, MIOU_VS_DISTANCE.file
    );
    distance_table(out, m);
}

/// mIoU per frames since the codec's I-frame, one row per run of `section`.
fn distance_table(out: &mut String, section: &MotionSection) {
    let max_d = section
        .runs
        .iter()
        .map(|r| r.per_distance.len())
        .max()
        .unwrap_or(0);
    let mut header = String::from("| bundle | encode | mode |");
    let mut rule = String::from("| --- | --- | --- |");
    for d in 0..max_d {
        let _ = write!(header, " d={d} |");
        rule.push_str(" ---: |");
    }
    let _ = writeln!(
        out,
        "mIoU (%) by frames since the codec's I-frame:\n\n{header}\n{rule}"
    );
    for r in &section.runs {
        let mut line = format!("| {} | {} | {} |", r.bundle, r.encode, r.mode);
        for d in 0..max_d {
            let v = r.per_distance.get(d).and_then(|p| p.miou);
            let _ = write!(line, " {} |", pct(v));
        }
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
}

fn stills_markdown(out: &mut String, report: &Report) {
    let s = &report.stills;
    let _ = writeln!(out, "## Accuracy: CamVid {}\n", s.split);
    let _ = writeln!(
        out,
        "models/evaluate.py: {} of the split per row, through the bundle's TorchScript module \
         (uint8 RGB resized to the size shown, argmax, upsampled to the label). `full` = the \
         native size (what every frame gets in mode `full`), `lowres` = the size mode `lowres` \
         runs at. Stills have no motion, so `warp` has no row here.\n",
        s.limit
            .map_or("every image".into(), |n| format!("the first {n} images"))
    );
    let _ = writeln!(
        out,
        "| bundle | branch | size | images | mIoU | pixel accuracy | class map |\n\
         | --- | --- | --- | ---: | ---: | ---: | --- |"
    );
    for r in &s.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {}x{} | {} | {} | {} | {} |",
            r.bundle,
            r.branch,
            r.size[0],
            r.size[1],
            r.images,
            pct(r.miou),
            pct(r.pixel_accuracy),
            r.class_map.as_deref().unwrap_or("—")
        );
    }
    out.push('\n');
}

fn speed_markdown(out: &mut String, report: &Report) {
    let _ = writeln!(out, "## Speed\n");
    let _ = writeln!(
        out,
        "Each configuration plays the clip through `filesrc ! qtdemux ! h264parse ! vssdec [! \
         vsssegment ...] ! fakesink sync=false` (keyframe-policy=interval, overlay=none; the \
         bundle loads before the clock starts); configurations alternate order round by round \
         and the best round is kept. fps = frames / wall time. ms/frame: time inside \
         vsssegment per buffer (vss rows; \"element alone\": the same, with the clip decoded \
         beforehand and pushed from an appsrc one frame at a time, so that no decoder thread \
         shares the cores), one forward call (bare forward loop: the bundle on a \
         native-size tensor, no GStreamer, no pre/post-processing), or decode + conversion + \
         network + argmax (Python per-frame: PyAV, frames converted to the bundle's size, the \
         same model.pt). vs full = fps over the same bundle's `full` fps in the same run; \
         element time vs full = full's mean ms/frame over the row's.\n"
    );
    let _ = writeln!(out, "![{}]({})\n", SPEED.title, SPEED.file);
    for clip in &report.speed {
        let _ = writeln!(
            out,
            "### {}x{}: `{}`\n\n{} round(s){}, keyframe-interval {}.\n",
            clip.width,
            clip.height,
            clip.clip,
            clip.rounds,
            clip.max_frames
                .map_or(String::new(), |n| format!(", first {n} frames per pass")),
            clip.keyframe_interval
        );
        let _ = writeln!(
            out,
            "| configuration | bundle | frames | fps | vs full | ms/frame mean | p50 | p99 | max | element time vs full |\n\
             | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for r in &clip.rows {
            let bundle = r.bundle.as_deref().unwrap_or(default_bundle());
            let full = vss_row(clip, bundle, "full");
            let vs_full = full.map(|f| r.fps / f.fps);
            let element = match (r.kind.as_str(), full.and_then(|f| f.frame_ms), r.frame_ms) {
                ("vss", Some(f), Some(t)) => ratio(Some(f.mean / t.mean)),
                _ => "—".into(),
            };
            let t = r.frame_ms;
            let cell = |f: fn(&Timing) -> f64| t.as_ref().map_or("—".into(), |t| ms(f(t)));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
                r.name,
                r.bundle.as_deref().unwrap_or("—"),
                r.frames,
                r.fps,
                ratio(vs_full),
                cell(|t| t.mean),
                cell(|t| t.p50),
                cell(|t| t.p99),
                cell(|t| t.max),
                element
            );
        }
        out.push('\n');
    }
}

fn decoders_markdown(out: &mut String, report: &Report) {
    let env = &report.environment;
    let _ = writeln!(out, "## Decoders\n");
    let _ = writeln!(
        out,
        "Decode only, to nothing: GStreamer decoders in `filesrc ! qtdemux ! h264parse ! DECODER \
         ! fakesink sync=false` ({}); PyAV ({}, its own FFmpeg, {}) decoding the same file \
         in a loop, with `flags2=+export_mvs` and each frame's vectors read as an array, or \
         plain. Frame and slice threads, one per core, everywhere. Rounds alternate order; the \
         median is shown.\n",
        env.ffmpeg, env.pyav, env.pyav_ffmpeg
    );
    let _ = writeln!(out, "![{}]({})\n", DECODERS.title, DECODERS.file);
    for clip in &report.decoders {
        let _ = writeln!(
            out,
            "### {}x{}: `{}` ({} frames, {} rounds)\n",
            clip.width, clip.height, clip.clip, clip.frames, clip.rounds
        );
        let _ = writeln!(
            out,
            "| decoder | motion vectors | median s | fps | vs avdec_h264 |\n\
             | --- | --- | ---: | ---: | ---: |"
        );
        let base = clip
            .rows
            .iter()
            .find(|r| r.name == "avdec_h264")
            .map(|r| r.fps);
        for r in &clip.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | {:.1} | {} |",
                r.name,
                if r.motion_vectors { "yes" } else { "no" },
                r.median_s,
                r.fps,
                ratio(base.map(|b| r.fps / b))
            );
        }
        out.push('\n');
    }
}

fn multicam_markdown(out: &mut String, report: &Report) {
    let Some(first) = report.multicam.first() else {
        return;
    };
    let s = &first.settings;
    let cores = first.steps.first().map_or(0, |st| st.cores);
    let _ = writeln!(out, "## Many cameras\n");
    let _ = writeln!(
        out,
        "Live camera streams in one process, each its own pipeline `appsrc is-live=true ! \
         h264parse ! vssdec max-threads=1 ! vsssegment keyframe-policy=interval \
         keyframe-interval={} overlay=none mode=... ! fakesink sync=false` (`cargo run --release \
         --example multicam -- --find-max` runs the same). The camera: {}, made from the shipped \
         clip; each stream pushes its frames at the instants a camera captures them, the streams \
         offset by fractions of a keyframe period. Per step: {:.0} s of warm-up, then {:.0} s \
         measured. A stream holds real time when none of the frames captured in that window is \
         missing or later than {:.0} ms from capture to the sink (a display configured for that \
         latency would drop it). The search raises the number of streams until one fails, then \
         narrows down to the most that hold; the numbers are those of the step at that count. \
         CPU = the process's CPU time over the window's wall time in % of one core ({cores} \
         cores here), divided by the streams; RSS added per stream = (RSS at the window's end - \
         RSS once the first stream had started) / (streams - 1). One shared model: every stream \
         `model-instance-id={}`, the bundle loaded once; a model per stream: no id.\n",
        s.keyframe_interval,
        first.camera,
        s.warmup_s,
        s.seconds,
        s.latency_bound_ms,
        crate::common::multicam::INSTANCE_ID,
    );
    multicam_table(out, report);
    out.push('\n');
}

/// One row per search: the most streams held and that step's numbers.
fn multicam_table(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "| configuration | streams held | worst p99 ms | lowest fps | CPU % of a core per stream | RSS added per stream MiB | bundles loaded via id | fewest not held | steps (streams: held) |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    );
    for search in &report.multicam {
        let held = search.held_step();
        let worst = held.map(|st| st.worst());
        let failed = match search.failed_step() {
            Some(st) => format!(
                "{} ({})",
                st.streams,
                st.failures
                    .first()
                    .map_or(String::new(), |f| f.replace('|', "/"))
            ),
            None if search.capped => format!("— (the limit, {}, held)", search.limits.max),
            None => "—".into(),
        };
        let steps: Vec<String> = search
            .steps
            .iter()
            .map(|st| format!("{}: {}", st.streams, if st.held { "yes" } else { "no" }))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            search.settings.label(),
            search.held,
            worst
                .and_then(|w| w.1)
                .map_or("—".into(), |l| format!("{:.0}", l.p99)),
            worst.map_or("—".into(), |w| format!("{:.2}", w.0)),
            held.map_or("—".into(), |st| format!("{:.1}", st.cpu_per_stream())),
            held.and_then(|st| st.rss_per_stream_mib())
                .map_or("—".into(), |r| format!("{r:.1}")),
            held.map_or("—".into(), |st| st.shared_loads.to_string()),
            failed,
            steps.join(", ")
        );
    }
}

/// The README's results block (without the markers): a table per mode of the default and other
/// bundles, the peers, and the headline, linking the full report at `link`.
pub fn readme_block(report: &Report, link: &str) -> String {
    let env = &report.environment;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!-- generated by `cargo run --release --example report -- --update-readme` from \
         {link}; do not edit by hand -->"
    );
    let _ = writeln!(
        out,
        "Report profile **{}**, commit {}, {} ({} cores), {}; the whole report with its plots \
         is `{link}` (written by the command, not committed).\n",
        report.profile,
        env.commit,
        env.cpu,
        env.cores,
        env.started.split(' ').next().unwrap_or(&env.started)
    );
    if let Some(m) = report.real_motion.as_ref().filter(|m| !m.runs.is_empty()) {
        let _ = writeln!(
            out,
            "Real motion (CamVid val sequence 0016E5 at 15 Hz, every frame labelled; \
             report.md, \"Accuracy: real motion\"), I-frame every {} frames; `warp@B` is \
             warp with `correction-budget=B`; share = mean time per frame / `full`'s:\n",
            m.keyframe_interval
        );
        let encodes: Vec<String> = m.runs.iter().fold(Vec::new(), |mut v, r| {
            if !v.contains(&r.encode) {
                v.push(r.encode.clone());
            }
            v
        });
        let mut header = String::from("| bundle | mode |");
        let mut rule = String::from("| --- | --- |");
        for e in &encodes {
            let _ = write!(header, " mIoU {e} | vs full |");
            rule.push_str(" ---: | ---: |");
        }
        let _ = writeln!(
            out,
            "{header} ms/frame ({}) | share |\n{rule} ---: | ---: |",
            encodes[0]
        );
        let mut seen: Vec<(String, String)> = Vec::new();
        for r in &m.runs {
            let key = (r.bundle.clone(), r.mode.clone());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let mut line = format!("| {} | {} |", r.bundle, r.mode);
            for e in &encodes {
                let run = section_run(m, &r.bundle, e, &r.mode);
                let full = section_run(m, &r.bundle, e, "full");
                let delta = run
                    .and_then(|x| x.miou)
                    .zip(full.and_then(|f| f.miou))
                    .map(|(a, f)| 100.0 * (a - f));
                let _ = write!(
                    line,
                    " {} | {} |",
                    pct(run.and_then(|x| x.miou)),
                    signed(delta)
                );
            }
            let first = section_run(m, &r.bundle, &encodes[0], &r.mode);
            let full = section_run(m, &r.bundle, &encodes[0], "full");
            let share = first
                .and_then(mean_ms)
                .zip(full.and_then(mean_ms))
                .map(|(a, f)| a / f);
            let _ = writeln!(
                out,
                "{line} {} | {} |",
                first.and_then(mean_ms).map_or("—".into(), ms),
                share.map_or("—".into(), |v| format!("{:.0}%", 100.0 * v))
            );
        }
        out.push_str("\nSynthetic motion (camvid-motion), CamVid test stills and speed:\n\n");
    }
    let speed_small = report.speed.iter().find(|c| !c.shipped);
    let speed_shipped = shipped_speed(report);
    let size =
        |c: Option<&SpeedClip>| c.map_or("—".into(), |c| format!("{}x{}", c.width, c.height));
    // The small re-encode's column only when the profile measured it (`--quick` does not).
    let small_cell = |v: Option<f64>| {
        speed_small.map_or(String::new(), |_| {
            format!(" {} |", v.map_or("—".into(), |v| format!("{v:.1}")))
        })
    };
    let _ = writeln!(
        out,
        "| bundle | mode | camvid-motion mIoU, P / B | CamVid test mIoU |{} fps {} | vs full |\n\
         | --- | --- | ---: | ---: |{} ---: | ---: |",
        speed_small.map_or(String::new(), |c| format!(" fps {} |", size(Some(c)))),
        size(speed_shipped),
        speed_small.map_or("", |_| " ---: |"),
    );
    let fps = |c: Option<&SpeedClip>, bundle: &str, mode: &str| {
        c.and_then(|c| vss_row(c, bundle, mode)).map(|r| r.fps)
    };
    let mut seen: Vec<(String, String)> = Vec::new();
    for r in &report.motion.runs {
        let key = (r.bundle.clone(), r.mode.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let p = motion_miou(report, &r.bundle, "p", &r.mode);
        let b = motion_miou(report, &r.bundle, "b", &r.mode);
        let still = report
            .stills
            .rows
            .iter()
            .find(|s| s.bundle == r.bundle && s.branch == r.mode)
            .and_then(|s| s.miou);
        let shipped_fps = fps(speed_shipped, &r.bundle, &r.mode);
        let full_fps = fps(speed_shipped, &r.bundle, "full");
        let _ = writeln!(
            out,
            "| {} | {} | {} / {} | {} |{} {} | {} |",
            r.bundle,
            r.mode,
            pct(p),
            pct(b),
            pct(still),
            small_cell(fps(speed_small, &r.bundle, &r.mode)),
            shipped_fps.map_or("—".into(), |v| format!("{v:.1}")),
            ratio(shipped_fps.zip(full_fps).map(|(m, f)| m / f))
        );
    }
    let python_fps = |c: Option<&SpeedClip>| {
        c.and_then(|c| c.rows.iter().find(|r| r.kind == "python"))
            .map(|r| r.fps)
    };
    if let Some(peer) = report.motion.peers.first() {
        let full_fps = fps(speed_shipped, &peer.bundle, "full");
        let _ = writeln!(
            out,
            "| {} | Python per-frame (PyAV + TorchScript) | {} / — | — |{} {} | {} |",
            peer.bundle,
            pct(peer.miou),
            small_cell(python_fps(speed_small)),
            python_fps(speed_shipped).map_or("—".into(), |v| format!("{v:.1}")),
            ratio(python_fps(speed_shipped).zip(full_fps).map(|(m, f)| m / f))
        );
    }
    out.push('\n');
    if let Some(first) = report.multicam.first() {
        let s = &first.settings;
        let _ = writeln!(
            out,
            "Many cameras: live {}x{} streams at {} fps in one process, each `vssdec ! vsssegment \
             keyframe-interval={}`, {:.0} s per step; held = real time with p99 latency <= {:.0} \
             ms and no dropped or missing frame (report.md, \"Many cameras\"):\n",
            first.width,
            first.height,
            first.fps,
            s.keyframe_interval,
            s.seconds,
            s.latency_bound_ms
        );
        multicam_table(&mut out, report);
        out.push('\n');
    }
    for line in headline_lines(report) {
        let _ = writeln!(out, "- {line}");
    }
    out
}

/// Replaces what lies between the markers in `readme` with `block`.
pub fn update_readme(readme: &Path, block: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(readme).with_context(|| format!("reading {}", readme.display()))?;
    let updated = replace_block(&text, block)
        .with_context(|| format!("{}: the results block", readme.display()))?;
    std::fs::write(readme, updated).with_context(|| format!("writing {}", readme.display()))
}

fn replace_block(text: &str, block: &str) -> Result<String> {
    let Some(begin) = text.find(README_BEGIN) else {
        bail!("no {README_BEGIN} line");
    };
    let after_begin = begin + README_BEGIN.len();
    let Some(end) = text[after_begin..]
        .find(README_END)
        .map(|i| after_begin + i)
    else {
        bail!("no {README_END} after {README_BEGIN}");
    };
    if text[end + README_END.len()..].contains(README_BEGIN) {
        bail!("more than one {README_BEGIN}");
    }
    Ok(format!(
        "{}\n{}{}",
        &text[..after_begin],
        block,
        &text[end..]
    ))
}
