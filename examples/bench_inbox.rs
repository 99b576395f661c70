//! Measures the inbox's group commit: concurrent submitters each await their own row's commit
//! (`StateStore::accept`, as the webhook does), 200,000 rows by default from 64 submitters,
//! into a fresh file; prints rows committed per second and the commit wait p50/p99.
//!
//! Usage: `cargo run --release --example bench_inbox -- [ROWS] [SUBMITTERS] [normal|full] (default normal, as the service)`
//!
//! `INBOX_USER_INDEX=1` puts back the `(user_id, update_id)` index that migration 0002 dropped,
//! to compare.

#[path = "support/bench_args.rs"]
mod bench_args;
#[allow(dead_code)]
#[path = "support/percentiles.rs"]
mod percentiles;
#[allow(dead_code)]
#[path = "support/procfs.rs"]
mod procfs;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use percentiles::Percentiles;
use subgpt::store::state::{InboxRow, StateStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (rows, submitters, synchronous) = bench_args::parse(200_000, 64)?;
    let dir = tempfile::tempdir_in(".")?;
    let store = StateStore::open(
        &dir.path().join("state.db"),
        Duration::from_secs(5),
        synchronous,
    )?;
    if std::env::var_os("INBOX_USER_INDEX").is_some() {
        let conn = rusqlite::Connection::open(dir.path().join("state.db"))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute("CREATE INDEX inbox_user ON inbox (user_id, update_id)", [])?;
        println!("with the inbox (user_id, update_id) index");
    }
    let accepted_at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;

    let started = Instant::now();
    let mut tasks = Vec::with_capacity(submitters);
    for submitter in 0..submitters {
        let store = store.clone();
        let per = rows / submitters + usize::from(submitter < rows % submitters);
        tasks.push(tokio::spawn(async move {
            let mut waits = Vec::with_capacity(per);
            for i in 0..per {
                let update_id = (i * submitters + submitter) as i64;
                // A typical private text update, as the webhook stores it.
                let body = format!(
                    r#"{{"update_id":{update_id},"message":{{"message_id":{i},"date":1760000000,"text":"question number {i} from a load test","from":{{"id":{submitter},"is_bot":false,"first_name":"Load"}},"chat":{{"id":{submitter},"type":"private"}}}}}}"#
                );
                let row = InboxRow {
                    update_id,
                    user_id: submitter as i64,
                    body: body.into_bytes(),
                    accepted_at,
                    attempts: 0,
                    response_id: None,
                };
                let t = Instant::now();
                let fresh = store.accept(row).await.expect("accept");
                waits.push(t.elapsed());
                assert!(fresh, "update {update_id} was new");
            }
            waits
        }));
    }
    let mut waits = Vec::with_capacity(rows);
    for t in tasks {
        waits.extend(t.await?);
    }
    let elapsed = started.elapsed();
    let pending = store.pending().await?.len();
    if pending != rows {
        return Err(format!("{pending} rows in the inbox, expected {rows}").into());
    }
    println!(
        "inbox accept: {rows} rows, {submitters} submitters, synchronous={synchronous:?}: {:.3} s, \
         {:.0} rows/s; commit wait {}",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        Percentiles::new(waits).summary(),
    );
    // On a shared machine the wall clock says as much about the neighbours as about the
    // store: the writer thread's own CPU time is the bound it would reach with a core to itself.
    if let Some(cpu) = procfs::thread_cpu("state-writer") {
        println!(
            "state-writer thread CPU: {:.3} s, {:.0} rows per writer CPU-second",
            cpu.as_secs_f64(),
            rows as f64 / cpu.as_secs_f64().max(1e-9),
        );
    }
    Ok(())
}
