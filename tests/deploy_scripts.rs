//! The deployment files, exercised for real: `deploy/check.sh` (shellcheck, systemd-analyze,
//! nginx -t), the management scripts driving two instances of the built binary side by side,
//! `deploy/set-webhook.sh` against a fake Bot API, and `nginx/subgpt.conf` serving TLS in
//! front of a fake backend.
//!
//! Needs on the machine: bash, curl, shellcheck, nginx, openssl (the project's test script
//! installs them); a missing one fails the test with a message naming it.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use wiremock::matchers::{body_json, header, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "123456:TESTTOKEN";

/// Variables a developer's or CI's shell may carry that would override an instance's `.env`,
/// or send loopback traffic to a proxy.
const SCRUBBED: &[&str] = &[
    "SUBGPT_HOME",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_API_URL",
    "WEBHOOK_SECRET",
    "WEBHOOK_URL",
    "WEBHOOK_PATH",
    "BIND_ADDR",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_MODE",
    "OPENAI_MODEL",
    "REDIS_URL",
    "ANALYTICS_DB_PATH",
    "CHANNEL_ID",
    "ADMIN_USER_IDS",
    "SHUTDOWN_DRAIN_SECS",
    "START_TIMEOUT_SECS",
    "LOG_FORMAT",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `n` distinct free loopback ports (every listener is held until all are chosen).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// Polls `cond` until it holds or `timeout` passes; false on time-out.
fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn output_text(out: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(mut cmd: Command) -> (Output, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = output_text(&out);
    (out, text)
}

/// One of an instance's scripts, run from elsewhere (the scripts must not depend on the
/// caller's working directory) with a clean configuration environment.
fn script(instance: &Path, name: &str) -> Command {
    let mut cmd = Command::new(instance.join("deploy").join(name));
    cmd.current_dir(instance.parent().expect("instance has a parent"))
        .stdin(Stdio::null());
    for var in SCRUBBED {
        cmd.env_remove(var);
    }
    cmd
}

fn copy_deploy_scripts(instance: &Path) {
    let dest = instance.join("deploy");
    fs::create_dir_all(&dest).expect("create deploy/");
    for entry in fs::read_dir(repo().join("deploy")).expect("read deploy/") {
        let src = entry.expect("dir entry").path();
        if src.extension().is_some_and(|e| e == "sh") {
            // fs::copy keeps the permission bits, so the scripts stay executable.
            fs::copy(&src, dest.join(src.file_name().expect("file name"))).expect("copy script");
        }
    }
}

fn read_pid(instance: &Path) -> Option<u32> {
    fs::read_to_string(instance.join("run/subgpt.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` is alive with `dir` as its working directory (what the scripts check too).
fn runs_in(pid: u32, dir: &Path) -> bool {
    let Ok(cwd) = fs::read_link(format!("/proc/{pid}/cwd")) else {
        return false;
    };
    dir.canonicalize().is_ok_and(|d| d == cwd)
}

fn kill_pid(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Kills, at the end of a test and even when it fails, what the test started: the servers
/// started by the scripts (by PID, and only if still working in their instance directory)
/// and the test's own children.
#[derive(Default)]
struct Reaper {
    servers: Vec<(u32, PathBuf)>,
    instances: Vec<PathBuf>,
    children: Vec<Child>,
}

impl Reaper {
    /// Remembers the server named in `dir`'s PID file, if any.
    fn track(&mut self, dir: &Path) {
        if let Some(pid) = read_pid(dir) {
            self.servers.push((pid, dir.to_path_buf()));
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let from_pid_files = self
            .instances
            .iter()
            .filter_map(|dir| read_pid(dir).map(|pid| (pid, dir.clone())));
        let all: Vec<(u32, PathBuf)> = self.servers.iter().cloned().chain(from_pid_files).collect();
        for (pid, dir) in all {
            if runs_in(pid, &dir) {
                kill_pid(pid);
            }
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A fake Bot API (and OpenAI base) for the servers under test: getMe describes the bot, any
/// other bot method succeeds.
async fn fake_telegram() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path(format!("/bot{TOKEN}/getMe")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "ok": true,
            "result": {"id": 123456, "is_bot": true, "first_name": "Test", "username": "test_bot"}
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path_regex(r"^/bot[^/]+/[A-Za-z]+$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"ok": true, "result": true})),
        )
        .with_priority(10)
        .mount(&server)
        .await;
    server
}

/// `<root>/<name>/` with a copy of the binary as `subgpt`, the scripts in `deploy/`, and a
/// `.env` of its own.
fn make_instance(root: &Path, name: &str, port: u16, fake_api: &str) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(&dir).expect("create instance dir");
    fs::copy(env!("CARGO_BIN_EXE_subgpt"), dir.join("subgpt")).expect("copy the binary");
    copy_deploy_scripts(&dir);
    fs::write(
        dir.join(".env"),
        format!(
            "# instance {name}\n\
             TELEGRAM_BOT_TOKEN={TOKEN}\n\
             TELEGRAM_API_URL={fake_api}\n\
             WEBHOOK_SECRET=test_secret\n\
             WEBHOOK_URL=https://bot.example.com/webhook\n\
             BIND_ADDR=127.0.0.1:{port}\n\
             OPENAI_API_KEY=sk-test\n\
             OPENAI_BASE_URL={fake_api}/v1\n\
             ANALYTICS_DB_PATH=./data/usage.db\n\
             CHANNEL_ID=@testchannel\n\
             SHUTDOWN_DRAIN_SECS=5\n\
             LOG_FORMAT=json\n"
        ),
    )
    .expect("write .env");
    dir
}

/// An instance named `bot` of the built binary under `root`, started with start.sh, its
/// server left to `reaper`. Keep the returned fake Bot API alive while the server runs.
async fn started_instance(root: &Path, reaper: &mut Reaper) -> (MockServer, PathBuf) {
    let api = fake_telegram().await;
    let port = free_ports(1)[0];
    let dir = make_instance(root, "bot", port, &api.uri());
    reaper.instances.push(dir.clone());
    let (out, text) = run(script(&dir, "start.sh"));
    reaper.track(&dir);
    assert!(out.status.success(), "start.sh:\n{text}");
    (api, dir)
}

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

fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .chain(extra.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// nginx in the foreground, as a single process (no workers to outlive a kill), killed by
/// PID when dropped.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The site config with its deployment specifics swapped for the test's: the listen ports
/// (IPv6 listeners dropped: the test host may have no IPv6), the certificate, the upstream.
fn site_config_for_test(tls_port: u16, http_port: u16, cert_dir: &Path, backend: &str) -> String {
    let original =
        fs::read_to_string(repo().join("nginx/subgpt.conf")).expect("read nginx/subgpt.conf");
    let (mut tls_listens, mut http_listens) = (0, 0);
    let mut lines = Vec::new();
    for line in original.lines() {
        let t = line.trim_start();
        if t.starts_with("listen ") {
            if t.contains("[::]") {
                continue;
            }
            if let Some(rest) = t.strip_prefix("listen 443") {
                tls_listens += 1;
                lines.push(format!("    listen 127.0.0.1:{tls_port}{rest}"));
                continue;
            }
            if let Some(rest) = t.strip_prefix("listen 80") {
                http_listens += 1;
                lines.push(format!("    listen 127.0.0.1:{http_port}{rest}"));
                continue;
            }
            panic!("nginx/subgpt.conf: unexpected listen line: {line}");
        }
        lines.push(line.to_string());
    }
    assert_eq!(
        (tls_listens, http_listens),
        (1, 1),
        "one IPv4 listen each for 443 and 80"
    );
    let mut conf = lines.join("\n");
    for (from, to) in [
        ("server 127.0.0.1:8080;", format!("server {backend};")),
        (
            "/etc/letsencrypt/live/bot.example.com/fullchain.pem",
            cert_dir.join("cert.pem").display().to_string(),
        ),
        (
            "/etc/letsencrypt/live/bot.example.com/privkey.pem",
            cert_dir.join("key.pem").display().to_string(),
        ),
    ] {
        assert!(
            conf.contains(from),
            "nginx/subgpt.conf no longer contains {from:?}"
        );
        conf = conf.replace(from, &to);
    }
    conf
}

/// nginx serving the site (as adapted by [`site_config_for_test`], then by `edit`) in front of
/// `backend`, from a temp dir; killed when dropped.
struct NginxSite {
    tls_port: u16,
    http_port: u16,
    dir: tempfile::TempDir,
    // Dropped (killed) before `dir` goes away.
    _nginx: Nginx,
}

impl NginxSite {
    fn start(backend: &str, edit: impl FnOnce(String) -> String) -> NginxSite {
        let nginx = find_program("nginx", &["/usr/sbin/nginx"]).expect(
            "nginx is not installed (apt-get install nginx); the project's test script installs it",
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let t = tmp.path();
        let (out, text) = run({
            let mut c = Command::new("openssl");
            c.args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
            ])
            .arg("-keyout")
            .arg(t.join("key.pem"))
            .arg("-out")
            .arg(t.join("cert.pem"));
            c
        });
        assert!(
            out.status.success(),
            "openssl could not make a certificate:\n{text}"
        );
        let ports = free_ports(2);
        let (tls_port, http_port) = (ports[0], ports[1]);
        let site = edit(site_config_for_test(tls_port, http_port, t, backend));
        fs::write(t.join("subgpt.conf"), site).expect("write site config");
        let d = t.display();
        // Enough connections for 100 parallel clients plus their upstream connections.
        fs::write(
            t.join("nginx.conf"),
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log info;\nevents {{ worker_connections 1024; }}\n\
                 http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/client_body;\n  \
                 proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
                 uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/subgpt.conf;\n}}\n"
            ),
        )
        .expect("write nginx.conf");
        let mut prefix = t.as_os_str().to_owned();
        prefix.push("/");
        let child = Command::new(&nginx)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(t.join("nginx.conf"))
            .arg("-e")
            .arg(t.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut nginx_proc = Nginx(child);
        let up = wait_until(Duration::from_secs(15), || {
            let exited = matches!(nginx_proc.0.try_wait(), Ok(Some(_)));
            exited
                || (TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
                    && TcpStream::connect(("127.0.0.1", http_port)).is_ok())
        });
        let exited = nginx_proc.0.try_wait().expect("try_wait");
        let site = NginxSite {
            tls_port,
            http_port,
            dir: tmp,
            _nginx: nginx_proc,
        };
        assert!(
            up && exited.is_none(),
            "nginx did not start ({exited:?}):\n{}",
            site.error_log()
        );
        site
    }

    fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.tls_port)
    }
}

fn https_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
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

/// A backend that answers every POST /webhook with 200, recording them.
async fn accepting_backend() -> MockServer {
    let backend = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/webhook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&backend)
        .await;
    backend
}

/// POSTs an update with the secret; the status, or 0 when the request failed.
async fn post_update(client: reqwest::Client, url: String) -> u16 {
    client
        .post(url)
        .header("X-Telegram-Bot-Api-Secret-Token", "test_secret")
        .body(r#"{"update_id":1}"#)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
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

/// An executable shell script at `path`.
fn write_script(path: &Path, body: &str) {
    fs::write(path, body).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod script");
}

type UsageRows = Vec<(i64, i64, String, String, i64)>;

fn usage_rows(db: &Path) -> (i64, UsageRows) {
    let conn = rusqlite::Connection::open(db).expect("open the usage db");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    let mut stmt = conn
        .prepare("SELECT id, user_id, username, request_date, tokens_used FROM user_analytics ORDER BY id")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    (version, rows)
}

#[tokio::test]
async fn update_rolls_back_the_databases_a_failed_binary_migrated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut reaper = Reaper::default();
    let (_api, dir) = started_instance(tmp.path(), &mut reaper).await;
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
