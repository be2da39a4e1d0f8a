//! One command for the numbers users choose by: accuracy (real motion on camvid-real first,
//! then camvid-motion and CamVid test), speed
//! per mode beside its floors (decode only, a bare forward loop) and its peers (a per-frame
//! PyAV + TorchScript loop in Python, avdec_h264 and PyAV's motion-vector export), in one run,
//! written to `report/` as report.md, report.json and PNG plots.
//!
//! ```text
//! cargo run --release --example report -- [--quick | --smoke] [--out report] [--update-readme]
//! cargo run --release --example report -- --render-only [--out report] [--update-readme]
//! ```
//! Full (default): camvid-real's four encodes (p12, b12, p6, b6) with `warp` at correction
//! budgets 0.15, 0.3 and 0.5; the 12 camvid-motion test sequences, both encodes, every shipped
//! CamVid bundle in every mode it can serve; the whole CamVid test split per image bundle; 3 speed
//! rounds on the shipped clip and a 480x360 re-encode; 5 decoder rounds on the shipped clip and a
//! 1280x720 re-encode; many cameras with 60 s steps. `--quick` (under 5 min on 2 cores):
//! camvid-real p12 and b12 with `warp@0.3` for the default bundle; one camvid-motion sequence,
//! P encode, for the default bundle plus any temporal bundle; 10 CamVid test images; one speed
//! round of 60 frames on the shipped clip only; 1 decoder round; many cameras with 2 s steps up
//! to 12 streams. `--smoke` (the test's): camvid-real p12 for the
//! default bundle only, 1 sequence, P encode only, 4 images, 48 frames per speed pass on the
//! shipped clip only, 1 decoder round, 2 cameras for 2 s.
//! Modes come from the element (its `mode` enum) and each bundle's scheme, so a bundle that
//! serves `fusion` or `distributed` shows up in every section without a change here.
//! `--update-readme` rewrites README.md between `<!-- report:begin -->` and
//! `<!-- report:end -->` with the table rendered from this report.

#[path = "../common/mod.rs"]
mod common;
mod data;
mod goals;
mod python;
mod render;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use gst::prelude::*;
use gstvss::model::{DEFAULT_BUNDLE, Manifest, Scheme};
use gstvss::segmenter::Mode;

use common::decode::{decode_once, scaled_clip, shipped_clip};
use common::helpers::median;
use common::motion_eval::{self, SegmentSettings};
use common::multicam::{self, Camera, Limits, Search, Settings};
use common::speed::{bare_forward, decode_all, run_element, run_pipeline};
use data::*;
use python::Python;

#[derive(Parser)]
#[command(about = "Accuracy and speed report with floors and peers, one run, into report/")]
struct Args {
    /// Small subsets: about 25 minutes on a 2-core machine, most of it the speed section.
    #[arg(long, conflicts_with = "smoke")]
    quick: bool,
    /// The smallest run that fills every section (what tests/report.rs runs).
    #[arg(long)]
    smoke: bool,
    /// Output folder.
    #[arg(long, default_value = "report")]
    out: PathBuf,
    /// Only these bundles (comma-separated) instead of the profile's choice.
    #[arg(long, value_delimiter = ',')]
    bundles: Vec<String>,
    /// libtorch threads for vsssegment and the Python baseline (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// The venv's Python (models/ scripts, the peer baseline, the plots).
    #[arg(long, default_value = ".venv/bin/python")]
    python: PathBuf,
    /// Re-render report.md, the plots (and README with --update-readme) from OUT/report.json
    /// without measuring.
    #[arg(long)]
    render_only: bool,
    /// Rewrite the README's results block (between `<!-- report:begin -->` and
    /// `<!-- report:end -->`) from this report.
    #[arg(long)]
    update_readme: bool,
    /// The README that --update-readme rewrites.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))]
    readme: PathBuf,
}

/// How much each section measures.
struct Profile {
    name: &'static str,
    /// camvid-real's encodes (p12, b12, p6, b6) and the correction budgets of its `warp@B`
    /// rows (the accuracy-against-time curve).
    real_encodes: &'static [&'static str],
    correction_budgets: &'static [f64],
    /// camvid-real for the default bundle only (the others: every bundle the section scores).
    real_default_only: bool,
    sequences: usize,
    encodes: &'static [&'static str],
    /// CamVid test images per bundle; None = all.
    stills_limit: Option<usize>,
    speed_rounds: usize,
    speed_max_frames: Option<usize>,
    /// The speed section's 480x360 re-encode as well as the shipped clip.
    speed_small_clip: bool,
    bare_iterations: usize,
    decode_rounds: usize,
    /// 1280x720 re-encode in the decoder section as well as the shipped clip.
    decode_720p: bool,
    /// Every shipped bundle; otherwise the default plus temporal ones.
    all_bundles: bool,
    /// Many cameras: warm-up and measured seconds per step, the first and the most streams.
    multicam_warmup_s: f64,
    multicam_seconds: f64,
    multicam_start: usize,
    multicam_max: usize,
}

const FULL: Profile = Profile {
    name: "full",
    real_encodes: &["p12", "b12", "p6", "b6"],
    correction_budgets: &[0.15, 0.3, 0.5],
    real_default_only: false,
    sequences: 12,
    encodes: &["p", "b"],
    stills_limit: None,
    speed_rounds: 3,
    speed_max_frames: None,
    speed_small_clip: true,
    bare_iterations: 40,
    decode_rounds: 5,
    decode_720p: true,
    all_bundles: true,
    multicam_warmup_s: multicam::DEFAULT_WARMUP_SECONDS,
    multicam_seconds: multicam::DEFAULT_SECONDS,
    multicam_start: 1,
    multicam_max: 48,
};

const QUICK: Profile = Profile {
    name: "quick",
    real_encodes: &["p12", "b12"],
    correction_budgets: &[0.3],
    real_default_only: true,
    sequences: 1,
    encodes: &["p"],
    stills_limit: Some(10),
    speed_rounds: 1,
    speed_max_frames: Some(60),
    speed_small_clip: false,
    bare_iterations: 15,
    decode_rounds: 1,
    decode_720p: false,
    all_bundles: false,
    multicam_warmup_s: 1.5,
    multicam_seconds: 2.0,
    multicam_start: 1,
    multicam_max: 12,
};

const SMOKE: Profile = Profile {
    name: "smoke",
    real_encodes: &["p12"],
    correction_budgets: &[0.3],
    real_default_only: true,
    sequences: 1,
    encodes: &["p"],
    stills_limit: Some(4),
    speed_rounds: 1,
    speed_max_frames: Some(48),
    speed_small_clip: false,
    bare_iterations: 10,
    decode_rounds: 1,
    decode_720p: false,
    all_bundles: false,
    multicam_warmup_s: 2.0,
    multicam_seconds: 2.0,
    multicam_start: 2,
    multicam_max: 2,
};

/// camvid-motion frames per sequence and seed: the generator's defaults.
const MOTION_FRAMES: usize = 36;
const KEYFRAME_INTERVAL: u32 = 12;
const LOWRES_SCALE: f64 = 0.5;
/// The side of the speed section's re-encode of the shipped clip (the CamVid size).
const SMALL_CLIP: (u32, u32) = (480, 360);

/// A shipped bundle and the modes the element can run it in.
struct BundleInfo {
    name: String,
    manifest: Manifest,
    modes: Vec<Mode>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = if args.out.is_absolute() {
        args.out.clone()
    } else {
        std::env::current_dir()?.join(&args.out)
    };
    let python = Python::new(&args.python, &root)?;
    python.ensure_matplotlib()?;
    let report = if args.render_only {
        let path = out.join("report.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (run the report first)", path.display()))?;
        let report: Report =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if report.format_version != FORMAT_VERSION {
            bail!(
                "{}: format_version {} (this report writes {FORMAT_VERSION}); run it again",
                path.display(),
                report.format_version
            );
        }
        report
    } else {
        let profile = if args.smoke {
            &SMOKE
        } else if args.quick {
            &QUICK
        } else {
            &FULL
        };
        let report = measure(&args, profile, &python, &root)?;
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let path = out.join("report.json");
        std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        report
    };

    let plots = render::PLOTS;
    python.run(
        "models/report_plots.py",
        &[
            out.join("report.json").display().to_string(),
            out.display().to_string(),
        ],
    )?;
    for plot in plots {
        let path = out.join(plot.file);
        if !path.is_file() {
            bail!("models/report_plots.py did not write {}", path.display());
        }
    }
    let markdown = render::report_markdown(&report);
    let md_path = out.join("report.md");
    std::fs::write(&md_path, &markdown)
        .with_context(|| format!("writing {}", md_path.display()))?;
    print!("{markdown}");
    eprintln!("[report] wrote {}", md_path.display());
    if args.update_readme {
        let readme = &args.readme;
        let base = readme.parent().unwrap_or(Path::new("."));
        let link = relative_to(&md_path, base);
        render::update_readme(readme, &render::readme_block(&report, &link))?;
        eprintln!("[report] rewrote the results block of {}", readme.display());
    }
    Ok(())
}

/// Runs every section.
fn measure(args: &Args, profile: &Profile, python: &Python, root: &Path) -> Result<Report> {
    let started = Instant::now();
    let started_utc = utc_now();
    gst::init()?;
    gstvss::ensure_registered()?;
    let camvid = data_dir(root).join("camvid");
    if !camvid.join("test.txt").is_file() {
        bail!(
            "{}: no CamVid (test.txt): the accuracy sections need it; put the project's \
             shared/data beside the checkout or set VSS_DATA",
            camvid.display()
        );
    }
    let mut notes = Vec::new();
    let bundles = shipped_bundles(&mut notes)?;
    let pick = |b: &&BundleInfo| {
        if args.bundles.is_empty() {
            profile.all_bundles || b.name == DEFAULT_BUNDLE || b.manifest.scheme != Scheme::Image
        } else {
            args.bundles.contains(&b.name)
        }
    };
    for name in &args.bundles {
        if !bundles.iter().any(|b| &b.name == name) {
            bail!("--bundles: no usable shipped bundle named {name:?}");
        }
    }
    let chosen: Vec<&BundleInfo> = bundles.iter().filter(pick).collect();
    let left_out: Vec<&str> = bundles
        .iter()
        .filter(|b| !pick(b))
        .map(|b| b.name.as_str())
        .collect();
    if !left_out.is_empty() {
        notes.push(format!(
            "left out by {}: {} (the full profile runs every shipped bundle)",
            if args.bundles.is_empty() {
                format!("the {} profile", profile.name)
            } else {
                "--bundles".to_string()
            },
            left_out.join(", ")
        ));
    }
    // camvid-motion and the speed section need CamVid's classes; the stills section maps others.
    let motion_bundles: Vec<&BundleInfo> = chosen
        .iter()
        .copied()
        .filter(|b| b.manifest.dataset == "camvid")
        .collect();
    for b in chosen.iter().filter(|b| b.manifest.dataset != "camvid") {
        notes.push(format!(
            "{}: predicts {} classes, so it is scored on CamVid test stills only (through \
             the class map), not on camvid-motion nor timed",
            b.name, b.manifest.dataset
        ));
    }
    if motion_bundles.is_empty() {
        bail!("no chosen bundle predicts CamVid's classes");
    }
    let threads = if args.threads > 0 {
        args.threads as usize
    } else {
        gstvss::model::threads()
    };
    let environment = environment(python, threads, &started_utc)?;
    eprintln!(
        "[report] {} profile: {}, {} cores, {threads} torch threads; bundles {}",
        profile.name,
        environment.cpu,
        environment.cores,
        chosen
            .iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let real_motion = real_motion_section(args, profile, python, root, &motion_bundles)?;
    let motion = motion_section(args, profile, python, root, &motion_bundles, threads)?;
    let stills = stills_section(profile, python, &chosen, threads, &mut notes)?;
    let speed = speed_section(args, profile, python, &motion_bundles, threads)?;
    let decoders = decoder_section(profile, python)?;
    let multicam = multicam_section(profile)?;

    let mut environment = environment;
    environment.load_after = common::machine::load_average();
    Ok(Report {
        format_version: FORMAT_VERSION,
        profile: profile.name.into(),
        environment,
        wall_s: started.elapsed().as_secs_f64(),
        real_motion: Some(real_motion),
        motion,
        stills,
        speed,
        decoders,
        multicam,
        notes,
    })
}

/// The shipped bundles whose manifest reads, with the modes each can serve, in the element's
/// order of modes. A bundle that does not read is noted and left out.
fn shipped_bundles(notes: &mut Vec<String>) -> Result<Vec<BundleInfo>> {
    let modes = element_modes()?;
    let mut out = Vec::new();
    for name in gstvss::model::Bundle::list_shipped() {
        let manifest = gstvss::model::resolve_bundle(&name)
            .map_err(anyhow::Error::from)
            .and_then(|dir| Ok(Manifest::read(&dir.join(gstvss::model::MANIFEST_FILE))?));
        match manifest {
            Ok(manifest) => {
                let serving = modes
                    .iter()
                    .copied()
                    .filter(|m| m.schemes().contains(&manifest.scheme))
                    .collect();
                out.push(BundleInfo {
                    name,
                    manifest,
                    modes: serving,
                });
            }
            Err(e) => notes.push(format!(
                "{name}: left out, its manifest does not read: {e:#}"
            )),
        }
    }
    Ok(out)
}

/// The modes vsssegment offers, from its `mode` property's enum, in its order.
fn element_modes() -> Result<Vec<Mode>> {
    let element = gst::ElementFactory::make("vsssegment").build()?;
    let pspec = element
        .find_property("mode")
        .context("vsssegment has no mode property")?;
    let pspec = pspec
        .downcast_ref::<gst::glib::ParamSpecEnum>()
        .context("vsssegment's mode is not an enum")?;
    let mut modes = Vec::new();
    for value in pspec.enum_class().values() {
        match Mode::from_name(value.nick()) {
            Some(m) => modes.push(m),
            None => eprintln!(
                "[report] vsssegment mode {:?} is unknown to this report; skipped",
                value.nick()
            ),
        }
    }
    Ok(modes)
}

/// How both accuracy sections run the element for `bundle`.
fn element_settings(
    args: &Args,
    bundle: &str,
    policy: &str,
    decoder_thread_type: &str,
) -> SegmentSettings {
    SegmentSettings {
        model: bundle.to_string(),
        policy: policy.to_string(),
        keyframe_interval: KEYFRAME_INTERVAL,
        lowres_scale: LOWRES_SCALE,
        threads: args.threads,
        decoder_thread_type: decoder_thread_type.to_string(),
    }
}

/// camvid-real: every bundle in every mode it serves, and `warp` at each correction budget.
fn real_motion_section(
    args: &Args,
    profile: &Profile,
    python: &Python,
    root: &Path,
    bundles: &[&BundleInfo],
) -> Result<MotionSection> {
    let data = root.join(".cache/camvid-real");
    let t = Instant::now();
    eprintln!("[report] camvid-real (models/camvid_real.py)");
    python.run("models/camvid_real.py", &[])?;
    let sequences = motion_eval::sequence_dirs(&data, None)?;
    let policy = "keyframe-policy=codec".to_string();
    let decoder_thread_type = "slice".to_string();
    let encodes: Vec<String> = profile.real_encodes.iter().map(|s| s.to_string()).collect();
    let mut runs = Vec::new();
    for bundle in bundles
        .iter()
        .filter(|b| !profile.real_default_only || b.name == DEFAULT_BUNDLE)
    {
        let settings = element_settings(args, &bundle.name, &policy, &decoder_thread_type);
        let mut modes: Vec<String> = bundle.modes.iter().map(|m| m.as_str().into()).collect();
        if bundle.modes.contains(&Mode::Warp) {
            modes.extend(
                profile
                    .correction_budgets
                    .iter()
                    .map(|b| format!("warp@{b}")),
            );
        }
        let evaluated = motion_eval::evaluate(
            &settings,
            &sequences,
            &encodes,
            &modes,
            |_, _, encode, mode| {
                eprint!("\r[report] camvid-real {} {encode} {mode:<12}", bundle.name)
            },
        )?;
        eprintln!();
        runs.extend(evaluated.iter().map(|run| motion_run(&bundle.name, run)));
    }
    eprintln!(
        "[report] camvid-real done in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let frames = runs.first().map_or(0, |r| r.frames as usize);
    Ok(MotionSection {
        dataset: "camvid-real".into(),
        data: relative_to(&data, root),
        sequences: sequences.len(),
        frames_per_sequence: frames / sequences.len().max(1),
        policy,
        keyframe_interval: KEYFRAME_INTERVAL,
        lowres_scale: LOWRES_SCALE,
        decoder_thread_type,
        runs,
        peers: Vec::new(),
    })
}

fn motion_section(
    args: &Args,
    profile: &Profile,
    python: &Python,
    root: &Path,
    bundles: &[&BundleInfo],
    threads: usize,
) -> Result<MotionSection> {
    let split = root.join(".cache/camvid-motion/test");
    let t = Instant::now();
    eprintln!(
        "[report] camvid-motion: {} sequences (models/camvid_motion.py)",
        profile.sequences
    );
    python.run(
        "models/camvid_motion.py",
        &[
            "--sequences".into(),
            profile.sequences.to_string(),
            "--frames".into(),
            MOTION_FRAMES.to_string(),
        ],
    )?;
    let sequences = motion_eval::sequence_dirs(&split, Some(profile.sequences))?;
    if sequences.len() < profile.sequences {
        bail!(
            "{}: {} sequences, the {} profile needs {}",
            split.display(),
            sequences.len(),
            profile.name,
            profile.sequences
        );
    }
    let policy = "keyframe-policy=codec".to_string();
    let decoder_thread_type = "slice".to_string();
    let encodes: Vec<String> = profile.encodes.iter().map(|s| s.to_string()).collect();
    let mut runs = Vec::new();
    for bundle in bundles {
        let settings = element_settings(args, &bundle.name, &policy, &decoder_thread_type);
        let modes: Vec<String> = bundle.modes.iter().map(|m| m.as_str().into()).collect();
        let evaluated = motion_eval::evaluate(
            &settings,
            &sequences,
            &encodes,
            &modes,
            |i, _, encode, mode| {
                eprint!(
                    "\r[report] camvid-motion {} [{}/{}] {encode} {mode:<12}",
                    bundle.name,
                    i + 1,
                    sequences.len()
                )
            },
        )?;
        eprintln!();
        runs.extend(evaluated.iter().map(|run| motion_run(&bundle.name, run)));
    }

    let mut peers = Vec::new();
    if let Some(default) = bundles
        .iter()
        .find(|b| b.name == DEFAULT_BUNDLE && b.manifest.scheme == Scheme::Image)
    {
        eprintln!("[report] camvid-motion: the Python per-frame baseline");
        let mut a = vec![
            "camvid-motion".into(),
            "--encode".into(),
            "p".into(),
            "--bundle".into(),
            default.name.clone(),
            "--threads".into(),
            threads.to_string(),
        ];
        a.extend(sequences.iter().map(|s| s.display().to_string()));
        let v = python.json("models/peer_baseline.py", &a)?;
        peers.push(MotionPeer {
            name: "Python per-frame (PyAV + TorchScript)".into(),
            bundle: default.name.clone(),
            encode: "p".into(),
            frames: python::number(&v, "frames")? as u64,
            miou: python::score(&v, "miou"),
            pixel_accuracy: python::score(&v, "pixel_accuracy"),
            compute_ms_mean: python::number(&v, "compute_ms_mean")?,
            frame_ms_mean: python::number(&v, "frame_ms_mean")?,
        });
    }
    eprintln!(
        "[report] camvid-motion done in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    Ok(MotionSection {
        dataset: "camvid-motion".into(),
        data: relative_to(&split, root),
        sequences: sequences.len(),
        frames_per_sequence: MOTION_FRAMES,
        policy,
        keyframe_interval: KEYFRAME_INTERVAL,
        lowres_scale: LOWRES_SCALE,
        decoder_thread_type,
        runs,
        peers,
    })
}

fn motion_run(bundle: &str, run: &motion_eval::Run) -> MotionRun {
    let scores = run.all().scores();
    let finite = |v: f64| Some(v).filter(|v| v.is_finite());
    MotionRun {
        bundle: bundle.into(),
        encode: run.encode.clone(),
        mode: run.mode.clone(),
        frames: run.frames,
        keyframes: run.keyframes,
        miou: finite(scores.miou),
        pixel_accuracy: finite(scores.pixel_accuracy),
        per_distance: run
            .per_distance
            .iter()
            .enumerate()
            .map(|(d, t)| DistancePoint {
                d,
                frames: t.frames,
                miou: run.miou(d).and_then(finite),
            })
            .collect(),
        compute_ms: Timing::of(&run.compute_ms),
        pipeline_ms: run.wall.as_secs_f64() * 1e3 / run.frames.max(1) as f64,
        distance_mismatches: run.distance_mismatches,
    }
}

fn stills_section(
    profile: &Profile,
    python: &Python,
    bundles: &[&BundleInfo],
    threads: usize,
    notes: &mut Vec<String>,
) -> Result<StillsSection> {
    let t = Instant::now();
    let mut rows = Vec::new();
    let scratch = std::env::temp_dir().join(format!("vss-report-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    for bundle in bundles {
        if bundle.manifest.scheme != Scheme::Image {
            notes.push(format!(
                "{}: scheme {} is scored on camvid-motion only (models/evaluate.py scores \
                 image bundles)",
                bundle.name, bundle.manifest.scheme
            ));
            continue;
        }
        let (h, w) = bundle.manifest.native_size();
        let (lh, lw) = bundle.manifest.scaled_size(LOWRES_SCALE);
        for (branch, (sh, sw)) in [("full", (h, w)), ("lowres", (lh, lw))] {
            eprintln!(
                "[report] CamVid test: {} at {sh}x{sw} ({branch})",
                bundle.name
            );
            let json = scratch.join(format!("{}-{branch}.json", bundle.name));
            let mut a = vec![
                bundle.name.clone(),
                "--split".into(),
                "test".into(),
                "--size".into(),
                format!("{sh}x{sw}"),
                "--threads".into(),
                threads.to_string(),
                "--json".into(),
                json.display().to_string(),
            ];
            if let Some(n) = profile.stills_limit {
                a.extend(["--limit".into(), n.to_string()]);
            }
            python.run("models/evaluate.py", &a)?;
            let text = std::fs::read_to_string(&json)
                .with_context(|| format!("reading {}", json.display()))?;
            let v = python::parse_json(&text).with_context(|| json.display().to_string())?;
            rows.push(StillsRow {
                bundle: bundle.name.clone(),
                branch: branch.into(),
                size: [sh, sw],
                images: python::number(&v, "images")? as usize,
                miou: python::score(&v, "miou"),
                pixel_accuracy: python::score(&v, "pixel_accuracy"),
                class_map: v
                    .get("class_map")
                    .and_then(|c| c.as_str())
                    .map(str::to_string),
            });
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    eprintln!(
        "[report] CamVid test done in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    Ok(StillsSection {
        split: "test".into(),
        limit: profile.stills_limit,
        rows,
    })
}

/// One configuration of the speed table.
struct SpeedConfig {
    row: SpeedRow,
    how: Measure,
}

enum Measure {
    /// vssdec [! vsssegment props].
    Pipeline(Option<String>),
    /// vsssegment props alone, on the clip's frames decoded beforehand.
    Alone(String),
    Bare(String),
    Python(String),
}

fn speed_section(
    args: &Args,
    profile: &Profile,
    python: &Python,
    bundles: &[&BundleInfo],
    threads: usize,
) -> Result<Vec<SpeedClip>> {
    let t = Instant::now();
    let shipped = shipped_clip();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut clips = Vec::new();
    let mut runs = vec![(shipped, (960, 540), true)];
    if profile.speed_small_clip {
        runs.insert(
            0,
            (scaled_clip(SMALL_CLIP.0, SMALL_CLIP.1)?, SMALL_CLIP, false),
        );
    }
    for (clip, size, is_shipped) in runs {
        let mut configs = vec![SpeedConfig {
            row: speed_row("decode only (vssdec)", "decode", None, None, None),
            how: Measure::Pipeline(None),
        }];
        for bundle in bundles {
            for mode in &bundle.modes {
                let props = format!(
                    "model={} keyframe-policy=interval keyframe-interval={KEYFRAME_INTERVAL} \
                     lowres-scale={LOWRES_SCALE} overlay=none threads={} mode={}",
                    bundle.name,
                    args.threads,
                    mode.as_str()
                );
                configs.push(SpeedConfig {
                    row: speed_row(
                        &format!("vss {}", mode.as_str()),
                        "vss",
                        Some(&bundle.name),
                        Some(mode.as_str()),
                        None,
                    ),
                    how: Measure::Pipeline(Some(props.clone())),
                });
                if *mode == Mode::Warp {
                    configs.push(SpeedConfig {
                        row: speed_row(
                            "vss warp, async keyframes",
                            "vss",
                            Some(&bundle.name),
                            Some(mode.as_str()),
                            Some("async-keyframes"),
                        ),
                        how: Measure::Pipeline(Some(format!("{props} async-keyframes=true"))),
                    });
                }
            }
            if bundle.name == DEFAULT_BUNDLE && bundle.modes.contains(&Mode::Full) {
                configs.push(SpeedConfig {
                    row: speed_row(
                        "vss full, element alone (frames decoded beforehand)",
                        "alone",
                        Some(&bundle.name),
                        Some(Mode::Full.as_str()),
                        None,
                    ),
                    how: Measure::Alone(format!(
                        "model={} keyframe-policy=interval keyframe-interval={KEYFRAME_INTERVAL} \
                         overlay=none threads={} mode=full",
                        bundle.name, args.threads
                    )),
                });
            }
            configs.push(SpeedConfig {
                row: speed_row(
                    "bare forward loop (no GStreamer)",
                    "bare",
                    Some(&bundle.name),
                    None,
                    None,
                ),
                how: Measure::Bare(bundle.name.clone()),
            });
            if bundle.name == DEFAULT_BUNDLE && bundle.manifest.scheme == Scheme::Image {
                configs.push(SpeedConfig {
                    row: speed_row(
                        "Python per-frame (PyAV + TorchScript)",
                        "python",
                        Some(&bundle.name),
                        None,
                        None,
                    ),
                    how: Measure::Python(bundle.name.clone()),
                });
            }
        }
        let decoded = if configs.iter().any(|c| matches!(c.how, Measure::Alone(_))) {
            let (caps, mut buffers) = decode_all(&clip)?;
            if let Some(n) = profile.speed_max_frames {
                buffers.truncate(n);
            }
            Some((caps, buffers))
        } else {
            None
        };
        let mut best: Vec<Option<(f64, SpeedRow)>> = vec![None; configs.len()];
        for round in 0..profile.speed_rounds {
            // Alternate the order so that drift in machine load hits every configuration alike.
            let order: Vec<usize> = if round % 2 == 0 {
                (0..configs.len()).collect()
            } else {
                (0..configs.len()).rev().collect()
            };
            for i in order {
                let config = &configs[i];
                eprint!(
                    "\r[report] speed {}x{} round {}/{}: {:<44}",
                    size.0,
                    size.1,
                    round + 1,
                    profile.speed_rounds,
                    format!(
                        "{} {}",
                        config.row.bundle.as_deref().unwrap_or(""),
                        config.row.name
                    )
                );
                let mut row = config.row.clone();
                match &config.how {
                    Measure::Pipeline(props) => {
                        let run = run_pipeline(&clip, props.as_deref(), profile.speed_max_frames)?;
                        row.frames = run.frames;
                        row.fps = run.fps();
                        row.frame_ms = Timing::of(&run.latencies_ms);
                    }
                    Measure::Alone(props) => {
                        let (caps, buffers) = decoded.as_ref().expect("decoded above");
                        let run = run_element(caps, buffers, props)?;
                        row.frames = run.frames;
                        row.fps = run.fps();
                        row.frame_ms = Timing::of(&run.latencies_ms);
                    }
                    Measure::Bare(model) => {
                        let ms = bare_forward(model, profile.bare_iterations)?;
                        row.frames = ms.len();
                        row.frame_ms = Timing::of(&ms);
                        row.fps = row.frame_ms.map_or(0.0, |t| 1e3 / t.mean);
                    }
                    Measure::Python(model) => {
                        let mut a = vec![
                            "segment".into(),
                            clip.display().to_string(),
                            "--bundle".into(),
                            model.clone(),
                            "--threads".into(),
                            threads.to_string(),
                        ];
                        if let Some(n) = profile.speed_max_frames {
                            a.extend(["--max-frames".into(), n.to_string()]);
                        }
                        let v = python.json("models/peer_baseline.py", &a)?;
                        row.frames = python::number(&v, "frames")? as usize;
                        row.fps = python::number(&v, "fps")?;
                        row.frame_ms = Timing::of(&python::numbers(&v, "frame_ms")?);
                    }
                }
                if best[i].as_ref().is_none_or(|(fps, _)| row.fps > *fps) {
                    best[i] = Some((row.fps, row));
                }
            }
        }
        eprintln!();
        clips.push(SpeedClip {
            clip: relative_to(&clip, root),
            shipped: is_shipped,
            width: size.0,
            height: size.1,
            rounds: profile.speed_rounds,
            max_frames: profile.speed_max_frames,
            keyframe_interval: KEYFRAME_INTERVAL,
            rows: best.into_iter().flatten().map(|(_, row)| row).collect(),
        });
    }
    eprintln!("[report] speed done in {:.0} s", t.elapsed().as_secs_f64());
    Ok(clips)
}

fn speed_row(
    name: &str,
    kind: &str,
    bundle: Option<&str>,
    mode: Option<&str>,
    variant: Option<&str>,
) -> SpeedRow {
    SpeedRow {
        name: name.into(),
        kind: kind.into(),
        bundle: bundle.map(str::to_string),
        mode: mode.map(str::to_string),
        variant: variant.map(str::to_string),
        frames: 0,
        fps: 0.0,
        frame_ms: None,
    }
}

fn decoder_section(profile: &Profile, python: &Python) -> Result<Vec<DecodeClip>> {
    let t = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut clips = vec![(shipped_clip(), (960, 540), true)];
    if profile.decode_720p {
        clips.push((scaled_clip(1280, 720)?, (1280, 720), false));
    }
    // (name, GStreamer decoder or None for PyAV, motion vectors)
    let decoders: [(&str, Option<&str>, bool); 5] = [
        ("avdec_h264", Some("avdec_h264"), false),
        (
            "vssdec export-mvs=true",
            Some("vssdec export-mvs=true"),
            true,
        ),
        (
            "vssdec export-mvs=false",
            Some("vssdec export-mvs=false"),
            false,
        ),
        ("PyAV +export_mvs (vectors read)", None, true),
        ("PyAV", None, false),
    ];
    let mut out = Vec::new();
    for (clip, size, shipped) in clips {
        let mut seconds: Vec<Vec<f64>> = vec![Vec::new(); decoders.len()];
        let mut frames = 0;
        for round in 0..profile.decode_rounds {
            let order: Vec<usize> = if round % 2 == 0 {
                (0..decoders.len()).collect()
            } else {
                (0..decoders.len()).rev().collect()
            };
            for i in order {
                let (name, gst_decoder, mvs) = decoders[i];
                eprint!(
                    "\r[report] decoders {}x{} round {}/{}: {name:<36}",
                    size.0,
                    size.1,
                    round + 1,
                    profile.decode_rounds
                );
                let (secs, n) = match gst_decoder {
                    Some(d) => {
                        let run = decode_once(&clip, d)?;
                        (run.total, run.frames)
                    }
                    None => {
                        let mut a = vec!["decode".into(), clip.display().to_string()];
                        if mvs {
                            a.push("--export-mvs".into());
                        }
                        let v = python.json("models/peer_baseline.py", &a)?;
                        (
                            python::number(&v, "seconds")?,
                            python::number(&v, "frames")? as u64,
                        )
                    }
                };
                if frames != 0 && n != frames {
                    bail!(
                        "{}: {name} decoded {n} frames, another decoder {frames}",
                        clip.display()
                    );
                }
                frames = n;
                seconds[i].push(secs);
            }
        }
        eprintln!();
        out.push(DecodeClip {
            clip: relative_to(&clip, root),
            shipped,
            width: size.0,
            height: size.1,
            frames,
            rounds: profile.decode_rounds,
            rows: decoders
                .iter()
                .zip(seconds)
                .map(|((name, gst_decoder, mvs), s)| {
                    let m = median(&s);
                    DecodeRow {
                        name: name.to_string(),
                        kind: if gst_decoder.is_some() {
                            "gstreamer"
                        } else {
                            "pyav"
                        }
                        .into(),
                        motion_vectors: *mvs,
                        seconds: s,
                        median_s: m,
                        fps: frames as f64 / m,
                    }
                })
                .collect(),
        });
    }
    eprintln!(
        "[report] decoders done in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// Many live cameras: the most streams that keep real time in `full` and in `warp` (and any
/// warp variant the element adds) sharing one model, and in `warp` with a model per stream
/// (examples/common/multicam.rs, as `examples/multicam --find-max` runs it).
fn multicam_section(profile: &Profile) -> Result<Vec<Search>> {
    let t = Instant::now();
    let camera = Camera::encode(
        &shipped_clip(),
        multicam::DEFAULT_WIDTH,
        multicam::DEFAULT_HEIGHT,
        multicam::DEFAULT_FPS,
    )?;
    let shared = Settings {
        warmup_s: profile.multicam_warmup_s,
        seconds: profile.multicam_seconds,
        ..Settings::default()
    };
    let mut configs = vec![Settings {
        mode: Mode::Full.as_str().into(),
        ..shared.clone()
    }];
    for mode in Mode::ALL
        .iter()
        .filter(|m| m.as_str().starts_with(Mode::Warp.as_str()))
    {
        configs.push(Settings {
            mode: mode.as_str().into(),
            ..shared.clone()
        });
    }
    configs.push(Settings {
        share: false,
        ..shared.clone()
    });
    let mut searches: Vec<Search> = Vec::new();
    for settings in configs {
        // Where the same mode held already (shared, before a model per stream), else the
        // profile's first count.
        let start = searches
            .iter()
            .filter(|s| s.settings.mode == settings.mode)
            .map(|s| s.held)
            .max()
            .filter(|&n| n > 0)
            .unwrap_or(profile.multicam_start);
        let limits = Limits {
            start,
            max: profile.multicam_max,
        };
        let label = settings.label();
        let search = multicam::find_max(&camera, &settings, limits, |step| {
            eprintln!("[report] many cameras, {label}: {}", step.summary_line())
        })?;
        eprintln!("[report] many cameras: {}", search.result_line());
        searches.push(search);
    }
    eprintln!(
        "[report] many cameras done in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    Ok(searches)
}

/// Versions and the machine, before anything runs.
fn environment(python: &Python, threads: usize, started: &str) -> Result<Environment> {
    let v = python.json("models/peer_baseline.py", &["versions".into()])?;
    let s = |field: &str| {
        v.get(field)
            .and_then(|x| x.as_str())
            .unwrap_or("unknown")
            .to_string()
    };
    let pyav_ffmpeg = v
        .get("av_ffmpeg")
        .and_then(|m| m.get("libavcodec"))
        .and_then(|x| x.as_str())
        .map_or("unknown".into(), |c| format!("libavcodec {c}"));
    let matplotlib = python
        .run(
            "models/report_plots.py",
            &["--matplotlib-version".to_string()],
        )
        .map(|o| o.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let codec = ffmpeg::codec::version();
    let ffmpeg = format!(
        "FFmpeg {} (libavcodec {}.{}.{})",
        ffmpeg_release(),
        codec >> 16,
        (codec >> 8) & 0xff,
        codec & 0xff
    );
    Ok(Environment {
        cpu: common::machine::cpu_model(),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory: meminfo_total(),
        os: os_release(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or("unknown".into(), |s| s.trim().to_string()),
        torch_threads: threads,
        gstreamer: gst::version_string().to_string(),
        ffmpeg,
        rustc: tool_version("rustc"),
        vss: env!("CARGO_PKG_VERSION").into(),
        python: s("python"),
        torch: s("torch"),
        numpy: s("numpy"),
        pyav: s("av"),
        pyav_ffmpeg,
        matplotlib,
        command: common::provenance::command_line(),
        commit: common::provenance::commit(),
        started: started.into(),
        load_before: common::machine::load_average(),
        load_after: String::new(),
    })
}

fn ffmpeg_release() -> String {
    // SAFETY: av_version_info returns a static NUL-terminated string.
    unsafe {
        let p = ffmpeg::ffi::av_version_info();
        if p.is_null() {
            return "unknown".into();
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

fn meminfo_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or("unknown".into(), |kb| {
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        })
}

fn os_release() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn tool_version(tool: &str) -> String {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or("unknown".into(), |o| {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        })
}

/// The shared data folder: $VSS_DATA, else ../shared/data beside the repository (as
/// models/vss_models/paths.py finds it).
fn data_dir(root: &Path) -> PathBuf {
    match std::env::var_os("VSS_DATA").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => root.join("../shared/data"),
    }
}

/// `path` relative to `base` when inside it, else as it is.
fn relative_to(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Now in UTC as `YYYY-MM-DD HH:MM:SS UTC` (civil-from-days, no date crate needed).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
