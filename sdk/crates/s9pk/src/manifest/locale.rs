//! `LocaleString`: a plain string or a map from locale to string.
//!
//! StartOS writes translatable texts (descriptions, release notes) either as a
//! plain string or as `{"en_US": "…", "de_DE": "…"}`. Lookup falls back from the
//! exact locale to any entry of the same language, then to the first entry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A text that is either untranslated or given per locale (`en_US`, `de`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LocaleString {
    /// One text for every locale.
    Plain(String),
    /// Texts per locale; keys are locale names such as `en_US` or `de`.
    Translated(BTreeMap<String, String>),
}

impl Default for LocaleString {
    fn default() -> Self {
        Self::Plain(String::new())
    }
}

impl From<&str> for LocaleString {
    fn from(text: &str) -> Self {
        Self::Plain(text.to_owned())
    }
}

/// The language part of a locale name: `en_US` → `en`, `pt-BR` → `pt`.
fn language(locale: &str) -> &str {
    locale.split(['_', '-']).next().unwrap_or(locale)
}

impl LocaleString {
    /// The text for `locale`: the exact entry, else one of the same language,
    /// else the first entry (locales sorted by name). `None` only for an empty map.
    pub fn get(&self, locale: &str) -> Option<&str> {
        match self {
            Self::Plain(text) => Some(text),
            Self::Translated(map) => map
                .get(locale)
                .or_else(|| {
                    let lang = language(locale);
                    map.iter()
                        .find(|(key, _)| language(key) == lang)
                        .map(|(_, text)| text)
                })
                .or_else(|| map.values().next())
                .map(String::as_str),
        }
    }

    /// Every text with the locale it belongs to (`None` for a plain string).
    pub fn entries(&self) -> Vec<(Option<&str>, &str)> {
        match self {
            Self::Plain(text) => vec![(None, text.as_str())],
            Self::Translated(map) => map
                .iter()
                .map(|(locale, text)| (Some(locale.as_str()), text.as_str()))
                .collect(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn translated() -> LocaleString {
        serde_json::from_str(r#"{"de_DE": "Hallo", "en_US": "Hello", "en_GB": "Hello mate"}"#)
            .unwrap()
    }

    #[test]
    fn plain_string_answers_every_locale() {
        let s: LocaleString = serde_json::from_str(r#""Hi""#).unwrap();
        assert_eq!(s.get("fr_FR"), Some("Hi"));
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""Hi""#);
    }

    #[test]
    fn exact_locale_wins() {
        assert_eq!(translated().get("en_GB"), Some("Hello mate"));
    }

    #[test]
    fn same_language_is_the_first_fallback() {
        assert_eq!(translated().get("de_AT"), Some("Hallo"));
        assert_eq!(translated().get("de"), Some("Hallo"));
    }

    #[test]
    fn first_entry_is_the_last_fallback() {
        assert_eq!(translated().get("ja_JP"), Some("Hallo"));
        let empty = LocaleString::Translated(BTreeMap::new());
        assert_eq!(empty.get("en_US"), None);
    }
}
