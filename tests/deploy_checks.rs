//! The deployment files checked without running a bot: `deploy/check.sh` passes (shellcheck,
//! systemd-analyze, nginx -t), and the systemd unit keeps restarting through an outage.
//!
//! Needs on the machine: bash, shellcheck, nginx, openssl (the project's test script installs
//! them); a missing one fails the test with a message naming it.

// Each deploy test binary uses only part of the helpers.
#[allow(dead_code)]
mod deploy;

use std::fs;
use std::process::Command;

use deploy::instance::*;

#[test]
fn deploy_check_script_passes() {
    let (out, text) = run(Command::new(repo().join("deploy/check.sh")));
    assert!(out.status.success(), "deploy/check.sh failed:\n{text}");
}

#[test]
fn the_unit_never_gives_up_for_good() {
    let unit = fs::read_to_string(repo().join("deploy/subgpt.service")).expect("read the unit");
    let value = |key: &str| {
        unit.lines()
            .filter_map(|l| l.trim().strip_prefix(&format!("{key}=")))
            .next_back()
            .map(str::to_string)
    };
    // systemd.unit(5): StartLimitIntervalSec=0 disables the start rate limit, so restarts go
    // on through an outage of any length (deploy/check.sh runs systemd-analyze verify on it).
    assert_eq!(
        value("StartLimitIntervalSec").as_deref(),
        Some("0"),
        "{unit}"
    );
    assert_eq!(value("Restart").as_deref(), Some("on-failure"));
    let restart_sec = value("RestartSec").expect("RestartSec");
    assert!(
        restart_sec != "0" && restart_sec != "0s",
        "restarts are spaced: {restart_sec}"
    );
}
