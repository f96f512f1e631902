//! Finds (and if needed builds) the `ocigate` binary under test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Path to the `ocigate` binary: `$OCIGATE_BIN`, else the workspace's own build, brought up to date with
/// `cargo build` once per test process (so `cargo test -p integration-tests` never runs a stale binary).
pub fn ocigate() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("OCIGATE_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<test-binary> -> target/<profile>/ocigate
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir =
            exe.parent().and_then(|p| p.parent()).expect("test binary lives in target/<profile>/deps");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "gateway", "--bin", "ocigate"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for the ocigate binary");
        assert!(status.success(), "cargo build -p gateway failed");
        let bin = profile_dir.join("ocigate");
        assert!(bin.exists(), "{} not found after cargo build", bin.display());
        bin
    })
    .clone()
}
