//! Reading one variable at a time, each problem naming it.

use std::collections::HashMap;

use super::{ConfigError, problem};

/// The gathered variables, read by name; blank counts as unset.
pub(super) struct Vars<'a>(pub(super) &'a HashMap<String, String>);

impl Vars<'_> {
    /// A set, non-blank value.
    pub(super) fn get(&self, var: &'static str) -> Option<&str> {
        self.0.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
    }
    pub(super) fn required(&self, var: &'static str) -> Result<&str, ConfigError> {
        self.get(var)
            .ok_or_else(|| problem(var, "is required but not set"))
    }
    pub(super) fn or<'b>(&'b self, var: &'static str, default: &'b str) -> &'b str {
        self.get(var).unwrap_or(default)
    }
    pub(super) fn number<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| problem(var, format!("`{v}` is not a non-negative whole number"))),
        }
    }
    pub(super) fn switch(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some("on") => Ok(true),
            Some("off") => Ok(false),
            Some(other) => Err(problem(var, format!("`{other}` is not `on` or `off`"))),
        }
    }
    pub(super) fn url(&self, var: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.or(var, default).trim_end_matches('/').to_string();
        if value.starts_with("http://") || value.starts_with("https://") {
            Ok(value)
        } else {
            Err(problem(var, format!("`{value}` is not an http(s) URL")))
        }
    }
}
