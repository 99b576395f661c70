//! How a test starts the real `subgpt` binary: the environment, the fakes, the working
//! directory, and what becomes of its output.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{CHANNEL, FakeOpenAi, FakeTelegram, SECRET, TestApp, free_port, openai, telegram};

/// How to start the service.
pub struct Spawn {
    pub env: Vec<(String, String)>,
    pub telegram: Option<FakeTelegram>,
    pub openai: Option<FakeOpenAi>,
    pub command: Vec<String>,
    pub dir: Option<Arc<tempfile::TempDir>>,
    /// Variables the process does not get, not even the defaults below.
    pub unset: Vec<String>,
    /// Standard output is a pipe nobody reads, closed at once (`subgpt check | head -0`).
    pub stdout_closed: bool,
}

impl Default for Spawn {
    fn default() -> Self {
        Spawn {
            env: Vec::new(),
            telegram: None,
            openai: None,
            command: vec!["serve".into()],
            dir: None,
            unset: Vec::new(),
            stdout_closed: false,
        }
    }
}

impl Spawn {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }
    pub fn unset(mut self, key: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.unset.push(key.into());
        self
    }
    pub fn fakes(mut self, telegram: &FakeTelegram, openai: &FakeOpenAi) -> Self {
        self.telegram = Some(telegram.clone());
        self.openai = Some(openai.clone());
        self
    }
    pub fn dir(mut self, dir: &Arc<tempfile::TempDir>) -> Self {
        self.dir = Some(Arc::clone(dir));
        self
    }
    pub fn command(mut self, args: &[&str]) -> Self {
        self.command = args.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn stdout_closed(mut self) -> Self {
        self.stdout_closed = true;
        self
    }

    /// Starts `subgpt serve` and waits for /healthz.
    pub async fn start(self) -> TestApp {
        let app = self.launch().await;
        let url = format!("{}/healthz", app.base);
        let http = app.http.clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if http.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            if let Some(status) = app.child.lock().try_wait().unwrap() {
                panic!("subgpt exited early ({status}); logs:\n{}", app.logs());
            }
            assert!(
                Instant::now() < deadline,
                "subgpt did not come up; logs:\n{}",
                app.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app
    }

    /// Starts the command without waiting for anything.
    pub async fn launch(self) -> TestApp {
        let telegram = match self.telegram {
            Some(t) => t,
            None => FakeTelegram::start().await,
        };
        let openai = match self.openai {
            Some(o) => o,
            None => FakeOpenAi::start().await,
        };
        let dir = self
            .dir
            .unwrap_or_else(|| Arc::new(tempfile::tempdir().unwrap()));
        let port = free_port();
        let mut env: Vec<(String, String)> = vec![
            ("TELEGRAM_BOT_TOKEN".into(), telegram::TOKEN.into()),
            ("TELEGRAM_API_URL".into(), telegram.url.clone()),
            ("WEBHOOK_SECRET".into(), SECRET.into()),
            ("OPENAI_API_KEY".into(), openai::API_KEY.into()),
            ("OPENAI_BASE_URL".into(), openai.url.clone()),
            ("OPENAI_RETRY_BASE_MS".into(), "20".into()),
            ("BIND_ADDR".into(), format!("127.0.0.1:{port}")),
            ("CHANNEL_ID".into(), CHANNEL.into()),
            (
                "ANALYTICS_DB_PATH".into(),
                dir.path().join("usage.db").display().to_string(),
            ),
            ("RUST_LOG".into(), "info".into()),
        ];
        for (k, v) in self.env {
            env.retain(|(key, _)| *key != k);
            env.push((k, v));
        }
        env.retain(|(k, _)| !self.unset.contains(k));
        let mut child = Command::new(env!("CARGO_BIN_EXE_subgpt"))
            .args(&self.command)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(if self.stdout_closed {
                // The reading end is dropped here: every write the process makes fails (EPIPE).
                Stdio::from(std::io::pipe().expect("a pipe").1)
            } else {
                Stdio::piped()
            })
            .stderr(Stdio::piped())
            .spawn()
            .expect("the subgpt binary");
        let logs = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let streams = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as _),
        ];
        for stream in streams.into_iter().flatten() {
            let logs = Arc::clone(&logs);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut logs = logs.lock();
                    logs.push_str(&line);
                    logs.push('\n');
                }
            }));
        }
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            telegram,
            openai,
            dir,
            child: Mutex::new(child),
            logs,
            readers: Mutex::new(readers),
            http: reqwest::Client::new(),
            env,
        }
    }
}
