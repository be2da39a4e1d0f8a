//! Speed of vsssegment per mode on one clip, side by side with the floors: decode only, and a bare
//! TorchScript forward loop of the same bundle (no GStreamer, no pre/post-processing), run on
//! the same libtorch executor thread as the element's inference; and that loop at the `lowres`
//! scale, whose ratio to the native loop bounds what `lowres` can gain over `full`.
//!
//! ```text
//! cargo run --release --example bench_segment -- [INPUT] [--model camvid-espnet] [--rounds 2]
//! ```
//! Per-frame latency is the time a buffer spends inside vsssegment (sink pad to src pad);
//! "element time vs full" is full's mean latency over the configuration's: the segmentation
//! speedup without decoding, which the fps ratio includes. A second table runs vsssegment
//! alone on the clip's frames decoded beforehand (appsrc, one frame at a time): with vssdec's
//! threads decoding the next pictures meanwhile, the element shares the cores with them.
//! A bundle whose scheme serves more modes (`fusion` for arseg, `distributed` for tdnet) gets
//! rows for them too. Last, the speed goals computed within each round (both sides of a ratio under a minute
//! apart) with their median: on a shared host the spread between rounds is the resolution
//! these ratios have, and it can exceed the margins the goals leave.

use std::collections::HashMap;
use std::path::PathBuf;

mod common;

use common::helpers::median;
use common::speed::{
    PipelineRun, bare_forward_scaled, bare_nonkeyframe, decode_all, run_element, run_pipeline,
};
use common::stats::summary;

use anyhow::Result;
use clap::Parser;
use gstvss::model::{Manifest, Scheme};
use gstvss::segmenter::Mode;

/// The `lowres` scale the goals name (issue 4: "`lowres` 0.5 >= 3x").
const LOWRES_SCALE: f64 = 0.5;

#[derive(Parser)]
#[command(about = "vsssegment speed per mode vs decode-only and a bare forward loop")]
struct Args {
    /// An MP4 with H.264 video (default: the shipped dashcam clip).
    input: Option<PathBuf>,
    #[arg(long, default_value = "camvid-espnet")]
    model: String,
    #[arg(long, default_value_t = 12)]
    keyframe_interval: u32,
    /// Each configuration runs this many times, alternating; the best run is reported.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    gst::init()?;
    gstvss::ensure_registered()?;
    let input = args
        .input
        .clone()
        .unwrap_or_else(common::decode::shipped_clip);

    let mut configs: Vec<(String, Option<String>)> = vec![
        ("decode only (vssdec)".into(), None),
        ("full".into(), Some("mode=full".into())),
        (
            format!("lowres {LOWRES_SCALE}"),
            Some(format!("mode=lowres lowres-scale={LOWRES_SCALE}")),
        ),
        ("warp".into(), Some("mode=warp".into())),
        (
            "warp, async keyframes".into(),
            Some("mode=warp async-keyframes=true".into()),
        ),
    ];
    // The modes only the bundle's scheme serves (`fusion` for arseg, `distributed` for tdnet).
    let dir = gstvss::model::resolve_bundle(&args.model)?;
    let manifest = Manifest::read(&dir.join(gstvss::model::MANIFEST_FILE))?;
    for mode in Mode::ALL.iter().copied() {
        let schemes = mode.schemes();
        if schemes.contains(&Scheme::Image) || !schemes.contains(&manifest.scheme) {
            continue;
        }
        configs.push((mode.as_str().into(), Some(format!("mode={}", mode.as_str()))));
    }
    let (caps, decoded) = decode_all(&input)?;
    let mut best: HashMap<String, PipelineRun> = HashMap::new();
    let mut alone: HashMap<String, PipelineRun> = HashMap::new();
    let mut forward: Vec<f64> = Vec::new();
    let mut forward_lowres: Vec<f64> = Vec::new();
    let mut nonkeyframe: Vec<f64> = Vec::new();
    let mut per_round: Vec<Round> = Vec::new();
    for round in 0..args.rounds {
        let mut this = Round::default();
        // The bare loops take their turn in every round too, under the same conditions.
        for (scale, kept, mean) in [
            (1.0, &mut forward, &mut this.bare),
            (LOWRES_SCALE, &mut forward_lowres, &mut this.bare_lowres),
        ] {
            let f = bare_forward_scaled(&args.model, scale, 40)?;
            *mean = summary(&f).0;
            if kept.is_empty() || *mean < summary(kept).0 {
                *kept = f;
            }
        }
        if manifest.scheme == Scheme::Arseg {
            let f = bare_nonkeyframe(&args.model, 40)?;
            if nonkeyframe.is_empty() || summary(&f).0 < summary(&nonkeyframe).0 {
                nonkeyframe = f;
            }
        }
        for (name, element) in &configs {
            let props = element.as_ref().map(|p| {
                format!(
                    "model={} keyframe-policy=interval keyframe-interval={} overlay=none {p}",
                    args.model, args.keyframe_interval
                )
            });
            let run = run_pipeline(&input, props.as_deref(), None)?;
            eprintln!(
                "round {round}: {name}: {:.2} s, {} frames",
                run.wall, run.frames
            );
            record(name, run, &mut this.pipeline, &mut best);
            if let Some(props) = &props {
                let run = run_element(&caps, &decoded, props)?;
                eprintln!(
                    "round {round}: {name}, element alone: {:.2} s, {} frames",
                    run.wall, run.frames
                );
                record(name, run, &mut this.alone, &mut alone);
            }
        }
        per_round.push(this);
    }

    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("machine: {}", common::machine::describe());
    println!(
        "input: {}, model {}, keyframe-interval {}, overlay=none, best of {} rounds",
        input.display(),
        args.model,
        args.keyframe_interval,
        args.rounds
    );
    println!();
    println!(
        "| configuration | fps | fps vs full | latency mean ms | p50 | p99 | max | element time vs full |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let full_fps = best["full"].frames as f64 / best["full"].wall;
    let (full_mean, ..) = summary(&best["full"].latencies_ms);
    for (name, _) in &configs {
        let r = &best[name];
        let fps = r.frames as f64 / r.wall;
        let (mean, p50, p99, max) = summary(&r.latencies_ms);
        let element = if r.latencies_ms.is_empty() {
            "—".to_string()
        } else {
            format!("{:.2}", full_mean / mean)
        };
        println!(
            "| {name} | {fps:.1} | {:.2} | {mean:.1} | {p50:.1} | {p99:.1} | {max:.1} | {element} |",
            fps / full_fps
        );
    }
    let (fmean, fp50, fp99, fmax) = summary(&forward);
    println!(
        "| bare forward loop (no GStreamer) | {:.1} | {:.2} | {fmean:.1} | {fp50:.1} | {fp99:.1} | {fmax:.1} | {:.2} |",
        1000.0 / fmean,
        1000.0 / fmean / full_fps,
        full_mean / fmean
    );
    let (lmean, lp50, lp99, lmax) = summary(&forward_lowres);
    println!(
        "| bare forward loop at lowres {LOWRES_SCALE} | {:.1} | {:.2} | {lmean:.1} | {lp50:.1} | {lp99:.1} | {lmax:.1} | {:.2} |",
        1000.0 / lmean,
        1000.0 / lmean / full_fps,
        full_mean / lmean
    );
    if !nonkeyframe.is_empty() {
        let (nmean, np50, np99, nmax) = summary(&nonkeyframe);
        println!(
            "| bare non-keyframe loop (warp + nonkeyframe) | {:.1} | {:.2} | {nmean:.1} | {np50:.1} | {np99:.1} | {nmax:.1} | {:.2} |",
            1000.0 / nmean,
            1000.0 / nmean / full_fps,
            full_mean / nmean
        );
    }
    println!();
    println!(
        "vsssegment alone: the same {} frames decoded beforehand, pushed one at a time from an \
         appsrc (no decoder sharing the cores)",
        decoded.len()
    );
    println!();
    println!("| configuration | fps | fps vs full | latency mean ms | p50 | p99 | max |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let alone_full_fps = alone["full"].frames as f64 / alone["full"].wall;
    for (name, _) in configs.iter().filter(|(n, _)| alone.contains_key(n)) {
        let r = &alone[name];
        let fps = r.frames as f64 / r.wall;
        let (mean, p50, p99, max) = summary(&r.latencies_ms);
        println!(
            "| {name} | {fps:.1} | {:.2} | {mean:.1} | {p50:.1} | {p99:.1} | {max:.1} |",
            fps / alone_full_fps
        );
    }
    let (alone_full_mean, ..) = summary(&alone["full"].latencies_ms);
    println!();
    println!(
        "element overhead, full vs bare forward (mean per frame): {:.2}x in the decoding \
         pipeline, {:.2}x alone",
        full_mean / fmean,
        alone_full_mean / fmean
    );
    println!(
        "the network alone, native vs lowres {LOWRES_SCALE} (mean per call): {:.2}x, the most `lowres` \
         could reach with no keyframes and no pre/post-processing",
        fmean / lmean
    );
    print_goals_by_round(&per_round);
    Ok(())
}

/// Notes `run`'s fps and mean latency for this round, and keeps it if it is `name`'s fastest.
fn record(
    name: &str,
    run: PipelineRun,
    round: &mut HashMap<String, (f64, f64)>,
    best: &mut HashMap<String, PipelineRun>,
) {
    round.insert(name.to_owned(), (run.fps(), summary(&run.latencies_ms).0));
    if best.get(name).is_none_or(|b| run.wall < b.wall) {
        best.insert(name.to_owned(), run);
    }
}

/// A goal's bound on a ratio.
#[derive(Clone, Copy)]
enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    fn met(self, v: f64) -> bool {
        match self {
            Target::AtMost(bound) => v <= bound,
            Target::AtLeast(bound) => v >= bound,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::AtMost(bound) => write!(f, "<= {bound}"),
            Target::AtLeast(bound) => write!(f, ">= {bound}"),
        }
    }
}

/// One round's figures: each configuration's fps and mean latency in the decoding pipeline and
/// alone, and the bare loops' mean per call (ms).
#[derive(Default)]
struct Round {
    bare: f64,
    bare_lowres: f64,
    pipeline: HashMap<String, (f64, f64)>,
    alone: HashMap<String, (f64, f64)>,
}

/// The goals of issue 4 computed within each round, where both sides of a ratio ran under a
/// minute apart; the tables above take each configuration's best round, which may come from
/// different rounds. The spread across rounds is the resolution these ratios have here.
fn print_goals_by_round(rounds: &[Round]) {
    let fps = |t: &HashMap<String, (f64, f64)>, name: &str| t.get(name).map_or(f64::NAN, |v| v.0);
    let mean = |t: &HashMap<String, (f64, f64)>, name: &str| t.get(name).map_or(f64::NAN, |v| v.1);
    let lowres = format!("lowres {LOWRES_SCALE}");
    // (goal, target, value per round)
    type Goal<'a> = (&'a str, Target, Box<dyn Fn(&Round) -> f64 + 'a>);
    let goals: Vec<Goal> = vec![
        (
            "full vs bare forward, ms per frame, decoding pipeline",
            Target::AtMost(1.05),
            Box::new(|r: &Round| mean(&r.pipeline, "full") / r.bare),
        ),
        (
            "full vs bare forward, ms per frame, element alone",
            Target::AtMost(1.05),
            Box::new(|r: &Round| mean(&r.alone, "full") / r.bare),
        ),
        (
            "warp fps vs full",
            Target::AtLeast(8.0),
            Box::new(|r: &Round| fps(&r.pipeline, "warp") / fps(&r.pipeline, "full")),
        ),
        (
            "warp, async keyframes, fps vs full",
            Target::AtLeast(8.0),
            Box::new(|r: &Round| {
                fps(&r.pipeline, "warp, async keyframes") / fps(&r.pipeline, "full")
            }),
        ),
        (
            "lowres fps vs full",
            Target::AtLeast(3.0),
            Box::new(|r: &Round| fps(&r.pipeline, &lowres) / fps(&r.pipeline, "full")),
        ),
        (
            "bare forward, native vs lowres (lowres's ceiling)",
            Target::AtLeast(3.0),
            Box::new(|r: &Round| r.bare / r.bare_lowres),
        ),
    ];
    println!();
    println!("goals round by round (both sides of each ratio from the same round):");
    println!();
    let heads: Vec<String> = (1..=rounds.len()).map(|i| format!("round {i}")).collect();
    println!(
        "| goal | target | {} | median | met in |",
        heads.join(" | ")
    );
    println!("| --- | --- |{} --- | --- |", " --- |".repeat(rounds.len()));
    for (name, target, value) in &goals {
        let values: Vec<f64> = rounds.iter().map(value).collect();
        let cells: Vec<String> = values.iter().map(|v| format!("{v:.2}")).collect();
        let median = median(&values);
        let hits = values.iter().filter(|&&v| target.met(v)).count();
        println!(
            "| {name} | {target} | {} | {median:.2} | {hits} of {} |",
            cells.join(" | "),
            values.len()
        );
    }
}
