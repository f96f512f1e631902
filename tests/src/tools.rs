//! External tools some tests drive (skopeo, docker-registry).
//!
//! When a tool is missing, the test prints why and returns early, unless `OCIGATE_REQUIRE_TOOLS=1`
//! (set by `.ci/run`), which turns a missing tool into a failure.

use std::process::Command;

/// Is `tool` on the PATH? Prints a skip notice when it is not, or panics under `OCIGATE_REQUIRE_TOOLS=1`.
pub fn available(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let hint = format!("{tool} is not installed (Debian: apt-get install {})", package(tool));
        assert!(std::env::var("OCIGATE_REQUIRE_TOOLS").as_deref() != Ok("1"), "{hint}");
        eprintln!("SKIPPED: {hint}");
    }
    found
}

fn package(tool: &str) -> &str {
    match tool {
        "skopeo" => "skopeo",
        "docker-registry" => "docker-registry",
        other => other,
    }
}

/// Runs a command and returns its stdout, panicking with its output on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
