//! The report's Python side: the venv's interpreter running the scripts in models/ (the
//! camvid-motion generator, CamVid evaluation, the per-frame peer, the plots).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The plots' own requirement, kept out of models/requirements.txt (which keys the venv).
pub const PLOT_REQUIREMENTS: &str = "models/requirements-report.txt";

pub struct Python {
    exe: PathBuf,
    root: PathBuf,
}

impl Python {
    /// The interpreter at `exe` (relative paths from the repository root); fails with the
    /// command that makes it when it is missing.
    pub fn new(exe: &Path, root: &Path) -> Result<Python> {
        let exe = if exe.is_absolute() {
            exe.to_path_buf()
        } else {
            root.join(exe)
        };
        if !exe.exists() {
            bail!(
                "{}: no Python interpreter (scripts/setup.sh makes the venv at .venv)",
                exe.display()
            );
        }
        Ok(Python {
            exe,
            root: root.to_path_buf(),
        })
    }

    fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.current_dir(&self.root).arg(self.root.join(script));
        cmd
    }

    /// Runs `script args`, its stderr passed through, and returns its stdout.
    pub fn run(&self, script: &str, args: &[String]) -> Result<String> {
        let output = self
            .command(script)
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("starting {} {script}", self.exe.display()))?;
        if !output.status.success() {
            bail!(
                "{script} {} failed ({}){}",
                args.join(" "),
                output.status,
                tail(&String::from_utf8_lossy(&output.stdout))
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs a script that prints one JSON object as its last line of output.
    pub fn json(&self, script: &str, args: &[String]) -> Result<serde_json::Value> {
        let out = self.run(script, args)?;
        let line = out
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .with_context(|| format!("{script} {} printed nothing", args.join(" ")))?;
        parse_json(line).with_context(|| format!("{script} {}: not JSON: {line}", args.join(" ")))
    }

    /// Makes sure matplotlib imports, installing models/requirements-report.txt into the venv
    /// when it does not (pip, from the package index).
    pub fn ensure_matplotlib(&self) -> Result<()> {
        if self.imports("matplotlib")? {
            return Ok(());
        }
        eprintln!(
            "[report] matplotlib is missing: pip install -r {PLOT_REQUIREMENTS} into {}",
            self.exe.display()
        );
        let status = Command::new(&self.exe)
            .current_dir(&self.root)
            .args(["-m", "pip", "install", "-q", "-r", PLOT_REQUIREMENTS])
            .status()
            .context("starting pip")?;
        if !status.success() || !self.imports("matplotlib")? {
            bail!(
                "installing {PLOT_REQUIREMENTS} into the venv failed ({status}); \
                 the plots need matplotlib"
            );
        }
        Ok(())
    }

    fn imports(&self, module: &str) -> Result<bool> {
        Ok(Command::new(&self.exe)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("starting {}", self.exe.display()))?
            .success())
    }
}

/// The last lines of a failed script's output, for the error.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(":\n{}", lines[lines.len().saturating_sub(10)..].join("\n"))
}

/// A number out of a script's JSON, naming the field when it is missing.
pub fn number(v: &serde_json::Value, field: &str) -> Result<f64> {
    v.get(field)
        .and_then(serde_json::Value::as_f64)
        .with_context(|| format!("field {field:?} missing or not a number in {v}"))
}

/// Like [`number`], None where the value is null or not finite (an undefined score).
pub fn score(v: &serde_json::Value, field: &str) -> Option<f64> {
    v.get(field)
        .and_then(serde_json::Value::as_f64)
        .filter(|x| x.is_finite())
}

/// A list of numbers out of a script's JSON.
pub fn numbers(v: &serde_json::Value, field: &str) -> Result<Vec<f64>> {
    v.get(field)
        .and_then(serde_json::Value::as_array)
        .with_context(|| format!("field {field:?} missing or not a list"))?
        .iter()
        .map(|x| {
            x.as_f64()
                .with_context(|| format!("{field}: {x} is not a number"))
        })
        .collect()
}

/// JSON as Python's `json` writes it: bare NaN, Infinity and -Infinity (outside strings)
/// become null before parsing.
pub fn parse_json(text: &str) -> Result<serde_json::Value> {
    let mut clean = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            clean.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if let Some(token) = ["NaN", "Infinity", "-Infinity"]
            .into_iter()
            .find(|t| rest.starts_with(t))
        {
            clean.push_str("null");
            rest = &rest[token.len()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        clean.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok(serde_json::from_str(&clean)?)
}
