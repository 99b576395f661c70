//! Gathers the raw variables: `./.env` under the process environment, layered by the
//! `config` crate. Validation into typed parts happens afterwards, so every message names
//! its variable in our words.

use std::collections::HashMap;

use config::{Environment, Value};

use super::{ConfigError, problem};

/// Reads the process environment, after loading `./.env` (the real environment wins).
/// A `.env` that exists but does not parse is an error, not silently half-read.
pub fn environment() -> Result<HashMap<String, String>, ConfigError> {
    let mut dotenv: HashMap<String, String> = HashMap::new();
    if let Ok(iter) = dotenvy::from_path_iter(".env") {
        for item in iter {
            let (key, value) = item.map_err(|e| problem(".env", format!("cannot be read: {e}")))?;
            dotenv.insert(key, value);
        }
    }
    layered(dotenv, Environment::default())
}

/// `dotenv` under `process`: a later source wins in `config`, so the process comes last.
fn layered(
    dotenv: HashMap<String, String>,
    process: Environment,
) -> Result<HashMap<String, String>, ConfigError> {
    let gathered = config::Config::builder()
        .add_source(Environment::default().source(Some(dotenv)))
        .add_source(process)
        .build()
        .map_err(|e| problem("environment", e.to_string()))?;
    let table: HashMap<String, Value> = gathered
        .try_deserialize()
        .map_err(|e| problem("environment", e.to_string()))?;
    // `config` lower-cases names; ours are upper-case. A name with a `.` becomes a nested
    // table there and is none of ours, so only plain strings are kept.
    Ok(table
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_ascii_uppercase(), value.into_string().ok()?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_process_environment_wins_over_dotenv() {
        let dotenv = map(&[("OPENAI_MODEL", "from-file"), ("CHANNEL_ID", "@only_file")]);
        let process = map(&[("OPENAI_MODEL", "from-process"), ("weird.name", "x")]);
        let vars = layered(dotenv, Environment::default().source(Some(process))).unwrap();
        assert_eq!(vars["OPENAI_MODEL"], "from-process");
        assert_eq!(vars["CHANNEL_ID"], "@only_file");
        assert_eq!(vars.len(), 2, "{vars:?}");
    }
}
