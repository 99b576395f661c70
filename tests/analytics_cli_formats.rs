//! `subgpt analytics` in its other formats: CSV with usernames quoted, text tables with numbers
//! right-aligned, and the PNG chart, checked against sums computed independently from the raw
//! rows. The JSON of every mode: `analytics_cli_sums.rs`.

#[path = "support/usage_db.rs"]
mod usage_db;
#[path = "support/viewer.rs"]
mod viewer;

use viewer::{ago, analytics, csv, expected, ok_stdout, store_db, table, usd_cells, usd_csv};

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
            "cost_usd",
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
                usd_csv(e.user_cost[&id]),
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
    assert_eq!(
        daily[0][0],
        ["date", "requests", "users", "tokens", "cost_usd"]
    );
    let want: Vec<Vec<String>> = e
        .days
        .iter()
        .map(|(d, (r, u, t))| {
            let cost = usd_csv(e.day_cost[d]);
            vec![d.clone(), r.to_string(), u.to_string(), t.to_string(), cost]
        })
        .collect();
    assert_eq!(daily[0][1..], want[..]);

    let user = csv(dir.path(), &db, &["user", "2"]);
    assert_eq!(user.len(), 2, "totals, then the daily breakdown");
    assert_eq!(user[0][1][3], e.users[&2].tokens.to_string());
    assert_eq!(user[1][0], ["date", "requests", "tokens", "cost_usd"]);
    assert_eq!(
        user[1].len() - 1,
        e.user_days.keys().filter(|(u, _)| *u == 2).count()
    );

    let day = csv(dir.path(), &db, &["date", &ago(0)]);
    assert_eq!(
        day[0][0],
        ["user_id", "username", "requests", "tokens", "cost_usd"]
    );
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
        let mut want = vec![u.requests.to_string(), u.tokens.to_string()];
        want.extend(usd_cells(e.user_cost[&id]));
        want.extend([u.first.clone(), u.last.clone()]);
        assert_eq!(fields[fields.len() - want.len()..], want[..]);
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
        .map(|(d, (r, u, t))| {
            let mut row = vec![d.clone(), r.to_string(), u.to_string(), t.to_string()];
            row.extend(usd_cells(e.day_cost[d]));
            row
        })
        .collect();
    assert_eq!(got, want);

    let text = table(dir.path(), &db, &["info"]);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["rows", &e.rows.to_string()]),
        "{text}"
    );
    assert!(text.contains("schema version  3"), "{text}");
    assert!(
        text.contains("roll-ups        match the raw rows"),
        "{text}"
    );

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
