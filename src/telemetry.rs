//! Logs and metrics: the tracing subscriber (pretty or JSON, secrets scrubbed from every line)
//! and the Prometheus recorder behind `/metrics`.

use std::io::{self, Write};
use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Libraries whose debug logs may print request URLs (and so the bot token), and whose info
/// lines say nothing an operator needs: kept at warn, whatever `RUST_LOG` says.
const QUIET: &str = "reqwest=warn,hyper=warn,hyper_util=warn,h2=warn,rustls=warn";

/// Installs the global subscriber at `default_level` unless `rust_log` (`RUST_LOG`, from the
/// process or `.env`) says otherwise. Every line is scrubbed of `secrets` before it is written.
pub fn init_logging(
    format: LogFormat,
    rust_log: Option<&str>,
    default_level: &str,
    secrets: Vec<String>,
) {
    let filter = rust_log.unwrap_or(default_level);
    let filter = EnvFilter::try_new(format!("{filter},{QUIET}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{QUIET}")));
    let writer = Redacting {
        secrets: Arc::new(secrets.into_iter().filter(|s| s.len() >= 4).collect()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.with_ansi(false).try_init(),
    };
}

/// A stderr writer that replaces secrets with `<redacted>`.
#[derive(Clone)]
struct Redacting {
    secrets: Arc<Vec<String>>,
}

/// One log line, buffered so a secret split across writes is still caught.
struct Line {
    secrets: Arc<Vec<String>>,
    buf: Vec<u8>,
}

impl<'a> MakeWriter<'a> for Redacting {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line {
            secrets: Arc::clone(&self.secrets),
            buf: Vec::with_capacity(256),
        }
    }
}

impl Write for Line {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let mut text = String::from_utf8_lossy(&self.buf).into_owned();
        for secret in self.secrets.iter() {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        let _ = io::stderr().lock().write_all(text.as_bytes());
    }
}

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let latency = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
                .expect("static buckets")
                .install_recorder()
                .expect("the only metrics recorder");
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("subgpt_updates_received_total", "Webhook updates accepted");
    describe_counter!(
        "subgpt_updates_duplicate_total",
        "Updates ignored as re-deliveries"
    );
    describe_counter!(
        "subgpt_updates_rejected_total",
        "Webhook requests refused, by reason"
    );
    describe_counter!(
        "subgpt_gate_decisions_total",
        "Subscription gate decisions by outcome and source"
    );
    describe_counter!(
        "subgpt_openai_requests_total",
        "OpenAI requests by endpoint and status"
    );
    describe_histogram!(
        "subgpt_openai_request_duration_seconds",
        "OpenAI request latency"
    );
    describe_counter!(
        "subgpt_telegram_requests_total",
        "Telegram requests by method and status"
    );
    describe_counter!(
        "subgpt_tokens_recorded_total",
        "Tokens written to the usage store"
    );
    describe_gauge!(
        "subgpt_in_flight_conversations",
        "Updates being handled right now"
    );
}

/// A short id that ties a user's apology to the log line with the detail.
pub fn reference_id() -> String {
    format!("{:08x}", fastrand::u32(..))
}
