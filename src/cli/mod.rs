//! Operator commands besides the bot itself: webhook registration, the `check` doctor and
//! database backups.

/// `println!` for a command's report: the reader may be gone (`subgpt check | head -1`), and
/// `println!` would panic on the closed pipe. A line that cannot be written is dropped; the exit
/// code still says how the command went.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod backup;
pub mod check;
pub mod webhook;

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| unix.to_string())
}

/// A URL with any `user:password@` replaced, for printing.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://<redacted>@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            super::redact_url("redis://:pw@host:6379/0"),
            "redis://<redacted>@host:6379/0"
        );
        assert_eq!(
            super::redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
    }
}
