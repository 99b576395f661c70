//! Instances of the built binary for the deploy-script tests: a directory with a copy of the
//! binary, the scripts and a `.env`; running the scripts with a clean environment; killing
//! what a test started, by PID, even when it fails.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use wiremock::matchers::{path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub use super::ports::free_ports;

pub const TOKEN: &str = "123456:TESTTOKEN";

/// Variables a developer's or CI's shell may carry that would override an instance's `.env`,
/// or send loopback traffic to a proxy.
pub const SCRUBBED: &[&str] = &[
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
    "STATE_DB_PATH",
    "STARTUP_RETRY_SECS",
    "HTTP_HEADER_TIMEOUT_SECS",
    "HTTP_REQUEST_TIMEOUT_SECS",
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

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Polls `cond` until it holds or `timeout` passes; false on time-out.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
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

pub fn output_text(out: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn run(mut cmd: Command) -> (Output, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = output_text(&out);
    (out, text)
}

/// One of an instance's scripts, run from elsewhere (the scripts must not depend on the
/// caller's working directory) with a clean configuration environment.
pub fn script(instance: &Path, name: &str) -> Command {
    let mut cmd = Command::new(instance.join("deploy").join(name));
    cmd.current_dir(instance.parent().expect("instance has a parent"))
        .stdin(Stdio::null());
    for var in SCRUBBED {
        cmd.env_remove(var);
    }
    cmd
}

pub fn copy_deploy_scripts(instance: &Path) {
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

pub fn read_pid(instance: &Path) -> Option<u32> {
    fs::read_to_string(instance.join("run/subgpt.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` is alive with `dir` as its working directory (what the scripts check too).
pub fn runs_in(pid: u32, dir: &Path) -> bool {
    let Ok(cwd) = fs::read_link(format!("/proc/{pid}/cwd")) else {
        return false;
    };
    dir.canonicalize().is_ok_and(|d| d == cwd)
}

pub fn kill_pid(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Kills, at the end of a test and even when it fails, what the test started: the servers
/// started by the scripts (by PID, and only if still working in their instance directory)
/// and the test's own children.
#[derive(Default)]
pub struct Reaper {
    pub servers: Vec<(u32, PathBuf)>,
    pub instances: Vec<PathBuf>,
    pub children: Vec<Child>,
}

impl Reaper {
    /// Remembers the server named in `dir`'s PID file, if any.
    pub fn track(&mut self, dir: &Path) {
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
pub async fn fake_telegram() -> MockServer {
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
pub fn make_instance(root: &Path, name: &str, port: u16, fake_api: &str) -> PathBuf {
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
pub async fn started_instance(root: &Path, reaper: &mut Reaper) -> (MockServer, PathBuf) {
    let api = fake_telegram().await;
    let port = free_ports(1)[0];
    let dir = make_instance(root, "bot", port, &api.uri());
    reaper.instances.push(dir.clone());
    let (out, text) = run(script(&dir, "start.sh"));
    reaper.track(&dir);
    assert!(out.status.success(), "start.sh:\n{text}");
    (api, dir)
}

/// An executable shell script at `path`.
pub fn write_script(path: &Path, body: &str) {
    fs::write(path, body).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod script");
}

pub type UsageRows = Vec<(i64, i64, String, String, i64)>;

pub fn usage_rows(db: &Path) -> (i64, UsageRows) {
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
