//! Scores vsssegment on labelled video through the real element: mIoU per distance from the
//! keyframe, averaged mIoU and cost per frame, for each mode and encode, as a Markdown report.
//!
//! ```text
//! .venv/bin/python models/camvid_real.py         # real motion: CamVid 0016E5, once (~15 s)
//! cargo run --release --example eval_motion -- [--data .cache/camvid-real] \
//!     [--modes full,lowres,warp] [--encodes p12,b12,p6,b6] [--model camvid-espnet] \
//!     [--limit N] [--json results.json]
//! .venv/bin/python models/camvid_motion.py       # synthetic motion: 12 sequences (~15 s)
//! cargo run --release --example eval_motion -- --data .cache/camvid-motion/test
//! ```
//! Per sequence, encode and mode, the video goes through `vssdec ! vsssegment` and every frame's
//! `SegmentationMeta` class map is compared with the sequence's label PNG of the same index
//! (display order; `common/motion_eval.rs` has the pipeline and the distance rule). The encodes
//! are those the dataset's meta.json lists unless `--encodes` picks some: camvid-real has
//! p12, b12, p6, b6 (P-only or B-frames, I-frame every 12 or 6 frames), camvid-motion p, b.
//! The field statistics of `stats=true` messages (`uncovered-share`, `mean-motion`, posted
//! where the element keeps a motion field: `warp`) are averaged per `d` next to the mIoU drop:
//! the data for tuning the adaptive keyframe policy.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use common::agreement::agreement;
use common::motion_eval::{
    DatasetInfo, Run, SegmentSettings, dataset_info, evaluate, sequence_dirs,
};
use common::provenance;
use gstvss::model::DEFAULT_BUNDLE;

#[derive(Parser)]
#[command(about = "mIoU per distance from the keyframe on labelled video, through vsssegment")]
struct Args {
    /// A folder of sequences, each <name>/{<encode>.mp4,labels/,meta.json}: camvid-real
    /// (models/camvid_real.py) or a camvid-motion split (models/camvid_motion.py).
    #[arg(long, default_value = ".cache/camvid-real")]
    data: PathBuf,
    /// vsssegment modes, comma-separated; `warp@0.3` is warp with correction-budget=0.3.
    #[arg(long, default_value = "full,lowres,warp", value_delimiter = ',')]
    modes: Vec<String>,
    /// Encodes, comma-separated (default: all the dataset's meta.json lists).
    #[arg(long, value_delimiter = ',')]
    encodes: Vec<String>,
    /// Bundle folder, its manifest.json, or a shipped bundle's name.
    #[arg(long, default_value = DEFAULT_BUNDLE)]
    model: String,
    /// vsssegment's keyframe-interval (the codec policy's bound is 5x this).
    #[arg(long, default_value_t = 12)]
    keyframe_interval: u32,
    /// Side scale of the low-resolution branch.
    #[arg(long, default_value_t = 0.5)]
    lowres_scale: f64,
    /// libtorch threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// vssdec's thread-type. `slice` by default: with frame threading FFmpeg 5.1 exports
    /// B-frame motion vectors that differ from run to run (the pixels do not), so B-stream
    /// results would not reproduce; the encodes have one slice, so this decodes on one thread.
    #[arg(long, default_value = "slice", value_parser = ["auto", "frame", "slice"])]
    decoder_thread_type: String,
    /// Label-free instead: per distance from the keyframe, the share of pixels where each mode
    /// agrees with `full` on these clips (H.264 in MP4), with `full` against its previous frame
    /// and the keyframe's map held as references. Repeatable.
    #[arg(long)]
    video: Vec<PathBuf>,
    /// vsssegment's keyframe policy and its settings, e.g. `keyframe-policy=adaptive
    /// adaptive-uncovered=0.3 adaptive-motion=16`.
    #[arg(long, default_value = "keyframe-policy=codec")]
    policy: String,
    /// Only the first N sequences.
    #[arg(long)]
    limit: Option<usize>,
    /// Also write the confusion matrices and per-distance numbers as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl Args {
    fn settings(&self) -> SegmentSettings {
        SegmentSettings {
            model: self.model.clone(),
            policy: self.policy.clone(),
            keyframe_interval: self.keyframe_interval,
            lowres_scale: self.lowres_scale,
            threads: self.threads,
            decoder_thread_type: self.decoder_thread_type.clone(),
        }
    }
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    for mode in &args.modes {
        let name = mode.split_once('@').map_or(mode.as_str(), |(m, _)| m);
        if !["full", "lowres", "fusion", "warp", "distributed"].contains(&name) {
            bail!("unknown mode {mode:?}");
        }
    }
    gst::init()?;
    gstvss::ensure_registered()?;
    if !args.video.is_empty() {
        return label_free(&args);
    }

    let sequences = sequence_dirs(&args.data, args.limit)?;
    let dataset = dataset_info(&sequences[0])?;
    if args.encodes.is_empty() {
        args.encodes = dataset.encodes.clone();
    }
    for encode in &args.encodes {
        if !dataset.encodes.contains(encode) {
            bail!(
                "unknown encode {encode:?}: {} has {}",
                args.data.display(),
                dataset.encodes.join(", ")
            );
        }
    }
    let started = Instant::now();
    let runs = evaluate(
        &args.settings(),
        &sequences,
        &args.encodes,
        &args.modes,
        |i, seq, encode, mode| {
            eprint!(
                "\r[{}/{}] {} {encode} {mode:<8}",
                i + 1,
                sequences.len(),
                seq.display(),
            )
        },
    )?;
    eprintln!(
        "\rdone in {:.0} s{:40}",
        started.elapsed().as_secs_f64(),
        ""
    );

    print!("{}", report(&args, &dataset, sequences.len(), &runs));
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "command": provenance::command_line(),
            "machine": common::machine::describe(),
            "commit": provenance::commit(),
            "data": args.data,
            "dataset": dataset.name,
            "sequences": sequences.len(),
            "model": args.model,
            "runs": runs.iter().map(Run::to_json).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The label-free table of every `--video`.
fn label_free(args: &Args) -> Result<()> {
    use std::fmt::Write;
    let mut out = String::new();
    let pct = |v: Option<f64>| v.map_or("—".into(), |v| format!("{:.2}", v * 100.0));
    let _ = writeln!(out, "## Agreement with `full`, no labels\n");
    let _ = writeln!(out, "- command: `{}`", provenance::command_line());
    let _ = writeln!(out, "- machine: {}", common::machine::describe());
    let _ = writeln!(out, "- commit: {}", provenance::commit());
    let _ = writeln!(
        out,
        "- model {}, {}, keyframe-interval {}; d = frames since the keyframe (the first \
         cheap mode's schedule); % of pixels whose class equals `full`'s on the same frame\n",
        args.model, args.policy, args.keyframe_interval
    );
    for video in &args.video {
        eprintln!("{} ...", video.display());
        let tallies = agreement(&args.settings(), video, &args.modes)
            .with_context(|| video.display().to_string())?;
        let max_d = tallies
            .iter()
            .map(|t| t.per_distance.len())
            .max()
            .unwrap_or(0);
        let _ = writeln!(out, "### {}\n", video.display());
        let mut header = String::from("| compared with `full` |");
        let mut rule = String::from("| --- |");
        for d in 0..max_d {
            let _ = write!(header, " d={d} |");
            rule.push_str(" ---: |");
        }
        let _ = writeln!(out, "{header} all | mean ms |\n{rule} ---: | ---: |");
        for t in &tallies {
            let mut line = format!("| {} |", t.label);
            for d in 0..max_d {
                let _ = write!(line, " {} |", pct(t.share(d)));
            }
            let _ = writeln!(out, "{line} **{}** | {:.1} |", pct(t.overall()), t.mean_ms);
        }
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

fn report(args: &Args, dataset: &DatasetInfo, sequences: usize, runs: &[Run]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let max_d = runs.iter().map(|r| r.per_distance.len()).max().unwrap_or(0);
    let pct = |v: Option<f64>| {
        v.filter(|v| v.is_finite())
            .map_or("—".into(), |v| format!("{:.2}", v * 100.0))
    };
    let _ = writeln!(out, "## {} through vsssegment\n", dataset.name);
    let _ = writeln!(out, "- command: `{}`", provenance::command_line());
    let _ = writeln!(out, "- machine: {}", common::machine::describe());
    let _ = writeln!(out, "- commit: {}", provenance::commit());
    let frames = runs.first().map_or(0, |r| r.frames);
    let _ = writeln!(
        out,
        "- data: {} ({sequences} sequences, {frames} frames per run), model {}, \
         {}, lowres-scale {}, vssdec thread-type={}",
        args.data.display(),
        args.model,
        args.policy,
        args.lowres_scale,
        args.decoder_thread_type
    );
    let _ = writeln!(
        out,
        "- d = frames since the codec's I-frame; mIoU in %, 11 classes, void ignored; \
         `all` = mIoU of the confusion matrix summed over every frame; ms = the meta's \
         compute_time (pre-processing, network or warp, post-processing); element fps = \
         1000 / mean ms; pipeline fps = frames / wall time from PLAYING to EOS (decode, \
         element, appsink; the per-sequence bundle load is excluded)\n"
    );
    let mut header = String::from("| encode | mode |");
    let mut rule = String::from("| --- | --- |");
    for d in 0..max_d {
        let _ = write!(header, " d={d} |");
        rule.push_str(" ---: |");
    }
    header.push_str(
        " all | keyframes | mean ms | p50 ms | key ms | non-key ms | max ms | element fps | pipeline fps |",
    );
    rule.push_str(" ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let _ = writeln!(out, "{header}\n{rule}");
    for run in runs {
        let mut line = format!("| {} | {} |", run.encode, run.mode);
        for d in 0..max_d {
            let _ = write!(line, " {} |", pct(run.miou(d)));
        }
        let mean = run.mean_compute_ms();
        let key_ms = run.key_compute.as_secs_f64() * 1e3 / run.keyframes.max(1) as f64;
        let non_key = run.frames - run.keyframes;
        let non_key_ms = if non_key > 0 {
            format!(
                "{:.1}",
                (run.compute_ms.iter().sum::<f64>() - run.key_compute.as_secs_f64() * 1e3)
                    / non_key as f64
            )
        } else {
            "—".into()
        };
        let max = run.compute_ms.iter().copied().fold(0.0, f64::max);
        let mut sorted = run.compute_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let p50 = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
        let _ = writeln!(
            line,
            " **{}** | {:.1}% | {mean:.1} | {p50:.1} | {key_ms:.1} | {non_key_ms} | {max:.1} | {:.1} | {:.1} |",
            pct(Some(run.all().scores().miou)),
            100.0 * run.keyframes as f64 / run.frames.max(1) as f64,
            1e3 / mean.max(1e-9),
            run.frames as f64 / run.wall.as_secs_f64().max(1e-9),
        );
        out.push_str(&line);
    }
    let mismatched: Vec<String> = runs
        .iter()
        .filter(|r| r.distance_mismatches > 0)
        .map(|r| format!("{} {}: {} frames", r.encode, r.mode, r.distance_mismatches))
        .collect();
    if !mismatched.is_empty() {
        let _ = writeln!(
            out,
            "\nThe segmentation meta's distance differs from the codec's: {}",
            mismatched.join(", ")
        );
    }

    // The adaptive policy's data: the accumulated field next to what propagation loses.
    for encode in &args.encodes {
        let find = |mode: &str| runs.iter().find(|r| &r.encode == encode && r.mode == mode);
        let Some(field_run) = runs
            .iter()
            .find(|r| &r.encode == encode && r.per_distance.iter().any(|t| t.field_frames > 0))
        else {
            continue;
        };
        let _ = writeln!(
            out,
            "\n### Accumulated field vs mIoU drop, encode {encode} (field from mode {})\n",
            field_run.mode
        );
        let _ = writeln!(
            out,
            "d=0: on a keyframe the element reports the field accumulated through the I-frame \
             (no vectors, so all uncovered) before it restarts the track.\n"
        );
        let _ = writeln!(
            out,
            "| d | uncovered-share | mean-motion px | full | warp | full - warp | lowres |\n\
             | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for (d, t) in field_run.per_distance.iter().enumerate() {
            let field = |v: f64| {
                if t.field_frames > 0 {
                    format!("{:.3}", v / t.field_frames as f64)
                } else {
                    "—".into()
                }
            };
            let full = find("full").and_then(|r| r.miou(d));
            let warp = find("warp").and_then(|r| r.miou(d));
            let drop = full.zip(warp).map(|(f, w)| f - w);
            let _ = writeln!(
                out,
                "| {d} | {} | {} | {} | {} | {} | {} |",
                field(t.uncovered),
                field(t.motion),
                pct(full),
                pct(warp),
                pct(drop),
                pct(find("lowres").and_then(|r| r.miou(d))),
            );
        }
    }
    out
}
