//! `subgpt analytics` as an operator runs it: the real binary against real SQLite files,
//! every mode and format checked against sums computed independently from the raw rows.

#[path = "support/usage_db.rs"]
mod usage_db;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use chrono::{Days, NaiveDate, Utc};
use rusqlite::Connection;
use serde_json::Value;
use subgpt::store::usage::{UsageRow, UsageStore};
use usage_db::{Expected, create_python_db, user_version};

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn ago(days: u64) -> String {
    (today() - Days::new(days)).to_string()
}

/// (user, username, days ago, tokens); usernames with commas and quotes test CSV quoting.
fn sample() -> Vec<(i64, Option<&'static str>, u64, i64)> {
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
async fn store_db(dir: &Path) -> PathBuf {
    let path = dir.join("data/usage.db");
    let store = UsageStore::open(&path).unwrap();
    for (user_id, name, days_ago, tokens) in sample() {
        let row = UsageRow {
            user_id,
            username: name.unwrap().to_owned(),
            request_date: today() - Days::new(days_ago),
            tokens_used: tokens,
        };
        store.record_usage(row).await.unwrap();
    }
    store.close(Duration::from_secs(5)).await.unwrap();
    path
}

/// A database as the Python bot left it: no roll-ups, `user_version` 0, a NULL username.
fn python_db(dir: &Path) -> PathBuf {
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

fn expected(path: &Path) -> Expected {
    Expected::from_raw(&Connection::open(path).unwrap())
}

fn analytics(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_subgpt"))
        .arg("analytics")
        .args(args)
        .current_dir(cwd)
        .env_remove("ANALYTICS_DB_PATH")
        .env("ANALYTICS_TIMEZONE", "UTC")
        .output()
        .unwrap()
}

fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(cwd: &Path, db: &Path, args: &[&str]) -> Value {
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
fn parse_csv(text: &str) -> Vec<Vec<Vec<String>>> {
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

fn csv(cwd: &Path, db: &Path, args: &[&str]) -> Vec<Vec<Vec<String>>> {
    let mut all = args.to_vec();
    all.extend(["--db", db.to_str().unwrap(), "--format", "csv"]);
    parse_csv(&ok_stdout(&analytics(cwd, &all)))
}

fn table(cwd: &Path, db: &Path, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--db", db.to_str().unwrap()]);
    ok_stdout(&analytics(cwd, &all))
}

fn check_users_json(users: &Value, e: &Expected) {
    let want: Vec<Value> = e
        .users_by_tokens()
        .into_iter()
        .map(|(id, u)| {
            serde_json::json!({"user_id": id, "username": u.username, "requests": u.requests, "tokens": u.tokens,
                               "first_date": u.first, "last_date": u.last})
        })
        .collect();
    assert_eq!(users, &Value::Array(want));
}

fn check_daily_json(daily: &Value, e: &Expected) {
    let want: Vec<Value> = e
        .days
        .iter()
        .map(|(d, (requests, users, tokens))| {
            serde_json::json!({"date": d, "requests": requests, "users": users, "tokens": tokens})
        })
        .collect();
    assert_eq!(daily, &Value::Array(want));
}

/// Every mode in JSON against the independent sums; used for both kinds of database.
fn check_all_modes_json(dir: &Path, db: &Path, schema_version: i64, source: &str) {
    let e = expected(db);
    check_users_json(&json(dir, db, &["users"]), &e);
    check_daily_json(&json(dir, db, &["daily"]), &e);

    let all = json(dir, db, &[]);
    check_users_json(&all["users"], &e);
    check_daily_json(&all["daily"], &e);
    let info = &all["info"];
    assert_eq!(info, &json(dir, db, &["info"]));
    assert_eq!(info["rows"], e.rows);
    assert_eq!(info["users"], e.users.len() as i64);
    assert_eq!(info["tokens"], e.tokens);
    assert_eq!(info["first_date"], *e.days.keys().next().unwrap());
    assert_eq!(info["last_date"], *e.days.keys().last().unwrap());
    assert_eq!(info["schema_version"], schema_version);
    assert_eq!(info["source"], source);
    assert_eq!(info["size_bytes"], std::fs::metadata(db).unwrap().len());
    assert_eq!(info["path"], db.to_str().unwrap());

    for (&id, u) in &e.users {
        let got = json(dir, db, &["user", &id.to_string()]);
        assert_eq!(
            (&got["user_id"], &got["requests"], &got["tokens"]),
            (&id.into(), &u.requests.into(), &u.tokens.into())
        );
        assert_eq!(got["username"], serde_json::json!(u.username));
        assert_eq!(
            (&got["first_date"], &got["last_date"]),
            (&u.first.clone().into(), &u.last.clone().into())
        );
        let want: Vec<Value> = e
            .user_days
            .iter()
            .filter(|((uid, _), _)| *uid == id)
            .map(|((_, d), (r, t))| serde_json::json!({"date": d, "requests": r, "tokens": t}))
            .collect();
        assert_eq!(got["days"], Value::Array(want));
    }

    for d in e.days.keys() {
        let got = json(dir, db, &["date", d]);
        assert_eq!(got["date"], *d);
        let mut want: Vec<(i64, i64, i64)> = e
            .user_days
            .iter()
            .filter(|((_, day), _)| day == d)
            .map(|((u, _), (r, t))| (*u, *r, *t))
            .collect();
        want.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        let got: Vec<(i64, i64, i64)> = got["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["user_id"].as_i64().unwrap(),
                    u["requests"].as_i64().unwrap(),
                    u["tokens"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "date {d}");
    }
}

#[tokio::test]
async fn json_of_every_mode_equals_sql_sums() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_db(dir.path()).await;
    check_all_modes_json(dir.path(), &db, 2, "rollups");
}

#[test]
fn python_database_is_read_from_raw_rows_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = python_db(dir.path());
    check_all_modes_json(dir.path(), &db, 0, "raw rows");
    let conn = Connection::open(&db).unwrap();
    assert_eq!(user_version(&conn), 0, "the viewer never migrates");
    let tables: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'usage_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}

#[tokio::test]
async fn csv_quotes_usernames_and_matches_sums() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_db(dir.path()).await;
    let e = expected(&db);

    let users = csv(dir.path(), &db, &["users"]);
    assert_eq!(users.len(), 1);
    assert_eq!(
        users[0][0],
        [
            "user_id",
            "username",
            "requests",
            "tokens",
            "first_date",
            "last_date"
        ]
    );
    let want: Vec<Vec<String>> = e
        .users_by_tokens()
        .into_iter()
        .map(|(id, u)| {
            vec![
                id.to_string(),
                u.username.unwrap(),
                u.requests.to_string(),
                u.tokens.to_string(),
                u.first,
                u.last,
            ]
        })
        .collect();
    assert_eq!(users[0][1..], want[..]);
    let raw = ok_stdout(&analytics(
        dir.path(),
        &["users", "--db", db.to_str().unwrap(), "--format", "csv"],
    ));
    assert!(raw.contains("\"bob, the \"\"builder\"\"\""), "{raw}");

    let daily = csv(dir.path(), &db, &["daily"]);
    assert_eq!(daily[0][0], ["date", "requests", "users", "tokens"]);
    let want: Vec<Vec<String>> = e
        .days
        .iter()
        .map(|(d, (r, u, t))| vec![d.clone(), r.to_string(), u.to_string(), t.to_string()])
        .collect();
    assert_eq!(daily[0][1..], want[..]);

    let user = csv(dir.path(), &db, &["user", "2"]);
    assert_eq!(user.len(), 2, "totals, then the daily breakdown");
    assert_eq!(user[0][1][3], e.users[&2].tokens.to_string());
    assert_eq!(user[1][0], ["date", "requests", "tokens"]);
    assert_eq!(
        user[1].len() - 1,
        e.user_days.keys().filter(|(u, _)| *u == 2).count()
    );

    let day = csv(dir.path(), &db, &["date", &ago(0)]);
    assert_eq!(day[0][0], ["user_id", "username", "requests", "tokens"]);
    let total: i64 = day[0][1..]
        .iter()
        .map(|r| r[3].parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, e.days[&ago(0)].2);

    let info = csv(dir.path(), &db, &["info"]);
    let header = &info[0][0];
    let values = &info[0][1];
    let field = |name: &str| values[header.iter().position(|h| h == name).unwrap()].clone();
    assert_eq!(field("rows"), e.rows.to_string());
    assert_eq!(field("tokens"), e.tokens.to_string());

    let all = csv(dir.path(), &db, &["all"]);
    assert_eq!(all.len(), 3, "info, users, daily");
    assert_eq!(all[1], users[0]);
    assert_eq!(all[2], daily[0]);
}

/// End column of `header` in the text table's header line.
fn column_end(header_line: &str, name: &str) -> usize {
    header_line.find(name).unwrap() + name.len()
}

#[tokio::test]
async fn tables_are_aligned_with_numbers_right_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_db(dir.path()).await;
    let e = expected(&db);

    let text = table(dir.path(), &db, &["users"]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("user_id"));
    assert!(lines[1].starts_with("-------"));
    let tokens_end = column_end(lines[0], "tokens");
    for ((id, u), line) in e.users_by_tokens().into_iter().zip(&lines[2..]) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], id.to_string());
        let n = fields.len();
        assert_eq!(
            fields[n - 4..],
            [
                u.requests.to_string(),
                u.tokens.to_string(),
                u.first,
                u.last
            ]
        );
        let tok = u.tokens.to_string();
        assert_eq!(
            &line[tokens_end - tok.len()..tokens_end],
            tok,
            "tokens right-aligned under the header"
        );
    }
    assert_eq!(lines.len(), 2 + e.users.len());

    let text = table(dir.path(), &db, &["daily"]);
    let lines: Vec<&str> = text.lines().collect();
    let got: Vec<Vec<String>> = lines[2..]
        .iter()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    let want: Vec<Vec<String>> = e
        .days
        .iter()
        .map(|(d, (r, u, t))| vec![d.clone(), r.to_string(), u.to_string(), t.to_string()])
        .collect();
    assert_eq!(got, want);

    let text = table(dir.path(), &db, &["info"]);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["rows", &e.rows.to_string()]),
        "{text}"
    );
    assert!(text.contains("schema version  2"), "{text}");

    let text = table(dir.path(), &db, &["user", "1"]);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["tokens", &e.users[&1].tokens.to_string()])
    );
    assert!(text.contains("alice_renamed"));

    let text = table(dir.path(), &db, &["date", &ago(1)]);
    let (r, u, t) = e.days[&ago(1)];
    assert!(
        text.starts_with(&format!("{}: {u} users, {t} tokens", ago(1))),
        "{text} {r}"
    );

    let text = table(dir.path(), &db, &[]);
    assert!(
        text.contains("\nUsers (4)\n") && text.contains("\nDaily (4 days)\n"),
        "{text}"
    );
}

#[tokio::test]
async fn days_limits_daily_and_users_to_the_last_n_days() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_db(dir.path()).await;
    let e = expected(&db);
    let daily = json(dir.path(), &db, &["daily", "--days", "2"]);
    let dates: Vec<&str> = daily
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["date"].as_str().unwrap())
        .collect();
    assert_eq!(dates, [ago(1), ago(0)]);
    let users = json(dir.path(), &db, &["users", "--days", "4"]);
    let alice = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user_id"] == 1)
        .unwrap();
    let recent: i64 = e
        .user_days
        .iter()
        .filter(|((u, d), _)| *u == 1 && *d >= ago(3))
        .map(|(_, (_, t))| t)
        .sum();
    assert_eq!(alice["tokens"], recent);
    assert_eq!(alice["first_date"], ago(3));
}

#[tokio::test]
async fn reads_beside_a_live_store_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.db");
    let store = UsageStore::open(&path).unwrap();
    let row = UsageRow {
        user_id: 42,
        username: "live".into(),
        request_date: today(),
        tokens_used: 4242,
    };
    store.record_usage(row).await.unwrap();
    assert!(
        dir.path().join("live.db-wal").exists(),
        "the row sits in the WAL, not yet checkpointed"
    );
    let got = json(dir.path(), &path, &["user", "42"]);
    assert_eq!(got["tokens"], 4242);
    store.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn chart_writes_a_png_of_the_last_days() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_db(dir.path()).await;
    let out_file = dir.path().join("chart.png");
    let out = analytics(
        dir.path(),
        &[
            "chart",
            "--out",
            out_file.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--days",
            "7",
        ],
    );
    let text = ok_stdout(&out);
    let e = expected(&db);
    let week: i64 = e
        .days
        .iter()
        .filter(|(d, _)| **d >= ago(6))
        .map(|(_, v)| v.2)
        .sum();
    assert!(text.contains(&format!("(7 days, {week} tokens")), "{text}");
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&out_file).unwrap(),
    ));
    let reader = decoder.read_info().unwrap();
    assert_eq!((reader.info().width, reader.info().height), (1000, 500));
}

#[tokio::test]
async fn db_path_comes_from_env_then_dotenv_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_db(dir.path()).await;
    let run = |cwd: &Path, env: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_subgpt"));
        cmd.args(["analytics", "info", "--format", "json"])
            .current_dir(cwd)
            .env_remove("ANALYTICS_DB_PATH");
        if let Some(p) = env {
            cmd.env("ANALYTICS_DB_PATH", p);
        }
        cmd.output().unwrap()
    };
    let from_env: Value =
        serde_json::from_str(&ok_stdout(&run(Path::new("/"), Some(&db)))).unwrap();
    assert_eq!(from_env["path"], db.to_str().unwrap());

    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(
        elsewhere.path().join(".env"),
        format!("ANALYTICS_DB_PATH={}\n", db.display()),
    )
    .unwrap();
    let from_dotenv: Value =
        serde_json::from_str(&ok_stdout(&run(elsewhere.path(), None))).unwrap();
    assert_eq!(from_dotenv["path"], db.to_str().unwrap());

    // store_db wrote ./data/usage.db; the default is ./data/user_analytics.db.
    std::fs::rename(&db, dir.path().join("data/user_analytics.db")).unwrap();
    let default: Value = serde_json::from_str(&ok_stdout(&run(dir.path(), None))).unwrap();
    assert_eq!(default["path"], "./data/user_analytics.db");
    assert_eq!(default["rows"], 9);
}

fn assert_exit_2_one_line(out: &Output, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_file_is_exit_2_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nope.db");
    let out = analytics(dir.path(), &["users", "--db", db.to_str().unwrap()]);
    assert_exit_2_one_line(&out, "not found");
    assert!(!db.exists());
    let out = analytics(dir.path(), &[]);
    assert_exit_2_one_line(&out, "./data/user_analytics.db");
}

#[test]
fn non_sqlite_file_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("text.db");
    std::fs::write(&db, "id,user\n1,2\n".repeat(200)).unwrap();
    assert_exit_2_one_line(
        &analytics(dir.path(), &["--db", db.to_str().unwrap()]),
        "not a SQLite database",
    );
}

#[test]
fn sqlite_file_without_the_table_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("other.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    assert_exit_2_one_line(
        &analytics(dir.path(), &["info", "--db", db.to_str().unwrap()]),
        "no user_analytics table",
    );
}

#[test]
fn bad_usage_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = python_db(dir.path());
    let db = db.to_str().unwrap();
    for args in [
        vec!["bogus"],
        vec!["daily", "--days", "0"],
        vec!["daily", "--days", "many"],
        vec!["users", "--format", "xml"],
        vec!["date", "2025-13-01"],
        vec!["user", "abc"],
        vec!["chart"],
    ] {
        let mut all = args.clone();
        all.extend(["--db", db]);
        let out = analytics(dir.path(), &all);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_subgpt"))
        .args(["analytics", "info", "--db", db])
        .env("ANALYTICS_TIMEZONE", "Mars/Olympus")
        .output()
        .unwrap();
    assert_exit_2_one_line(&out, "ANALYTICS_TIMEZONE");
}
