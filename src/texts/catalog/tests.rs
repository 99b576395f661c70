//! The locale files agree with each other and with the plural rules; picking and filling.

use std::collections::BTreeSet;

use super::*;

/// The `{name}` placeholders of a text.
fn placeholders(text: &str) -> BTreeSet<String> {
    text.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name.to_string()))
        .collect()
}

fn entries(tag: &str) -> &'static BTreeMap<String, Entry> {
    &Lang::by_tag(tag).expect("locale present").0.entries
}

fn placeholders_of(entry: &Entry) -> BTreeSet<String> {
    match entry {
        Entry::Text(text) => placeholders(text),
        Entry::Plural(forms) => forms.values().flat_map(|f| placeholders(f)).collect(),
    }
}

#[test]
fn every_locale_file_loads() {
    assert!(LOCALE_FILES.len() >= 2, "{LOCALE_FILES:?}");
    for (tag, source) in LOCALE_FILES {
        parse(source).unwrap_or_else(|e| panic!("locales/{tag}.toml: {e}"));
    }
    assert_eq!(LOCALES.len(), LOCALE_FILES.len());
    assert_eq!(Lang::all()[0].tag(), "en");
}

#[test]
fn every_key_exists_in_every_language_with_the_same_placeholders() {
    let reference = entries(DEFAULT);
    for lang in Lang::all() {
        let own = &lang.0.entries;
        let missing: Vec<_> = reference.keys().filter(|k| !own.contains_key(*k)).collect();
        let extra: Vec<_> = own.keys().filter(|k| !reference.contains_key(*k)).collect();
        assert!(missing.is_empty(), "{lang:?} lacks {missing:?}");
        assert!(
            extra.is_empty(),
            "{lang:?} has keys English lacks: {extra:?}"
        );
        for (key, entry) in own {
            let want = &reference[key];
            assert_eq!(
                matches!(entry, Entry::Plural(_)),
                matches!(want, Entry::Plural(_)),
                "{lang:?} {key}: plural in one language, plain in the other"
            );
            assert_eq!(
                placeholders_of(entry),
                placeholders_of(want),
                "{lang:?} {key}: placeholders differ from English"
            );
        }
    }
}

#[test]
fn every_plural_has_each_form_its_language_uses() {
    for lang in Lang::all() {
        let rules = lang.0.plurals.as_ref().expect("CLDR rules for the tag");
        let used: BTreeSet<&str> = (0u64..=1000)
            .map(|n| category_name(rules.select(n).unwrap()))
            .collect();
        for (key, entry) in &lang.0.entries {
            if let Entry::Plural(forms) = entry {
                for category in &used {
                    assert!(
                        forms.contains_key(*category),
                        "{lang:?} {key} lacks `{category}`"
                    );
                }
                for category in forms.keys() {
                    assert!(
                        ["zero", "one", "two", "few", "many", "other"].contains(&category.as_str()),
                        "{lang:?} {key}: `{category}` is not a CLDR plural category"
                    );
                }
            }
        }
    }
}

#[test]
fn russian_plurals_agree_with_the_number() {
    let ru = Lang::by_tag("ru").unwrap();
    let forms: Vec<String> = [1, 2, 5, 11, 21, 22, 100_000]
        .into_iter()
        .map(|n| plural(ru, "plural.tokens", n))
        .collect();
    assert_eq!(
        forms,
        [
            "1 токен",
            "2 токена",
            "5 токенов",
            "11 токенов",
            "21 токен",
            "22 токена",
            "100\u{202f}000 токенов"
        ]
    );
    let en = Lang::by_tag("en").unwrap();
    assert_eq!(plural(en, "plural.users", 1), "1 user");
    assert_eq!(plural(en, "plural.active_users", 2), "2 active users");
}

#[test]
fn the_language_follows_the_setting_and_the_users_code() {
    let pick = |setting, code| Lang::pick(setting, code).tag();
    assert_eq!(pick(BotLanguage::Auto, Some("ru")), "ru");
    assert_eq!(pick(BotLanguage::Auto, Some("ru-RU")), "ru");
    assert_eq!(pick(BotLanguage::Auto, Some("RU")), "ru");
    assert_eq!(pick(BotLanguage::Auto, Some("en")), "en");
    assert_eq!(pick(BotLanguage::Auto, Some("uk")), "en");
    assert_eq!(pick(BotLanguage::Auto, Some("")), "en");
    assert_eq!(pick(BotLanguage::Auto, None), "en");
    assert_eq!(pick(BotLanguage::En, Some("ru")), "en");
    assert_eq!(pick(BotLanguage::Ru, Some("en")), "ru");
    assert_eq!(pick(BotLanguage::Ru, None), "ru");
}

#[test]
fn placeholders_are_filled_and_others_kept() {
    assert_eq!(
        fill("a {x} b {y} {z", &[("x", &1), ("y", &"two")]),
        "a 1 b two {z"
    );
    assert_eq!(fill("{unknown} {x}", &[("x", &"é")]), "{unknown} é");
    assert_eq!(fill("{}", &[]), "{}");
}

#[test]
fn numbers_are_grouped() {
    assert_eq!(grouped(0), "0");
    assert_eq!(grouped(999), "999");
    assert_eq!(grouped(1000), "1\u{202f}000");
    assert_eq!(grouped(-1234567), "-1\u{202f}234\u{202f}567");
}
