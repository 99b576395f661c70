//! Transactions for the writer threads, with their statements prepared once.

use rusqlite::Connection;

/// Runs `work` in a transaction that `begin` opens (`BEGIN` or `BEGIN IMMEDIATE`), then
/// commits it; rolls it back when `work` or the commit fails.
///
/// rusqlite's `Transaction` parses BEGIN and COMMIT anew for every transaction; from the
/// statement cache they cost nothing to prepare. Under the answers load (`examples/load`) that
/// parsing was ~3% of the service's CPU.
pub(crate) fn in_transaction<T, E: From<rusqlite::Error>>(
    conn: &Connection,
    begin: &str,
    work: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    conn.prepare_cached(begin)?.execute([])?;
    let result = work(conn).and_then(|value| {
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(value)
    });
    if result.is_err() && !conn.is_autocommit() {
        // What failed is the error to report; a failed rollback leaves nothing more to do.
        let _ = conn
            .prepare_cached("ROLLBACK")
            .and_then(|mut rollback| rollback.execute([]));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .unwrap();
        conn
    }

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn commits_what_worked_and_rolls_back_what_failed() {
        let conn = table();
        for begin in ["BEGIN", "BEGIN IMMEDIATE"] {
            let done: rusqlite::Result<()> = in_transaction(&conn, begin, |c| {
                c.execute("INSERT INTO t (x) VALUES (NULL)", [])?;
                Ok(())
            });
            done.unwrap();
        }
        assert_eq!(count(&conn), 2);

        let failed: rusqlite::Result<()> = in_transaction(&conn, "BEGIN", |c| {
            c.execute("INSERT INTO t (x) VALUES (10)", [])?;
            c.execute("INSERT INTO t (x) VALUES (10)", [])?; // the same key: fails
            Ok(())
        });
        assert!(failed.is_err());
        assert_eq!(count(&conn), 2, "the first insert was rolled back too");
        assert!(conn.is_autocommit(), "no transaction is left open");

        // The cached statements work again after a rollback.
        let again: rusqlite::Result<()> = in_transaction(&conn, "BEGIN", |c| {
            c.execute("INSERT INTO t (x) VALUES (10)", [])?;
            Ok(())
        });
        again.unwrap();
        assert_eq!(count(&conn), 3);
    }
}
