//! The shipped unit is accepted by `systemd-analyze verify` and keeps its hardening.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::process::Command;

const UNIT: &str = include_str!("../systemd/aigate.service");

#[test]
fn systemd_analyze_accepts_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart binaries exist: point them at the binary under test.
    let unit = UNIT.replace("/usr/local/bin/aigate", support::gateway::binary());
    let path = dir.path().join("aigate.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze is needed (Debian package systemd; .ci/run installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed:\n{stderr}");
    assert!(!stderr.contains("aigate.service:"), "warnings about the unit:\n{stderr}");
}

#[test]
fn the_unit_is_hardened_and_reloads_through_an_upgrade() {
    let directive = |line: &str| UNIT.lines().any(|l| l.trim() == line);
    for line in [
        "User=aigate",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "LimitNOFILE=1048576",
        "Restart=on-failure",
        "Type=forking",
        "ExecReload=/usr/local/bin/aigate check --config /etc/aigate/aigate.yaml",
        "ExecReload=/bin/kill -QUIT $MAINPID",
        "ExecReload=/usr/local/bin/aigate run --daemon --upgrade --config /etc/aigate/aigate.yaml",
    ] {
        assert!(directive(line), "missing `{line}`");
    }
    // The check comes before the switch, so a bad configuration stops the reload.
    let check = UNIT.find("ExecReload=/usr/local/bin/aigate check").unwrap();
    let quit = UNIT.find("ExecReload=/bin/kill -QUIT").unwrap();
    assert!(check < quit);
}
