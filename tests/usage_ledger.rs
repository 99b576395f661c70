//! The ledger through the real service (SPEC §6, §7): each answer's cost from the upstream's
//! usage and the price table, and numbers that stay equal to SQL over `user_analytics` when
//! rows are written, deleted or changed behind the service's back while it runs.

mod support;
#[path = "support/usage_db.rs"]
mod usage_db;
#[path = "support/viewer.rs"]
mod viewer;

use std::process::Command;
use std::time::Duration;

use rusqlite::Connection;
use support::*;
use usage_db::Expected;

/// The row the service wrote: model, input, cached, output, reasoning, total, cost.
type CostRow = (
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
);

fn cost_rows(app: &TestApp) -> Vec<CostRow> {
    let Ok(conn) = Connection::open(app.db_path()) else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare(
        "SELECT model, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens,
                tokens_used, cost_micro_usd FROM user_analytics ORDER BY id",
    ) else {
        return Vec::new();
    };
    stmt.query_map([], |r| CostRow::try_from(r))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

async fn wait_cost_rows(app: &TestApp, n: usize) -> Vec<CostRow> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let rows = cost_rows(app);
        if rows.len() >= n {
            return rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {n} usage rows; have {}:\n{}",
            rows.len(),
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The hand computation: USD per 1M tokens is µUSD per token, so µUSD =
/// (input − cached) × input price + cached × cached price + output × output price.
fn hand_cost(row: &CostRow, input: f64, cached_input: f64, output: f64) -> i64 {
    let (_, i, c, o, _, _, _) = row;
    let (i, c, o) = (i.unwrap() as f64, c.unwrap() as f64, o.unwrap() as f64);
    ((i - c) * input + c * cached_input + o * output).round() as i64
}

fn viewer_json(app: &TestApp, args: &[&str]) -> serde_json::Value {
    viewer::json(app.dir.path(), &app.db_path(), args)
}

#[tokio::test]
async fn cost_is_priced_from_cached_and_reasoning_tokens_in_both_modes() {
    for mode in ["responses", "chat"] {
        let app = Spawn::default().env("OPENAI_API_MODE", mode).start().await;
        {
            let mut s = app.openai.state.lock();
            s.cached_tokens = 12;
            s.reasoning_tokens = 2_000;
            // OpenAI answers with the dated snapshot of the model asked for.
            s.model_reported = Some("gpt-5.4-mini-2026-03-17".into());
        }
        app.send_text(1, 601, "what does a cached token cost?")
            .await;
        app.wait_messages(601, 1).await;
        let row = wait_cost_rows(&app, 1).await.remove(0);
        assert_eq!(row.0.as_deref(), Some("gpt-5.4-mini-2026-03-17"), "{mode}");
        assert_eq!(row.2, Some(12), "{mode}: cached input recorded");
        assert_eq!(row.4, Some(2_000), "{mode}: reasoning recorded");
        assert!(row.3.unwrap() >= 2_000, "{mode}: output includes reasoning");
        // gpt-5.4-mini: $0.75 input, $0.075 cached input, $4.50 output per 1M tokens.
        let want = hand_cost(&row, 0.75, 0.075, 4.50);
        assert_eq!(row.6, Some(want), "{mode}: {row:?}");

        let user = viewer_json(&app, &["user", "601"]);
        assert_eq!(user["cost_usd"], serde_json::json!(want as f64 / 1e6));
        let daily = viewer_json(&app, &["daily"]);
        assert_eq!(daily[0]["cost_usd"], serde_json::json!(want as f64 / 1e6));

        app.send_text(2, 601, "/usage").await;
        let text = app.wait_messages(601, 2).await.pop().unwrap();
        let cents = subgpt::prices::usd_text(Some(want)).unwrap();
        assert!(
            text.contains(&format!("Today: {} tokens ({cents})", usage_grouped(row.5))),
            "{mode}: {text}"
        );
    }
}

#[tokio::test]
async fn a_prices_file_replaces_the_table_and_an_unknown_model_costs_null_with_one_warning() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    std::fs::write(
        dir.path().join("prices.toml"),
        "date = \"2026-12-01\"\n[\"house-model\"]\ninput = 2.0\ncached_input = 0.5\noutput = 8\n",
    )
    .unwrap();
    let app = Spawn::default()
        .dir(&dir)
        .env("MODEL_PRICES_FILE", "prices.toml")
        .start()
        .await;
    app.openai.state.lock().model_reported = Some("house-model".into());
    app.openai.state.lock().cached_tokens = 5;
    app.send_text(1, 611, "priced by the house").await;
    app.wait_messages(611, 1).await;
    let row = wait_cost_rows(&app, 1).await.remove(0);
    assert_eq!(row.6, Some(hand_cost(&row, 2.0, 0.5, 8.0)), "{row:?}");

    // The file replaced the built-in table: gpt-5.4-mini has no price now.
    app.openai.state.lock().model_reported = None;
    for (id, text) in [(2, "unknown one"), (3, "unknown two")] {
        app.send_text(id, 611, text).await;
    }
    app.wait_messages(611, 3).await;
    let rows = wait_cost_rows(&app, 3).await;
    assert_eq!(rows[1].0.as_deref(), Some("gpt-5.4-mini"));
    assert_eq!((rows[1].6, rows[2].6), (None, None), "unknown, not 0");
    app.wait_log("no price for this model").await;
    let warnings = app.logs().matches("no price for this model").count();
    assert_eq!(warnings, 1, "one warning per model:\n{}", app.logs());

    // The viewer sums only the known cost; a group with none is null.
    let user = viewer_json(&app, &["user", "611"]);
    assert_eq!(
        user["cost_usd"],
        serde_json::json!(rows[0].6.unwrap() as f64 / 1e6)
    );
    let conn = Connection::open(app.db_path()).unwrap();
    conn.execute("DELETE FROM user_analytics WHERE model = 'house-model'", [])
        .unwrap();
    let user = viewer_json(&app, &["user", "611"]);
    assert_eq!(user["cost_usd"], serde_json::Value::Null);
    assert_eq!(user["requests"], 2);
}

#[tokio::test]
async fn a_bad_prices_file_stops_start_up_naming_the_variable() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    std::fs::write(dir.path().join("prices.toml"), "[m]\ninput = 1\n").unwrap();
    let app = Spawn::default()
        .dir(&dir)
        .env("MODEL_PRICES_FILE", "prices.toml")
        .launch()
        .await;
    let status = app.wait_exit(Duration::from_secs(20)).await;
    assert!(!status.success());
    let logs = app.logs();
    assert!(logs.contains("MODEL_PRICES_FILE"), "{logs}");
    assert!(logs.contains("cached_input is missing"), "{logs}");
}

/// `sqlite3 FILE` with `sql` on its standard input, as an operator types it.
fn sqlite3(db: &std::path::Path, sql: &str) {
    use std::io::Write;
    let mut child = Command::new("sqlite3")
        .args(["-bail", "-cmd", ".timeout 5000"])
        .arg(db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the sqlite3 command-line tool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sql_i64(db: &std::path::Path, sql: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
        .unwrap()
        .unwrap_or(0)
}

#[tokio::test]
async fn rows_written_behind_the_services_back_show_everywhere_and_count_for_the_limit() {
    let app = Spawn::default()
        .env("DAILY_TOKEN_LIMIT", "5000")
        .env("ADMIN_USER_IDS", "700")
        .start()
        .await;
    let db = app.db_path();
    app.send_text(1, 701, "first, through the service").await;
    app.wait_messages(701, 1).await;
    wait_cost_rows(&app, 1).await;
    let today = chrono::Utc::now().date_naive();
    let yesterday = today.pred_opt().unwrap();

    // An operator with sqlite3: rows for two users (one priced, one as the Python bot wrote them),
    // a deleted row, an updated one that moves to another day and changes its tokens.
    sqlite3(
        &db,
        &format!(
            "INSERT INTO user_analytics (user_id, username, request_date, tokens_used, cost_micro_usd)
               VALUES (701, 'user701', '{today}', 1200, 250000);
             INSERT INTO user_analytics (user_id, username, request_date, tokens_used)
               VALUES (702, 'py_bot', '{yesterday}', 300), (702, 'py_bot', '{yesterday}', 400),
                      (703, 'gone', '{today}', 999);
             DELETE FROM user_analytics WHERE user_id = 703;
             UPDATE user_analytics SET request_date = '{today}', tokens_used = 450
               WHERE id = (SELECT MAX(id) FROM user_analytics WHERE user_id = 702);"
        ),
    );
    // A second writer on the same file while the service runs (the Python bot during a switch-over).
    let writer = tokio::task::spawn_blocking({
        let db = db.clone();
        move || {
            let conn = Connection::open(&db).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            for i in 0..50 {
                conn.execute(
                    "INSERT INTO user_analytics (user_id, username, request_date, tokens_used) VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![704 + i % 3, format!("second{}", i % 3), today.to_string(), 10 + i],
                )
                .unwrap();
            }
        }
    });
    for i in 0..5 {
        app.send_text(10 + i, 705, &format!("meanwhile {i}")).await;
    }
    writer.await.unwrap();
    app.wait_messages(705, 5).await;
    wait_cost_rows(&app, 1 + 4 - 1 + 50 + 5).await;

    // Every roll-up equals the raw rows, and every viewer mode says so.
    usage_db::check_rollups(&db);
    let e = Expected::from_raw(&Connection::open(&db).unwrap());
    let info = viewer_json(&app, &["info"]);
    assert_eq!(info["rollups_match"], true, "{info}");
    assert_eq!(
        (info["rows"].as_i64(), info["tokens"].as_i64()),
        (Some(e.rows), Some(e.tokens))
    );
    let users = viewer_json(&app, &["users"]);
    for u in users.as_array().unwrap() {
        let id = u["user_id"].as_i64().unwrap();
        assert_eq!(u["tokens"], e.users[&id].tokens, "user {id}");
        assert_eq!(u["first_date"], e.users[&id].first, "user {id}");
        assert_eq!(u["cost_usd"], viewer::usd(e.user_cost[&id]), "user {id}");
    }
    assert_eq!(users.as_array().unwrap().len(), e.users.len());
    assert!(!e.users.contains_key(&703), "deleted user is gone");
    assert_eq!(e.users[&702].first, yesterday.to_string());
    let daily = viewer_json(&app, &["daily"]);
    let got: Vec<(String, i64, i64)> = daily
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_owned(),
                d["users"].as_i64().unwrap(),
                d["tokens"].as_i64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, i64, i64)> = e.days.iter().map(|(d, v)| (d.clone(), v.1, v.2)).collect();
    assert_eq!(got, want);
    let day = viewer_json(&app, &["date", &today.to_string()]);
    assert_eq!(
        day["users"].as_array().unwrap().len() as i64,
        e.days[&today.to_string()].1
    );

    // /usage agrees with SQL, cost included.
    let sql_today = sql_i64(
        &db,
        &format!(
            "SELECT SUM(tokens_used) FROM user_analytics WHERE user_id = 701 AND request_date = '{today}'"
        ),
    );
    app.send_text(30, 701, "/usage").await;
    let text = app.wait_messages(701, 2).await.pop().unwrap();
    assert!(
        text.contains(&format!("Today: {}", usage_grouped(sql_today))),
        "{text}"
    );
    let cost = sql_i64(
        &db,
        "SELECT SUM(cost_micro_usd) FROM user_analytics WHERE user_id = 701",
    );
    let cents = subgpt::prices::usd_text(Some(cost)).unwrap();
    assert!(
        text.contains(&format!(
            "In total: {} tokens ({cents})",
            usage_grouped(sql_today)
        )),
        "{text}"
    );

    // /stats agrees with SQL.
    app.send_text(31, 700, "/stats").await;
    let stats = app.wait_messages(700, 1).await.pop().unwrap();
    let (requests, users, tokens) = e.days[&today.to_string()];
    assert!(
        stats.contains(&format!(
            "<b>Today</b>: {} requests, {users} users, {} tokens",
            usage_grouped(requests),
            usage_grouped(tokens)
        )),
        "{stats}"
    );

    // The daily limit counts rows the service did not write.
    sqlite3(
        &db,
        &format!(
            "INSERT INTO user_analytics (user_id, username, request_date, tokens_used) VALUES (701, 'user701', '{today}', 5000);"
        ),
    );
    let before = app.openai.request_count();
    app.send_text(32, 701, "one more question").await;
    let text = app.wait_messages(701, 3).await.pop().unwrap();
    assert!(text.contains("today's allowance"), "{text}");
    assert_eq!(app.openai.request_count(), before);
    // And forgets the ones an operator deletes.
    sqlite3(&db, "DELETE FROM user_analytics WHERE tokens_used = 5000;");
    app.send_text(33, 701, "and now?").await;
    let text = app.wait_messages(701, 4).await.pop().unwrap();
    assert!(text.starts_with("Echo:"), "{text}");
}

/// Numbers as the bot prints them: thousands separated by a narrow no-break space.
fn usage_grouped(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}
