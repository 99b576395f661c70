//! The deployment files, exercised for real: `deploy/check.sh` (shellcheck, systemd-analyze,
//! nginx -t), the management scripts driving two instances of the built binary side by side,
//! `deploy/set-webhook.sh` against a fake Bot API, and `nginx/subgpt.conf` serving TLS in
//! front of a fake backend.
//!
//! Needs on the machine: bash, curl, shellcheck, nginx, openssl (the project's test script
//! installs them); a missing one fails the test with a message naming it.

mod deploy;

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use deploy::instance::*;
use deploy::nginx::*;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[test]
fn deploy_check_script_passes() {
    let (out, text) = run(Command::new(repo().join("deploy/check.sh")));
    assert!(out.status.success(), "deploy/check.sh failed:\n{text}");
}

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
async fn update_rolls_back_a_binary_that_does_not_come_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut reaper = Reaper::default();
    let (_api, dir) = started_instance(tmp.path(), &mut reaper).await;
    let original = fs::read(dir.join("subgpt")).expect("read binary");

    // Answers --version, but its `serve` dies at once.
    let broken = tmp.path().join("broken-subgpt");
    fs::write(
        &broken,
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'subgpt 9.9.9'; exit 0; }\necho 'error: broken build' >&2\nexit 1\n",
    )
    .expect("write broken binary");
    fs::set_permissions(&broken, fs::Permissions::from_mode(0o755)).expect("chmod broken binary");

    let (out, text) = run({
        let mut c = script(&dir, "update.sh");
        c.arg(&broken).env("START_TIMEOUT_SECS", "10");
        c
    });
    reaper.track(&dir);
    assert_eq!(
        out.status.code(),
        Some(1),
        "update.sh with a broken binary fails:\n{text}"
    );
    assert!(text.contains("rolling back"), "{text}");
    assert_eq!(
        fs::read(dir.join("subgpt")).expect("read binary"),
        original,
        "the previous binary is restored"
    );
    let backups: Vec<_> = fs::read_dir(dir.join("backups"))
        .expect("backups/ exists")
        .collect();
    assert_eq!(backups.len(), 1, "one backup directory");
    let (out, text) = run(script(&dir, "status.sh"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the old version runs again:\n{text}"
    );

    let (out, text) = run(script(&dir, "stop.sh"));
    assert!(out.status.success(), "stop.sh:\n{text}");
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
async fn nginx_site_proxies_only_the_webhook_and_healthz() {
    let backend = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/webhook"))
        .and(header("x-telegram-bot-api-secret-token", "test_secret"))
        .and(header("x-forwarded-proto", "https"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&backend)
        .await;
    Mock::given(method("GET"))
        .and(path("/healthz"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&backend)
        .await;
    for route in ["/metrics", "/readyz"] {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(200).set_body_string("metrics"))
            .mount(&backend)
            .await;
    }
    let site = NginxSite::start(&backend.address().to_string(), |conf| conf);
    let error_log = || site.error_log();
    let (http_port, base) = (site.http_port, site.base());

    let client = https_client();

    let resp = client
        .post(format!("{base}/webhook"))
        .header("X-Telegram-Bot-Api-Secret-Token", "test_secret")
        .header("Content-Type", "application/json")
        .body(r#"{"update_id":1}"#)
        .send()
        .await
        .expect("POST /webhook through nginx");
    assert_eq!(
        resp.status(),
        200,
        "POST /webhook is proxied:\n{}",
        error_log()
    );

    let resp = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "ok");

    for route in ["/metrics", "/readyz", "/", "/webhookx"] {
        let resp = client
            .get(format!("{base}{route}"))
            .send()
            .await
            .expect("GET");
        assert!(
            resp.status() == 404 || resp.status() == 403,
            "GET {route} must not be exposed, got {}",
            resp.status()
        );
    }
    let resp = client
        .get(format!("{base}/webhook"))
        .send()
        .await
        .expect("GET /webhook");
    assert!(
        resp.status().is_client_error(),
        "GET /webhook is refused, got {}",
        resp.status()
    );

    let big = vec![b'x'; 1024 * 1024 + 512 * 1024];
    let resp = client
        .post(format!("{base}/webhook"))
        .header("X-Telegram-Bot-Api-Secret-Token", "test_secret")
        .body(big)
        .send()
        .await
        .expect("POST an oversized body");
    assert_eq!(resp.status(), 413, "bodies over 1 MiB are refused by nginx");

    let resp = client
        .get(format!("http://127.0.0.1:{http_port}/webhook"))
        .send()
        .await
        .expect("GET over plain HTTP");
    assert_eq!(resp.status(), 301, "port 80 redirects");
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(
        location.starts_with("https://") && location.ends_with("/webhook"),
        "redirect to https: {location}"
    );

    let seen = backend
        .received_requests()
        .await
        .expect("request recording is on");
    let paths: Vec<String> = seen
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    assert!(
        !paths
            .iter()
            .any(|p| p.ends_with("/metrics") || p.ends_with("/readyz")),
        "the backend must never see /metrics or /readyz: {paths:?}"
    );
    assert_eq!(
        paths
            .iter()
            .filter(|p| p.as_str() == "POST /webhook")
            .count(),
        1,
        "exactly the one valid webhook POST reaches the backend: {paths:?}"
    );
}

#[tokio::test]
async fn nginx_rate_limits_the_webhook_but_lets_100_parallel_deliveries_through() {
    let backend = accepting_backend().await;
    let site = NginxSite::start(&backend.address().to_string(), |conf| conf);
    let client = https_client();
    let url = format!("{}/webhook", site.base());
    // Telegram's most: 100 deliveries at once (setWebhook max_connections).
    let first: Vec<u16> =
        futures::future::join_all((0..100).map(|_| post_update(client.clone(), url.clone()))).await;
    assert!(
        first.iter().all(|s| *s == 200),
        "100 parallel deliveries must all pass: {first:?}\n{}",
        site.error_log()
    );
    // A flood from one address meets limit_req: 429, and nothing of it reaches the bot.
    let mut statuses = Vec::new();
    while statuses.len() < 5000 && !statuses.contains(&429) {
        let batch =
            futures::future::join_all((0..50).map(|_| post_update(client.clone(), url.clone())))
                .await;
        statuses.extend(batch);
    }
    assert!(
        statuses.contains(&429),
        "no 429 after {} requests",
        statuses.len()
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let passed = 100 + statuses.iter().filter(|s| **s == 200).count();
    let seen = backend.received_requests().await.expect("recording").len();
    assert_eq!(seen, passed, "only the requests answered 200 reach the bot");
}

#[tokio::test]
async fn nginx_telegram_allow_list_switches_on_with_one_include() {
    let backend = accepting_backend().await;
    let snippet = repo().join("nginx/telegram-only.conf");
    let site = NginxSite::start(&backend.address().to_string(), |conf| {
        let line = "# include /etc/nginx/snippets/subgpt-telegram-only.conf;";
        assert!(conf.contains(line), "the site has the include to uncomment");
        conf.replace(line, &format!("include {};", snippet.display()))
    });
    let status = post_update(https_client(), format!("{}/webhook", site.base())).await;
    assert_eq!(status, 403, "loopback is not Telegram");
    assert!(
        backend
            .received_requests()
            .await
            .expect("recording")
            .is_empty()
    );
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

#[tokio::test]
async fn update_rolls_back_the_databases_a_failed_binary_migrated() {
    rollback_of_a_migrated_database(true).await;
}

#[tokio::test]
async fn update_backs_up_with_sqlite3_when_the_installed_binary_has_no_backup_command() {
    rollback_of_a_migrated_database(false).await;
}

/// update.sh to a binary that migrates the database past the installed one and never gets
/// healthy; `installed_knows_backup: false` installs a binary older than `subgpt backup`.
async fn rollback_of_a_migrated_database(installed_knows_backup: bool) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut reaper = Reaper::default();
    let api = fake_telegram().await;
    let dir = make_instance(tmp.path(), "bot", free_ports(1)[0], &api.uri());
    reaper.instances.push(dir.clone());
    if !installed_knows_backup {
        // The real server, behind a wrapper that does not know `backup` (as clap would say).
        fs::create_dir_all(dir.join("old")).expect("mkdir");
        fs::rename(dir.join("subgpt"), dir.join("old/subgpt")).expect("move the binary");
        write_script(
            &dir.join("subgpt"),
            &format!(
                "#!/bin/sh
[ \"$1\" = backup ] && {{ echo \"error: unrecognized subcommand 'backup'\" >&2; exit 2; }}
\
                 exec {} \"$@\"
",
                dir.join("old/subgpt").display()
            ),
        );
    }
    let (out, text) = run(script(&dir, "start.sh"));
    reaper.track(&dir);
    assert!(out.status.success(), "start.sh:\n{text}");
    let db = dir.join("data/usage.db");
    {
        // Rows written beside the running service, as an operator's tool would.
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.busy_timeout(Duration::from_secs(5)).expect("busy");
        for user in 1..=3i64 {
            conn.execute(
                "INSERT INTO user_analytics (user_id, username, request_date, tokens_used) VALUES (?1, 'u', '2026-12-01', ?2)",
                (user, user * 10),
            )
            .expect("insert");
        }
    }
    let before = usage_rows(&db);
    assert_eq!(before.1.len(), 3);

    // The "new version": migrates the database past the old binary, then never gets healthy.
    let new = tmp.path().join("new-subgpt");
    write_script(
        &new,
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'subgpt 9.9.9'; exit 0; }\n\
         sqlite3 ./data/usage.db 'PRAGMA user_version = 99; CREATE TABLE from_the_future (x); DELETE FROM user_analytics;' || exit 3\n\
         echo 'migrated to 99' >&2\nwhile :; do sleep 1; done\n",
    );
    let (out, text) = run({
        let mut c = script(&dir, "update.sh");
        c.arg(&new).env("START_TIMEOUT_SECS", "5");
        c
    });
    reaper.track(&dir);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("rolling back") && text.contains("restored"),
        "{text}"
    );
    assert_eq!(
        text.contains("sqlite3 .backup"),
        !installed_knows_backup,
        "{text}"
    );
    let log = fs::read_to_string(dir.join("logs/subgpt.log")).unwrap_or_default();
    assert!(
        log.contains("migrated to 99"),
        "the new binary did run:\n{log}"
    );

    assert_eq!(usage_rows(&db), before, "the rows and schema are as before");
    let (out, text) = run(script(&dir, "status.sh"));
    assert_eq!(out.status.code(), Some(0), "the old version runs:\n{text}");
    assert!(text.contains("healthz:  ok"), "{text}");
    // What the failed version left is kept aside, not deleted.
    let backup = fs::read_dir(dir.join("backups"))
        .expect("backups/")
        .map(|e| e.expect("entry").path())
        .next()
        .expect("one backup");
    let aside = usage_rows(&backup.join("rolled-back/usage.db"));
    assert_eq!((aside.0, aside.1.len()), (99, 0));

    let (out, text) = run(script(&dir, "stop.sh"));
    assert!(out.status.success(), "stop.sh:\n{text}");
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
