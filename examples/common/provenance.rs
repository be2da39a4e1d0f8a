//! Where a result came from: the command that made it and the commit it ran at.

use std::path::Path;

/// The command line as a user would type it: `cargo run --release --example NAME -- ARGS` for
/// an example binary, the program and its arguments otherwise.
pub fn command_line() -> String {
    let mut args = std::env::args();
    let exe = args.next().unwrap_or_default();
    let rest: Vec<String> = args.map(|a| quote(&a)).collect();
    let path = Path::new(&exe);
    let in_examples = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "examples");
    let line = match path.file_name().map(|n| n.to_string_lossy().into_owned()) {
        Some(name) if in_examples => {
            format!("cargo run --release --example {name} -- {}", rest.join(" "))
        }
        _ => format!("{exe} {}", rest.join(" ")),
    };
    line.trim_end().trim_end_matches(" --").to_string()
}

/// Shell-quotes an argument that needs it.
fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@%+".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The checkout's commit (12 hex digits), marked when tracked files differ from it.
pub fn commit() -> String {
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{hash} (with uncommitted changes)")
            } else {
                hash
            }
        }
        None => "unknown".into(),
    }
}

fn git(args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}
