//! The keyed texts of every language, read once from the locale files compiled into the binary
//! (`locales/*.toml`, found by `build.rs`), with CLDR plural rules per language.

use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::sync::LazyLock;

use intl_pluralrules::{PluralCategory, PluralRuleType, PluralRules};
use unic_langid::LanguageIdentifier;

use crate::config::BotLanguage;

include!(concat!(env!("OUT_DIR"), "/locales.rs"));

/// The language every key must exist in, used when a user's language is not known.
const DEFAULT: &str = "en";

/// One text: plain, or one form per CLDR plural category (`one`, `few`, `many`, `other`, …).
#[derive(Debug)]
enum Entry {
    Text(String),
    Plural(BTreeMap<String, String>),
}

/// One language's texts.
struct Locale {
    tag: &'static str,
    entries: BTreeMap<String, Entry>,
    plurals: Option<PluralRules>,
}

static LOCALES: LazyLock<Vec<Locale>> = LazyLock::new(|| {
    LOCALE_FILES
        .iter()
        .filter_map(|(tag, source)| match parse(source) {
            Ok(entries) => Some(Locale {
                tag,
                entries,
                plurals: tag
                    .parse::<LanguageIdentifier>()
                    .ok()
                    .and_then(|id| PluralRules::create(id, PluralRuleType::CARDINAL).ok()),
            }),
            Err(e) => {
                // Caught by the tests before a release; never worth stopping the bot for.
                tracing::error!(locale = tag, error = %e, "a locale file is not valid; skipped");
                None
            }
        })
        .collect()
});

/// A language the bot speaks; cheap to copy.
#[derive(Clone, Copy)]
pub struct Lang(&'static Locale);

impl Lang {
    /// English, the default.
    pub fn default_language() -> Lang {
        Lang::by_tag(DEFAULT).unwrap_or_else(|| Lang(&LOCALES[0]))
    }

    /// The language of the locale file `tag` (e.g. `ru`), if there is one.
    pub fn by_tag(tag: &str) -> Option<Lang> {
        LOCALES
            .iter()
            .find(|l| l.tag.eq_ignore_ascii_case(tag))
            .map(Lang)
    }

    /// Every language there is a locale file for, the default first.
    pub fn all() -> Vec<Lang> {
        let default = Lang::default_language();
        std::iter::once(default)
            .chain(LOCALES.iter().map(Lang).filter(|l| *l != default))
            .collect()
    }

    /// The language for a user: forced by `BOT_LANGUAGE`, or with `auto` the one whose code
    /// starts the user's Telegram `language_code` (`ru`, `ru-RU` → Russian), else English.
    pub fn pick(setting: BotLanguage, language_code: Option<&str>) -> Lang {
        let tag = match setting {
            BotLanguage::En => "en",
            BotLanguage::Ru => "ru",
            BotLanguage::Auto => language_code
                .and_then(|code| code.split(['-', '_']).next())
                .unwrap_or(DEFAULT),
        };
        Lang::by_tag(tag).unwrap_or_else(Lang::default_language)
    }

    /// The language code, as Telegram's `language_code` spells it.
    pub fn tag(self) -> &'static str {
        self.0.tag
    }

    fn entry(self, key: &str) -> Option<&'static Entry> {
        let found = self
            .0
            .entries
            .get(key)
            .or_else(|| Lang::default_language().0.entries.get(key));
        debug_assert!(found.is_some(), "no text for key {key:?}");
        if found.is_none() {
            tracing::error!(key, "no text for this key in any language");
        }
        found
    }
}

impl PartialEq for Lang {
    fn eq(&self, other: &Lang) -> bool {
        self.0.tag == other.0.tag
    }
}

impl fmt::Debug for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lang({})", self.0.tag)
    }
}

/// The text `key` in `lang`, its `{name}` placeholders filled from `args`.
pub fn t(lang: Lang, key: &str, args: &[(&str, &dyn Display)]) -> String {
    match lang.entry(key) {
        Some(Entry::Text(text)) => fill(text, args),
        Some(Entry::Plural(forms)) => fill(forms.get("other").map_or("", |s| s), args),
        None => key.to_string(),
    }
}

/// The plural text `key` for `n` in `lang` (e.g. `12 345 tokens`), `{n}` grouped by thousands.
pub fn plural(lang: Lang, key: &str, n: i64) -> String {
    let Some(entry) = lang.entry(key) else {
        return format!("{} {key}", grouped(n));
    };
    let form = match entry {
        Entry::Text(text) => text,
        Entry::Plural(forms) => {
            let category = lang
                .0
                .plurals
                .as_ref()
                .and_then(|rules| rules.select(n.unsigned_abs()).ok())
                .map_or("other", category_name);
            forms
                .get(category)
                .or_else(|| forms.get("other"))
                .map_or("", |s| s)
        }
    };
    fill(form, &[("n", &grouped(n))])
}

/// Thousands separated by a narrow no-break space, e.g. `12 345`.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn category_name(category: PluralCategory) -> &'static str {
    match category {
        PluralCategory::ZERO => "zero",
        PluralCategory::ONE => "one",
        PluralCategory::TWO => "two",
        PluralCategory::FEW => "few",
        PluralCategory::MANY => "many",
        PluralCategory::OTHER => "other",
    }
}

/// Replaces each `{name}` in `text` by its value; an unknown name is left as it is.
fn fill(text: &str, args: &[(&str, &dyn Display)]) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let name = &after[..close];
            args.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (close, v.to_string()))
        });
        match value {
            Some((close, value)) => {
                out.push_str(&value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A locale file's texts by dotted key (`[menu] help = …` → `menu.help`).
fn parse(source: &str) -> Result<BTreeMap<String, Entry>, String> {
    let table: toml::Table = source.parse().map_err(|e| format!("{e}"))?;
    let mut entries = BTreeMap::new();
    flatten("", &table, &mut entries)?;
    Ok(entries)
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, Entry>,
) -> Result<(), String> {
    for (name, value) in table {
        let key = format!("{prefix}{name}");
        match value {
            toml::Value::String(text) => {
                out.insert(key, Entry::Text(text.clone()));
            }
            toml::Value::Table(inner) if inner.contains_key("other") => {
                let mut forms = BTreeMap::new();
                for (category, form) in inner {
                    let toml::Value::String(form) = form else {
                        return Err(format!("{key}.{category}: a plural form must be text"));
                    };
                    forms.insert(category.clone(), form.clone());
                }
                out.insert(key, Entry::Plural(forms));
            }
            toml::Value::Table(inner) => flatten(&format!("{key}."), inner, out)?,
            _ => return Err(format!("{key}: must be text or a table")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
