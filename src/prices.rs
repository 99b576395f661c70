//! What an answer costs: per-model prices (built in, or `MODEL_PRICES_FILE`) and the arithmetic
//! that turns an answer's token counts into millionths of a US dollar.
//!
//! Prices are kept as integer picodollars per token (USD per 1M tokens × 10⁶), so a cost is
//! exact integer arithmetic, rounded once to the nearest micro-dollar.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

/// The built-in table (its sources and date are in the file).
const BUILT_IN: &str = include_str!("prices.toml");

/// Why a price table could not be loaded.
#[derive(thiserror::Error, Debug)]
pub enum PriceError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{path} is not valid TOML: {detail}")]
    Toml {
        /// The file.
        path: String,
        /// The parser's message.
        detail: String,
    },
    /// A model's table is incomplete or holds something that is not a price.
    #[error("{path}: model {model:?}: {detail}")]
    Model {
        /// The file.
        path: String,
        /// The model's name.
        model: String,
        /// What is wrong.
        detail: String,
    },
}

/// One model's prices, picodollars per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    /// Uncached input.
    pub input: u64,
    /// Input read from the prompt cache.
    pub cached_input: u64,
    /// Output, reasoning included.
    pub output: u64,
}

/// Token counts of one answer, as the upstream reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// All input tokens, cached ones included.
    pub input: u64,
    /// The cached part of `input`.
    pub cached_input: u64,
    /// All output tokens, reasoning included.
    pub output: u64,
}

impl ModelPrice {
    /// Uncached input × input price + cached input × cached price + output × output price,
    /// in millionths of a dollar, rounded to the nearest.
    pub fn cost_micro_usd(&self, tokens: Tokens) -> i64 {
        let cached = tokens.cached_input.min(tokens.input);
        let pico = u128::from(tokens.input - cached) * u128::from(self.input)
            + u128::from(cached) * u128::from(self.cached_input)
            + u128::from(tokens.output) * u128::from(self.output);
        i64::try_from((pico + 500_000) / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// The price table in force, and which unknown models were already warned about.
#[derive(Debug)]
pub struct Prices {
    /// Where the table came from: "built-in" or the file's path.
    pub origin: String,
    /// The table's `date`, when it has one.
    pub date: Option<String>,
    models: HashMap<String, ModelPrice>,
    warned: Mutex<HashSet<String>>,
}

impl Prices {
    /// The table compiled into the binary.
    pub fn built_in() -> Self {
        Self::parse(BUILT_IN, "built-in").unwrap_or_else(|e| {
            // The built-in file is checked by a unit test; this only guards against a bad edit.
            tracing::error!(error = %e, "built-in price table is invalid; costs unknown");
            Self::from_models("built-in", None, HashMap::new())
        })
    }

    /// `MODEL_PRICES_FILE` when set (it replaces the built-in table), else the built-in table.
    pub fn load(file: Option<&Path>) -> Result<Self, PriceError> {
        let Some(path) = file else {
            return Ok(Self::built_in());
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PriceError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses a table: one TOML table per model with `input`, `cached_input` and `output` in
    /// USD per million tokens; top-level `date` and `source` strings are kept as metadata.
    pub fn parse(text: &str, origin: &str) -> Result<Self, PriceError> {
        let doc: BTreeMap<String, toml::Value> =
            toml::from_str(text).map_err(|e| PriceError::Toml {
                path: origin.to_owned(),
                detail: e.message().to_owned(),
            })?;
        let mut models = HashMap::new();
        let mut date = None;
        for (key, value) in doc {
            match value {
                toml::Value::Table(table) => {
                    let price = model_price(&table).map_err(|detail| PriceError::Model {
                        path: origin.to_owned(),
                        model: key.clone(),
                        detail,
                    })?;
                    models.insert(key, price);
                }
                toml::Value::String(s) if key == "date" => date = Some(s),
                // Other metadata (`source`, notes) is for people reading the file.
                _ => {}
            }
        }
        Ok(Self::from_models(origin, date, models))
    }

    fn from_models(
        origin: &str,
        date: Option<String>,
        models: HashMap<String, ModelPrice>,
    ) -> Self {
        Self {
            origin: origin.to_owned(),
            date,
            models,
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// The price of `model`, or of its base name when it is a dated snapshot
    /// (`gpt-5.4-mini-2026-03-17` → `gpt-5.4-mini`), as the upstream reports the snapshot.
    pub fn get(&self, model: &str) -> Option<ModelPrice> {
        self.models
            .get(model)
            .or_else(|| strip_snapshot(model).and_then(|base| self.models.get(base)))
            .copied()
    }

    /// The cost of an answer by `model`; `None` (and one warning per model) when it has no price.
    pub fn cost_micro_usd(&self, model: &str, tokens: Tokens) -> Option<i64> {
        match self.get(model) {
            Some(price) => Some(price.cost_micro_usd(tokens)),
            None => {
                let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
                if warned.insert(model.to_owned()) {
                    tracing::warn!(
                        model,
                        prices = %self.origin,
                        "no price for this model; its usage is recorded without a cost (set MODEL_PRICES_FILE)"
                    );
                }
                None
            }
        }
    }

    /// How many models have a price.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// True when no model has a price.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// `name-YYYY-MM-DD` → `name`.
fn strip_snapshot(model: &str) -> Option<&str> {
    let (base, date) = model.split_at_checked(model.len().checked_sub(11)?)?;
    let date = date.strip_prefix('-')?;
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(base)
}

fn model_price(table: &toml::Table) -> Result<ModelPrice, String> {
    let field = |name: &str| -> Result<u64, String> {
        let usd = match table.get(name) {
            Some(toml::Value::Float(f)) => *f,
            Some(toml::Value::Integer(i)) => *i as f64,
            Some(other) => {
                return Err(format!("{name} must be a number, not {}", other.type_str()));
            }
            None => return Err(format!("{name} is missing (USD per 1M tokens)")),
        };
        if !usd.is_finite() || !(0.0..=1e6).contains(&usd) {
            return Err(format!(
                "{name} = {usd} is not a price in USD per 1M tokens"
            ));
        }
        // USD per 1M tokens × 10⁶ = picodollars per token.
        Ok((usd * 1e6).round() as u64)
    };
    Ok(ModelPrice {
        input: field("input")?,
        cached_input: field("cached_input")?,
        output: field("output")?,
    })
}

/// Millionths of a dollar as dollars with cents, e.g. `$12.35`; `None` → `None`.
pub fn usd_text(micro: Option<i64>) -> Option<String> {
    let micro = micro?;
    let cents = (i128::from(micro) + if micro < 0 { -5_000 } else { 5_000 }) / 10_000;
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    Some(format!("{sign}${}.{:02}", cents / 100, cents % 100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_parses_and_prices_the_default_model() {
        let prices = Prices::parse(BUILT_IN, "built-in").unwrap();
        assert_eq!(prices.date.as_deref(), Some("2026-12-03"));
        let mini = prices.get("gpt-5.4-mini").unwrap();
        assert_eq!(
            mini,
            ModelPrice {
                input: 750_000,
                cached_input: 75_000,
                output: 4_500_000
            }
        );
    }

    #[test]
    fn cost_splits_cached_input_and_counts_reasoning_as_output() {
        let price = ModelPrice {
            input: 750_000,
            cached_input: 75_000,
            output: 4_500_000,
        };
        // 1000 input of which 400 cached, 300 output (reasoning inside): 600×0.75 + 400×0.075 + 300×4.5.
        let tokens = Tokens {
            input: 1000,
            cached_input: 400,
            output: 300,
        };
        assert_eq!(price.cost_micro_usd(tokens), 450 + 30 + 1350);
    }

    #[test]
    fn snapshots_are_priced_as_their_base_model() {
        let prices = Prices::built_in();
        assert_eq!(
            prices.get("gpt-5.4-mini-2026-03-17"),
            prices.get("gpt-5.4-mini")
        );
        assert_eq!(prices.get("gpt-5.4-mini-latest"), None);
        assert_eq!(prices.get("no-such-model"), None);
    }

    #[test]
    fn a_bad_table_names_the_model_and_the_field() {
        let err = Prices::parse("[m]\ninput = 1\noutput = 2\n", "p.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.toml: model \"m\": cached_input is missing (USD per 1M tokens)"
        );
        let err = Prices::parse("[m]\ninput = \"x\"\n", "p.toml").unwrap_err();
        assert!(err.to_string().contains("input must be a number"), "{err}");
        assert!(matches!(
            Prices::parse("[m", "p.toml"),
            Err(PriceError::Toml { .. })
        ));
    }

    #[test]
    fn dollars_are_shown_with_cents() {
        assert_eq!(usd_text(Some(12_345_678)).as_deref(), Some("$12.35"));
        assert_eq!(usd_text(Some(4_999)).as_deref(), Some("$0.00"));
        assert_eq!(usd_text(Some(5_000)).as_deref(), Some("$0.01"));
        assert_eq!(usd_text(None), None);
    }
}
