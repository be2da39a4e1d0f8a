//! The report command (`examples/report`): one `--smoke` run into a scratch folder must write
//! report.md with every section, numbers that parse and agree with report.json, real PNG plots,
//! an environment block naming the commit, and a README block that `--update-readme` rewrites
//! in place. Needs CamVid in ../shared/data (CI=true makes its absence a failure) and the venv.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{example, in_ci, root, scratch};
use gstvss::model::{DEFAULT_BUNDLE, MANIFEST_FILE, Manifest, Scheme};
use gstvss::segmenter::Mode;
use serde_json::Value;

const SECTIONS: [&str; 8] = [
    "## Headline",
    "## Environment",
    "## Goals",
    "## Accuracy: camvid-motion",
    "## Accuracy: CamVid test",
    "## Speed",
    "## Decoders",
    "## Many cameras",
];
const PLOTS: [&str; 4] = [
    "miou_vs_ms.png",
    "miou_vs_distance.png",
    "speed.png",
    "decoders.png",
];
/// The smoke run takes about two minutes on an idle 2-core machine; generous for a loaded one.
const TIMEOUT: Duration = Duration::from_secs(40 * 60);

fn camvid_available() -> bool {
    let data = std::env::var_os("VSS_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data"));
    let ok = data.join("camvid/test.txt").is_file();
    assert!(
        ok || !in_ci(),
        "CamVid is missing in CI ({}): the report scores on it",
        data.display()
    );
    if !ok {
        eprintln!(
            "SKIPPED: no CamVid at {}; CI=true makes this a failure",
            data.display()
        );
    }
    ok
}

/// Runs the report binary to success; returns its stdout.
fn run_report(args: &[&str]) -> String {
    let mut cmd = Command::new(example("report"));
    cmd.current_dir(root())
        .args(args)
        .env_remove("GST_PLUGIN_PATH")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "{cmd:?} failed ({status}):\n{}",
        tail(&stderr)
    );
    stdout
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The text of one `## ` section of report.md (up to the next `## `).
fn section<'a>(md: &'a str, heading: &str) -> &'a str {
    let start = md
        .find(&format!("{heading}\n"))
        .unwrap_or_else(|| panic!("report.md has no {heading:?} section"));
    let rest = &md[start + heading.len()..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

/// Every Markdown table in `text`: header cells and rows of cells.
fn tables(text: &str) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < lines.len() {
        if lines[i].starts_with('|') && lines[i + 1].starts_with("| ---") {
            let header = cells(lines[i]);
            let mut rows = Vec::new();
            let mut j = i + 2;
            while j < lines.len() && lines[j].starts_with('|') {
                let row = cells(lines[j]);
                assert_eq!(
                    row.len(),
                    header.len(),
                    "table row {:?} has {} cells, its header {}",
                    lines[j],
                    row.len(),
                    header.len()
                );
                rows.push(row);
                j += 1;
            }
            out.push((header, rows));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// A numeric cell: `12.34`, `+0.00`, `1.23x`, `**45.67**`, `8.3%`.
fn number(cell: &str) -> f64 {
    let t = cell.trim_matches('*').trim_end_matches(['x', '%']);
    t.parse()
        .unwrap_or_else(|_| panic!("cell {cell:?} is not a number"))
}

fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name:?} in {header:?}"))
}

/// The shipped bundles the smoke profile picks (the default one and every temporal one that
/// predicts CamVid's classes), each with the modes its scheme serves.
fn expected_bundles() -> BTreeMap<String, Vec<&'static str>> {
    let all = Mode::ALL;
    let mut out = BTreeMap::new();
    for name in gstvss::model::Bundle::list_shipped() {
        let dir = gstvss::model::resolve_bundle(&name).expect("shipped bundle resolves");
        let Ok(m) = Manifest::read(&dir.join(MANIFEST_FILE)) else {
            continue;
        };
        if m.dataset != "camvid" || (name != DEFAULT_BUNDLE && m.scheme == Scheme::Image) {
            continue;
        }
        let modes = all
            .iter()
            .filter(|mode| mode.schemes().contains(&m.scheme))
            .map(|mode| mode.as_str())
            .collect();
        out.insert(name, modes);
    }
    out
}

fn head_commit() -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(root())
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .expect("git");
    assert!(out.status.success(), "git rev-parse failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} has no PNG signature",
        path.display()
    );
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let info = reader.info();
    (info.width, info.height)
}

fn fps_of(clip: &Value, kind: &str, bundle: Option<&str>, mode: Option<&str>) -> f64 {
    clip["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["kind"] == kind
                && bundle.is_none_or(|b| r["bundle"] == b)
                && mode.is_none_or(|m| r["mode"] == m)
                && r["variant"].is_null()
        })
        .unwrap_or_else(|| panic!("no {kind} {bundle:?} {mode:?} row in {}", clip["clip"]))["fps"]
        .as_f64()
        .unwrap()
}

#[test]
fn smoke_report_has_every_section_number_and_plot() {
    if !camvid_available() {
        return;
    }
    let dir = scratch("report");
    let out = dir.join("report");
    let stdout = run_report(&["--smoke", "--out", out.to_str().unwrap()]);
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(
        stdout.contains(&md),
        "the report is printed to stdout as written"
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
            .expect("report.json parses");
    assert_eq!(json["profile"], "smoke");

    // Sections in order, plots linked and drawn.
    let mut at = 0;
    for heading in SECTIONS {
        let i = md[at..]
            .find(&format!("\n{heading}\n"))
            .unwrap_or_else(|| panic!("section {heading:?} missing or out of order"));
        at += i + 1;
    }
    for plot in PLOTS {
        assert!(md.contains(&format!("]({plot})")), "report.md links {plot}");
        let (w, h) = png_size(&out.join(plot));
        assert!(
            w >= 600 && h >= 300 && w <= 4000 && h <= 4000,
            "{plot} is {w}x{h}"
        );
    }

    // Environment: the command, the machine, the commit it ran at.
    let env = section(&md, "## Environment");
    assert!(env.contains("- command: `cargo run --release --example report -- --smoke"));
    let commit = head_commit();
    assert!(
        env.contains(&format!("- git commit: {commit}")),
        "the environment names commit {commit}:\n{env}"
    );
    let cores = std::thread::available_parallelism().unwrap().get();
    assert!(env.contains(&format!(", {cores} cores")), "{env}");
    for lib in [
        "GStreamer 1.",
        "FFmpeg ",
        "torch 2.",
        "PyAV ",
        "matplotlib ",
    ] {
        assert!(env.contains(lib), "the environment names {lib}:\n{env}");
    }

    // Real motion (camvid-real): the default bundle's full, warp and warp with correction on
    // the P encode at interval 12, and the goal judged for it.
    let real = section(&md, "## Accuracy: real motion (camvid-real)");
    let t = tables(real);
    let (header, rows) = &t[0];
    let (b, e, m) = (
        column(header, "bundle"),
        column(header, "encode"),
        column(header, "mode"),
    );
    for mode in ["full", "warp", "warp@0.3"] {
        let row = rows
            .iter()
            .find(|r| r[b] == DEFAULT_BUNDLE && r[e] == "p12" && r[m] == mode)
            .unwrap_or_else(|| panic!("camvid-real has no row for p12 {mode}"));
        let v = number(&row[column(header, "mIoU")]);
        assert!((5.0..=100.0).contains(&v), "{mode} mIoU {v} is implausible");
        assert!(
            number(&row[column(header, "ms/frame mean")]) > 0.0,
            "{row:?}"
        );
    }
    let (header, rows) = &t[1];
    let goal = rows
        .iter()
        .find(|r| r[column(header, "bundle")] == DEFAULT_BUNDLE)
        .expect("the real-motion goal is judged for the default bundle");
    assert!(
        ["yes", "no"].contains(&goal[column(header, "met")].as_str()),
        "{goal:?}"
    );

    // camvid-motion: every mode of every picked bundle, for the P encode, plus the peer.
    let motion = section(&md, "## Accuracy: camvid-motion");
    let t = tables(motion);
    let (header, rows) = &t[0];
    let (b, e, m) = (
        column(header, "bundle"),
        column(header, "encode"),
        column(header, "mode"),
    );
    let miou = column(header, "mIoU");
    let delta = column(header, "vs full (points)");
    for (bundle, modes) in expected_bundles() {
        for mode in modes {
            let row = rows
                .iter()
                .find(|r| r[b] == bundle && r[e] == "p" && r[m] == mode)
                .unwrap_or_else(|| panic!("camvid-motion has no row for {bundle} p {mode}"));
            let v = number(&row[miou]);
            assert!(
                (5.0..=100.0).contains(&v),
                "{bundle} {mode} mIoU {v} is implausible"
            );
            if mode == "full" {
                assert_eq!(number(&row[delta]), 0.0);
            }
            for cell in &row[delta + 1..] {
                assert!(number(cell) >= 0.0, "{bundle} {mode}: {cell}");
            }
        }
    }
    let peer = rows
        .iter()
        .find(|r| r[m].starts_with("Python per-frame"))
        .expect("camvid-motion has the Python per-frame row");
    assert!((5.0..=100.0).contains(&number(&peer[miou])));
    // The per-distance table covers a whole GOP.
    let (dheader, drows) = &t[1];
    assert_eq!(dheader.last().unwrap(), "d=11");
    assert_eq!(drows.len(), rows.len() - 1);

    // CamVid test: full and lowres of the default bundle, mIoU as a number.
    let stills = tables(section(&md, "## Accuracy: CamVid test"));
    let (header, rows) = &stills[0];
    for branch in ["full", "lowres"] {
        let row = rows
            .iter()
            .find(|r| r[0] == DEFAULT_BUNDLE && r[1] == branch)
            .unwrap_or_else(|| panic!("CamVid test has no {DEFAULT_BUNDLE} {branch} row"));
        assert_eq!(number(&row[column(header, "images")]), 4.0);
        assert!((5.0..=100.0).contains(&number(&row[column(header, "mIoU")])));
    }

    // Speed: the shipped clip (the smoke profile leaves out the 480x360 re-encode, as the quick
    // one does), every row numeric, full's ratio 1, ratios agree with report.json.
    let speed = section(&md, "## Speed");
    let speed_tables = tables(speed);
    assert_eq!(speed_tables.len(), 1, "a table per clip");
    assert!(speed.contains("### 960x540") && !speed.contains("### 480x360"));
    for (header, rows) in &speed_tables {
        let (fps, vs_full) = (column(header, "fps"), column(header, "vs full"));
        for name in [
            "decode only (vssdec)",
            "vss full",
            "bare forward loop (no GStreamer)",
            "Python per-frame (PyAV + TorchScript)",
        ] {
            assert!(rows.iter().any(|r| r[0] == name), "speed has no {name} row");
        }
        for row in rows {
            assert!(number(&row[fps]) > 0.0, "{row:?}");
            assert!(number(&row[vs_full]) > 0.0, "{row:?}");
            if row[0] == "vss full" {
                assert_eq!(row[vs_full], "1.00x");
            }
        }
    }
    let shipped = json["speed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["shipped"] == true)
        .expect("the shipped clip in report.json");
    assert_eq!(shipped["width"], 960);
    let full = fps_of(shipped, "vss", Some(DEFAULT_BUNDLE), Some("full"));
    let python = fps_of(shipped, "python", None, None);

    // Decoders: avdec_h264 is the 1.00x reference; every decoder decoded every frame.
    let dec = tables(section(&md, "## Decoders"));
    let (header, rows) = &dec[0];
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        [
            "avdec_h264",
            "vssdec export-mvs=true",
            "vssdec export-mvs=false",
            "PyAV +export_mvs (vectors read)",
            "PyAV"
        ]
    );
    assert_eq!(rows[0][column(header, "vs avdec_h264")], "1.00x");
    for row in rows {
        assert!(number(&row[column(header, "fps")]) > 0.0);
    }
    let dclip = &json["decoders"][0];
    assert_eq!(dclip["frames"], 221, "the shipped clip has 221 frames");
    let dfps = |name: &str| {
        dclip["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()["fps"]
            .as_f64()
            .unwrap()
    };

    // Many cameras: a row per search (full, warp shared, warp with a model per stream), each
    // with the streams held as a number and the steps it ran.
    let cams = section(&md, "## Many cameras");
    let (header, rows) = &tables(cams)[0];
    assert_eq!(rows.len(), json["multicam"].as_array().unwrap().len());
    assert!(rows.len() >= 3, "{cams}");
    let steps_col = column(header, "steps (streams: held)");
    for row in rows {
        // "2: no, 1: yes": the counts tried, within the smoke profile's 1..=2. A search starts
        // where the same mode held before (2 or 1, shared), else at the profile's 2.
        let tried: Vec<(f64, &str)> = row[steps_col]
            .split(", ")
            .map(|step| {
                let (n, held) = step.split_once(": ").expect("N: yes|no");
                (number(n), held)
            })
            .collect();
        assert!(
            tried
                .iter()
                .all(|&(n, h)| (1.0..=2.0).contains(&n) && (h == "yes" || h == "no")),
            "{row:?}"
        );
        let held = number(&row[column(header, "streams held")]);
        assert!(
            held == 0.0 || tried.contains(&(held, "yes")),
            "held {held} is a count that held: {row:?}"
        );
    }
    assert!(rows[0][steps_col].starts_with("2: "), "{:?}", rows[0]);

    // The headline states the three ratios as measured.
    let headline = section(&md, "## Headline");
    assert_eq!(headline.matches("\n- **").count(), 3, "{headline}");
    assert!(
        headline.contains(&format!("**{:.2}x**", full / python)),
        "vss full vs Python = {:.2}x:\n{headline}",
        full / python
    );
    assert!(
        headline.contains(&format!(
            "**{:.2}x**",
            dfps("vssdec export-mvs=true") / dfps("avdec_h264")
        )),
        "vssdec vs avdec_h264:\n{headline}"
    );
    assert!(
        headline.contains("runs at **"),
        "the best mode's speedup:\n{headline}"
    );

    // The goals are judged from the same numbers: warp's fps ratio on the shipped clip, and
    // a verdict on every line.
    let goals = section(&md, "## Goals");
    let warp = fps_of(shipped, "vss", Some(DEFAULT_BUNDLE), Some("warp"));
    let warp_line = goals
        .lines()
        .find(|l| l.starts_with("| `warp` fps vs `full`"))
        .unwrap_or_else(|| panic!("no warp speed goal:\n{goals}"));
    assert!(
        warp_line.contains(&format!("| {:.2}x |", warp / full)),
        "warp / full = {:.2}x:\n{warp_line}",
        warp / full
    );
    let verdict = if warp / full >= 8.0 {
        "| met"
    } else {
        "| **missed by"
    };
    assert!(warp_line.contains(verdict), "{warp_line}");
    // Every line has a verdict; only a goal whose reference this profile leaves out (the
    // distributed bundle's teacher, camvid-cgnet, outside the full profile) is unmeasured.
    let (header, rows) = &tables(goals)[0];
    let (g, v) = (column(header, "goal"), column(header, "verdict"));
    for row in rows {
        let measured = row[v].contains("met") || row[v].contains("missed");
        assert!(
            measured || (row[v] == "not measured" && row[g].contains("teacher")),
            "{row:?}"
        );
    }

    // --render-only --update-readme rewrites only the block between the markers, and the same
    // report renders the same block again.
    let readme = dir.join("README.md");
    let original =
        "# title\n\nbefore\n\n<!-- report:begin -->\nold table\n<!-- report:end -->\n\nafter\n";
    std::fs::write(&readme, original).unwrap();
    let args = [
        "--render-only",
        "--out",
        out.to_str().unwrap(),
        "--update-readme",
        "--readme",
        readme.to_str().unwrap(),
    ];
    run_report(&args);
    let once = std::fs::read_to_string(&readme).unwrap();
    assert!(once.starts_with("# title\n\nbefore\n\n<!-- report:begin -->\n"));
    assert!(once.ends_with("<!-- report:end -->\n\nafter\n"));
    assert!(!once.contains("old table"));
    assert!(once.contains("| bundle | mode | camvid-motion mIoU, P / B |"));
    let real_motion = once.find("Real motion (CamVid val sequence 0016E5");
    assert!(
        real_motion.is_some_and(|i| i < once.find("camvid-motion mIoU").unwrap()),
        "the block leads with real motion:\n{once}"
    );
    assert!(
        once.contains("report/report.md"),
        "the block links the report"
    );
    assert!(once.contains(&format!("**{:.2}x**", full / python)));
    run_report(&args);
    assert_eq!(std::fs::read_to_string(&readme).unwrap(), once);
}

/// The README's results come from the report: one marked block, written by `--update-readme`.
#[test]
fn readme_results_block_is_generated() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    assert_eq!(readme.matches("<!-- report:begin -->").count(), 1);
    assert_eq!(readme.matches("<!-- report:end -->").count(), 1);
    let begin = readme.find("<!-- report:begin -->").unwrap();
    let end = readme.find("<!-- report:end -->").unwrap();
    let block = &readme[begin..end];
    assert!(
        block.contains("generated by `cargo run --release --example report -- --update-readme`"),
        "the README's results block is not the report's:\n{block}"
    );
    assert!(block.contains("| bundle | mode | camvid-motion mIoU, P / B |"));
}
