//! Helpers for viewer tests: sample databases (written by the store, or as the Python bot left
//! them) and runners for the real `subgpt analytics` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use chrono::{Days, NaiveDate, Utc};
use rusqlite::Connection;
use serde_json::Value;
use subgpt::store::usage::{UsageRow, UsageStore};

use crate::usage_db::{self, Expected, create_python_db};

pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

pub fn ago(days: u64) -> String {
    (today() - Days::new(days)).to_string()
}

/// (user, username, days ago, tokens); usernames with commas and quotes test CSV quoting.
pub fn sample() -> Vec<(i64, Option<&'static str>, u64, i64)> {
    vec![
        (1, Some("alice"), 40, 1_000),
        (1, Some("alice"), 3, 250),
        (2, Some("bob, the \"builder\""), 3, 70),
        (2, Some("bob, the \"builder\""), 1, 30),
        (3, Some("carol"), 1, 5_000),
        (3, Some("carol"), 1, 1),
        (1, Some("alice_renamed"), 0, 11),
        (2, Some("bob, the \"builder\""), 0, 12),
        (4, Some("dave"), 0, 13),
    ]
}

/// A database written by the store itself (migrated, roll-ups filled).
pub async fn store_db(dir: &Path) -> PathBuf {
    let path = dir.join("data/usage.db");
    let store = UsageStore::open(&path).unwrap();
    for (user_id, name, days_ago, tokens) in sample() {
        let mut row = UsageRow::new(
            user_id,
            name.unwrap(),
            today() - Days::new(days_ago),
            tokens,
        );
        if days_ago == 0 {
            // Today's answers came from the new service: a breakdown and a model, so a cost;
            // older ones stay without, as the Python bot wrote them.
            row.input_tokens = Some(tokens - tokens / 3);
            row.cached_input_tokens = Some(tokens / 4);
            row.output_tokens = Some(tokens / 3);
            row.model = Some("gpt-5.4-mini".into());
        }
        store.record_usage(row).await.unwrap();
    }
    store.close(Duration::from_secs(5)).await.unwrap();
    path
}

/// A database as the Python bot left it: no roll-ups, `user_version` 0, a NULL username.
pub fn python_db(dir: &Path) -> PathBuf {
    let path = dir.join("python.db");
    let days: Vec<String> = sample().iter().map(|s| ago(s.2)).collect();
    let mut rows: Vec<usage_db::Raw<'_>> = sample()
        .iter()
        .zip(&days)
        .map(|((u, n, _, t), d)| (*u, *n, d.as_str(), *t))
        .collect();
    rows.push((5, None, days[0].as_str(), 77));
    create_python_db(&path, &rows);
    path
}

pub fn expected(path: &Path) -> Expected {
    Expected::from_raw(&Connection::open(path).unwrap())
}

pub fn analytics(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_subgpt"))
        .arg("analytics")
        .args(args)
        .current_dir(cwd)
        .env_remove("ANALYTICS_DB_PATH")
        .env("ANALYTICS_TIMEZONE", "UTC")
        .output()
        .unwrap()
}

/// A cost as the viewer's CSV carries it: dollars, or empty when unknown.
pub fn usd_csv(micro: Option<i64>) -> String {
    micro
        .map(|m| (m as f64 / 1e6).to_string())
        .unwrap_or_default()
}

/// A cost as the viewer's tables show it: `$0.01`, or nothing when unknown.
pub fn usd_cells(micro: Option<i64>) -> Vec<String> {
    subgpt::prices::usd_text(micro).into_iter().collect()
}

/// A cost as the viewer's JSON carries it: dollars (µUSD / 1e6), or null when unknown.
pub fn usd(micro: Option<i64>) -> Value {
    micro.map_or(Value::Null, |m| serde_json::json!(m as f64 / 1e6))
}

pub fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn json(cwd: &Path, db: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--db", db.to_str().unwrap(), "--format", "json"]);
    let text = ok_stdout(&analytics(cwd, &all));
    assert_eq!(
        text.trim_end().lines().count(),
        1,
        "one JSON document on one line"
    );
    serde_json::from_str(&text).unwrap()
}

/// A small RFC 4180 reader: sections separated by blank lines, each a list of records.
pub fn parse_csv(text: &str) -> Vec<Vec<Vec<String>>> {
    let mut sections = vec![Vec::new()];
    let (mut record, mut field, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                if record.is_empty() && field.is_empty() {
                    sections.push(Vec::new());
                } else {
                    record.push(std::mem::take(&mut field));
                    sections
                        .last_mut()
                        .unwrap()
                        .push(std::mem::take(&mut record));
                }
            }
            (false, c) => field.push(c),
        }
    }
    sections
}

pub fn csv(cwd: &Path, db: &Path, args: &[&str]) -> Vec<Vec<Vec<String>>> {
    let mut all = args.to_vec();
    all.extend(["--db", db.to_str().unwrap(), "--format", "csv"]);
    parse_csv(&ok_stdout(&analytics(cwd, &all)))
}

pub fn table(cwd: &Path, db: &Path, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--db", db.to_str().unwrap()]);
    ok_stdout(&analytics(cwd, &all))
}
