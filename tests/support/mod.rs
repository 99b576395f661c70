//! What integration tests need: the real `subgpt` binary started against fake Telegram and
//! OpenAI servers (real HTTP), temp dirs, and helpers that wait on conditions.
#![allow(dead_code)]

pub mod net;
pub mod openai;
pub mod operator;
pub mod ports;
pub mod redis;
mod spawn;
pub mod sse;
pub mod telegram;
mod updates;

use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;

pub use openai::FakeOpenAi;
pub use ports::free_port;
#[allow(unused_imports)]
pub use redis::RedisServer;
pub use spawn::Spawn;
pub use telegram::FakeTelegram;
#[allow(unused_imports)]
pub use updates::{chat_member_update, text_update, text_update_in};

pub const SECRET: &str = "webhook_Secret-123";
pub const CHANNEL: &str = "@test_channel";

/// Polls `cond` until it holds; panics naming `what` after `timeout`.
pub async fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two instances of the service sharing one Redis and the same fakes.
pub async fn two_instances(
    redis: &RedisServer,
    telegram: &FakeTelegram,
    openai: &FakeOpenAi,
) -> (TestApp, TestApp) {
    let spawn = || {
        Spawn::default()
            .fakes(telegram, openai)
            .env("REDIS_URL", &redis.url())
            .start()
    };
    (spawn().await, spawn().await)
}

/// A running `subgpt` and its fakes.
pub struct TestApp {
    pub base: String,
    pub telegram: FakeTelegram,
    pub openai: FakeOpenAi,
    pub dir: Arc<tempfile::TempDir>,
    child: Mutex<Child>,
    logs: Arc<Mutex<String>>,
    readers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    pub http: reqwest::Client,
    pub env: Vec<(String, String)>,
}

impl TestApp {
    /// Starts `serve` with defaults.
    pub async fn spawn() -> TestApp {
        Spawn::default().start().await
    }

    /// Updates accepted and not yet finished (rows of the inbox in `data/state.db`).
    pub fn inbox_len(&self) -> i64 {
        let conn = rusqlite::Connection::open(self.dir.path().join("data/state.db")).unwrap();
        conn.query_row("SELECT count(*) FROM inbox", [], |r| r.get(0))
            .unwrap()
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        let path = &self
            .env
            .iter()
            .find(|(k, _)| k == "ANALYTICS_DB_PATH")
            .unwrap()
            .1;
        self.dir.path().join(path)
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().id()
    }

    /// Everything the process printed so far.
    pub fn logs(&self) -> String {
        self.logs.lock().clone()
    }

    /// Waits (10 s at most) until the log has `needle`: it comes through a pipe and a reader
    /// thread, so a line can land a moment after what it describes was seen.
    pub async fn wait_log(&self, needle: &str) {
        let what = format!("{needle:?} in the log");
        eventually(&what, Duration::from_secs(10), || {
            self.logs().contains(needle)
        })
        .await;
    }

    /// POSTs raw bytes to the webhook with `secret` in the header (none when `None`).
    pub async fn post_raw(
        &self,
        secret: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::StatusCode {
        let mut request = self.http.post(format!("{}/webhook", self.base)).body(body);
        if let Some(secret) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        request.send().await.unwrap().status()
    }

    /// POSTs a body to the webhook with the right secret.
    pub async fn post_update(&self, update: &Value) -> reqwest::StatusCode {
        self.http
            .post(format!("{}/webhook", self.base))
            .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
            .json(update)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Sends a private text message from `user` and expects 200.
    pub async fn send_text(&self, update_id: i64, user: i64, text: &str) {
        let status = self.post_update(&text_update(update_id, user, text)).await;
        assert_eq!(status, 200, "webhook refused update {update_id}");
    }

    /// Sends a private text message from `user` with `language_code` and expects 200.
    pub async fn send_text_in(&self, update_id: i64, user: i64, text: &str, language_code: &str) {
        let update = text_update_in(update_id, user, text, language_code);
        let status = self.post_update(&update).await;
        assert_eq!(status, 200, "webhook refused update {update_id}");
    }

    /// Waits until `user` has received at least `n` messages; returns them.
    pub async fn wait_messages(&self, user: i64, n: usize) -> Vec<String> {
        let telegram = self.telegram.clone();
        let what = format!("{n} message(s) to user {user}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while telegram.sent_texts(user).len() < n {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {:?}\nlogs:\n{}",
                telegram.sent_texts(user),
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        telegram.sent_texts(user)
    }

    /// GET a route of the service and return its status and body.
    pub async fn get(&self, path: &str) -> (reqwest::StatusCode, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// The `/metrics` text once it holds every one of `needles` (a counter may be bumped just
    /// after the side effect a test waited for); panics with the last text after 10 s.
    pub async fn wait_metrics(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.get("/metrics").await.1;
            let missing = needles.iter().find(|n| !text.contains(**n));
            match missing {
                None => return text,
                Some(n) if Instant::now() >= deadline => panic!("{n} missing:\n{text}"),
                Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.pid().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    }

    /// Sends SIGKILL and waits for the process to be gone: a crash, nothing flushed.
    pub async fn kill(&self) {
        let pid = self.pid().to_string();
        Command::new("kill").args(["-KILL", &pid]).status().unwrap();
        let status = self.wait_exit(Duration::from_secs(10)).await;
        assert!(!status.success(), "killed, not exited");
    }

    /// Starts the service again on the same files and fakes, with `env` added.
    pub async fn restart(&self, env: &[(&str, &str)]) -> TestApp {
        let mut spawn = Spawn::default()
            .fakes(&self.telegram, &self.openai)
            .dir(&self.dir);
        for (k, v) in self.env.iter().filter(|(k, _)| k != "BIND_ADDR") {
            spawn = spawn.env(k, v);
        }
        for (k, v) in env {
            spawn = spawn.env(k, v);
        }
        spawn.start().await
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.lock().try_wait().unwrap() {
                // The output is complete once the readers reach the end of the pipes.
                for reader in self.readers.lock().drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "subgpt did not exit; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let mut child = self.child.lock();
        let _ = child.kill();
        let _ = child.wait();
    }
}
