//! The management scripts exercised for real: `start.sh`, `stop.sh` and `status.sh` driving two
//! instances of the built binary side by side, `start.sh` against an impostor on its port, and
//! `deploy/set-webhook.sh` against a fake Bot API. `update.sh` has `deploy_update.rs`.
//!
//! Needs on the machine: bash, curl (the project's test script installs them); a missing one
//! fails the test with a message naming it.

// Each deploy test binary uses only part of the helpers.
#[allow(dead_code)]
mod deploy;

use std::fs;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use deploy::instance::*;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn scripts_manage_two_instances_without_touching_each_other() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut reaper = Reaper::default();
    let api = fake_telegram().await;
    let ports = free_ports(2);
    let a = make_instance(tmp.path(), "bot-a", ports[0], &api.uri());
    let b = make_instance(tmp.path(), "bot-b", ports[1], &api.uri());
    reaper.instances = vec![a.clone(), b.clone()];

    for dir in [&a, &b] {
        let (out, text) = run(script(dir, "start.sh"));
        if let Some(pid) = read_pid(dir) {
            reaper.servers.push((pid, dir.clone()));
        }
        assert!(
            out.status.success(),
            "start.sh in {}:\n{text}",
            dir.display()
        );
    }
    let pid_a = read_pid(&a).expect("PID file of a");
    let pid_b = read_pid(&b).expect("PID file of b");
    assert_ne!(pid_a, pid_b);
    assert!(
        runs_in(pid_a, &a),
        "pid {pid_a} does not work in {}",
        a.display()
    );
    assert!(
        runs_in(pid_b, &b),
        "pid {pid_b} does not work in {}",
        b.display()
    );
    assert!(a.join("logs/subgpt.log").is_file(), "start.sh keeps a log");

    for (dir, pid) in [(&a, pid_a), (&b, pid_b)] {
        let (out, text) = run(script(dir, "status.sh"));
        assert_eq!(
            out.status.code(),
            Some(0),
            "status.sh of a running instance:\n{text}"
        );
        assert!(text.contains("running"), "status.sh says running:\n{text}");
        assert!(
            text.contains(&pid.to_string()),
            "status.sh names pid {pid}:\n{text}"
        );
    }

    let (out, text) = run(script(&b, "start.sh"));
    assert!(
        !out.status.success(),
        "a second start.sh must refuse:\n{text}"
    );
    assert!(text.contains("already running"), "{text}");
    assert_eq!(
        read_pid(&b),
        Some(pid_b),
        "the refused start leaves the PID file alone"
    );

    let (out, text) = run(script(&a, "stop.sh"));
    assert!(out.status.success(), "stop.sh of a:\n{text}");
    assert!(
        wait_until(Duration::from_secs(5), || !runs_in(pid_a, &a)),
        "pid {pid_a} still runs after stop.sh:\n{text}"
    );
    assert!(read_pid(&a).is_none(), "stop.sh removes the PID file");

    let (out, text) = run(script(&a, "status.sh"));
    assert_eq!(
        out.status.code(),
        Some(3),
        "status.sh of a stopped instance:\n{text}"
    );
    assert!(text.contains("stopped"), "{text}");

    let (out, text) = run(script(&b, "status.sh"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "b must still run after a was stopped:\n{text}"
    );
    assert!(
        text.contains("running") && text.contains(&pid_b.to_string()),
        "{text}"
    );
    assert!(runs_in(pid_b, &b), "b's server must be untouched");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("http client");
    let healthz = format!("http://127.0.0.1:{}/healthz", ports[1]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let failure = match client.get(&healthz).send().await {
            Ok(resp) if resp.status() == 200 => break,
            Ok(resp) => format!("status {}", resp.status()),
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "b's /healthz never answered 200: {failure}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (out, text) = run(script(&a, "stop.sh"));
    assert!(
        out.status.success(),
        "stop.sh of a stopped instance exits 0:\n{text}"
    );
    assert!(text.contains("not running"), "{text}");

    // A stale PID file naming some other live process: the scripts remove the file and leave
    // the process alone.
    let mut bystander = Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn sleep");
    let bystander_pid = bystander.id();
    fs::write(a.join("run/subgpt.pid"), format!("{bystander_pid}\n")).expect("write PID file");
    let (out, text) = run(script(&a, "stop.sh"));
    let still_alive = bystander.try_wait().expect("try_wait").is_none();
    reaper.children.push(bystander);
    assert!(
        out.status.success(),
        "stop.sh with a stale PID file:\n{text}"
    );
    assert!(
        text.contains("stale"),
        "stop.sh reports the stale PID file:\n{text}"
    );
    assert!(
        still_alive,
        "stop.sh killed pid {bystander_pid}, which is not its server"
    );
    assert!(read_pid(&a).is_none(), "the stale PID file is removed");

    let (out, text) = run(script(&b, "stop.sh"));
    assert!(out.status.success(), "stop.sh of b:\n{text}");
    assert!(
        wait_until(Duration::from_secs(5), || !runs_in(pid_b, &b)),
        "pid {pid_b} still runs after stop.sh"
    );
    let (out, text) = run(script(&b, "status.sh"));
    assert_eq!(out.status.code(), Some(3), "{text}");
}

#[tokio::test]
async fn set_webhook_script_registers_url_secret_and_allowed_updates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let api = MockServer::start().await;
    let expected = serde_json::json!({
        "url": "https://bot.example.com/webhook",
        "secret_token": "test_secret",
        "allowed_updates": ["message", "chat_member", "my_chat_member"],
    });
    let mut expected_drop = expected.clone();
    expected_drop["drop_pending_updates"] = serde_json::json!(true);
    for body in [expected, expected_drop] {
        Mock::given(method("POST"))
            .and(path(format!("/bot{TOKEN}/setWebhook")))
            .and(header("content-type", "application/json"))
            .and(body_json(body))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "ok": true, "result": true, "description": "Webhook was set"
            })))
            .expect(1)
            .mount(&api)
            .await;
    }
    // No binary and no Cargo.toml here: SUBGPT_HOME names the instance.
    let dir = tmp.path().join("bot");
    copy_deploy_scripts(&dir);
    fs::write(
        dir.join(".env"),
        format!(
            "export TELEGRAM_BOT_TOKEN=\"{TOKEN}\"\nWEBHOOK_URL='https://bot.example.com/webhook'\n\
             WEBHOOK_SECRET=test_secret # a comment\nTELEGRAM_API_URL={}\n",
            api.uri()
        ),
    )
    .expect("write .env");

    for args in [&[][..], &["--drop-pending"][..]] {
        let (out, text) = run({
            let mut c = script(&dir, "set-webhook.sh");
            c.args(args).env("SUBGPT_HOME", &dir);
            c
        });
        assert!(out.status.success(), "set-webhook.sh {args:?}:\n{text}");
        assert!(
            text.contains("Webhook was set"),
            "prints Telegram's answer:\n{text}"
        );
        assert!(
            !text.contains("TESTTOKEN"),
            "the token must not be printed:\n{text}"
        );
    }

    // Telegram refusing (here: an unknown token → 404): exit 1, the URL shown redacted.
    let (out, text) = run({
        let mut c = script(&dir, "set-webhook.sh");
        c.env("SUBGPT_HOME", &dir)
            .env("TELEGRAM_BOT_TOKEN", "999:WRONGTOKEN");
        c
    });
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
    assert!(
        !text.contains("WRONGTOKEN"),
        "the token must not be printed:\n{text}"
    );
}

#[tokio::test]
async fn start_trusts_only_its_own_process_on_the_port() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut reaper = Reaper::default();
    let api = fake_telegram().await;
    let port = free_ports(1)[0];
    let dir = make_instance(tmp.path(), "bot", port, &api.uri());
    reaper.instances = vec![dir.clone()];
    // Another process answers /healthz on this instance's BIND_ADDR.
    let impostor = MockServer::builder()
        .listener(TcpListener::bind(("127.0.0.1", port)).expect("bind the port"))
        .start()
        .await;
    Mock::given(path("/healthz"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&impostor)
        .await;

    // A binary that starts but never listens must not pass for healthy.
    write_script(
        &dir.join("subgpt"),
        "#!/bin/sh\nwhile :; do sleep 1; done\n",
    );
    let (out, text) = run({
        let mut c = script(&dir, "start.sh");
        c.env("START_TIMEOUT_SECS", "3");
        c
    });
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("something else answers on port {port}")),
        "{text}"
    );
    assert!(read_pid(&dir).is_none(), "no PID file is left");

    // The real binary cannot bind the port: start.sh sees it exit, not the impostor's answer.
    fs::copy(env!("CARGO_BIN_EXE_subgpt"), dir.join("subgpt")).expect("copy the binary");
    let (out, text) = run(script(&dir, "start.sh"));
    reaper.track(&dir);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("BIND_ADDR"), "the log says why:\n{text}");
}
