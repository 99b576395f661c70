//! The command line the store benchmarks share: `[ROWS] [CALLERS] [normal|full]`.

use subgpt::store::usage::Synchronous;

/// Rows, concurrent callers and the `synchronous` mode from the arguments, with defaults.
pub fn parse(
    default_rows: usize,
    default_callers: usize,
) -> Result<(usize, usize, Synchronous), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(default_rows);
    let callers: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(default_callers);
    let synchronous = match args.next().as_deref() {
        Some("full") => Synchronous::Full,
        None | Some("normal") => Synchronous::Normal,
        Some(other) => return Err(format!("unknown synchronous mode {other:?}").into()),
    };
    if callers == 0 {
        return Err("at least one caller".into());
    }
    Ok((rows, callers, synchronous))
}
