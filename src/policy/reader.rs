//! A walk over the spanned TOML tree: typed getters that record located errors and go on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::duration::{Lifetime, format_duration, parse_duration};
use super::error::{PolicyError, Span};
use super::secret_ref::SecretRef;
use super::suggest::did_you_mean;

pub(crate) type Node<'i> = Spanned<DeValue<'i>>;

/// Collects every problem found while reading one policy file.
pub(crate) struct Ctx<'s> {
    pub source: &'s str,
    pub file: &'s Path,
    pub errors: Vec<PolicyError>,
    /// Every secret reference read, to be resolved once as a check after the walk.
    pub secret_refs: Vec<(Spanned<SecretRef>, String)>,
    /// Relative `{ file = ... }` references as written, by the span of their reference, to say
    /// where a missing one was looked for.
    pub relative_files: Vec<(Span, PathBuf)>,
    /// The load time: date lifetimes are judged against it.
    pub now: DateTime<Utc>,
    /// Byte offset of each line's end (`\n`), to find a line without rescanning the file.
    newlines: Vec<usize>,
}

impl<'s> Ctx<'s> {
    pub fn new(source: &'s str, file: &'s Path) -> Self {
        Self {
            source,
            file,
            errors: Vec::new(),
            secret_refs: Vec::new(),
            relative_files: Vec::new(),
            now: Utc::now(),
            newlines: source.match_indices('\n').map(|(i, _)| i).collect(),
        }
    }

    pub fn error(&mut self, span: &Span, key: impl Into<String>, message: impl Into<String>) {
        let error = PolicyError::at(self.file, self.source, span.start, key, message);
        self.errors.push(error);
    }

    /// 1-based line of the span's start (as [`super::error::line_column`] counts it).
    pub fn line_of(&self, span: &Span) -> usize {
        let offset = span.start.min(self.source.len());
        self.newlines.partition_point(|&n| n < offset) + 1
    }
}

/// One TOML table (a `[section]`, an element of `[[array]]`, or an inline table) and its
/// dotted path for messages.
#[derive(Clone)]
pub(crate) struct Table<'a, 'i> {
    pub map: &'a DeTable<'i>,
    pub span: Span,
    pub path: String,
}

/// "a string", "an integer", ... for "expected X, found Y" messages.
pub(crate) fn a_type(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 'i> Table<'a, 'i> {
    pub fn root(doc: &'a Spanned<DeTable<'i>>) -> Self {
        Self {
            map: doc.get_ref(),
            span: doc.span(),
            path: String::new(),
        }
    }

    /// The dotted path of `name` in this table.
    pub fn key(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    pub fn get(&self, name: &str) -> Option<&'a Node<'i>> {
        self.map.get(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Span of the key `name` (falls back to the table) for errors about the key itself.
    pub fn key_span(&self, name: &str) -> Span {
        self.map
            .get_key_value(name)
            .map_or_else(|| self.span.clone(), |(k, _)| k.span())
    }

    /// Reports every key not in `known`, suggesting the nearest known key.
    pub fn check_keys(&self, cx: &mut Ctx<'_>, known: &[&str]) {
        for key in self.map.keys() {
            let name: &str = key.get_ref();
            if !known.contains(&name) {
                let hint = did_you_mean(name, known);
                cx.error(
                    &key.span(),
                    self.key(name),
                    format!("unknown key `{name}`{hint}"),
                );
            }
        }
    }

    /// "missing required key" at this table.
    pub fn missing(&self, cx: &mut Ctx<'_>, name: &str, what: &str) {
        let message = if what.is_empty() {
            "missing required key".to_owned()
        } else {
            format!("missing required key ({what})")
        };
        cx.error(&self.span, self.key(name), message);
    }

    fn wrong_type(&self, cx: &mut Ctx<'_>, name: &str, node: &Node<'_>, expected: &str) {
        let found = a_type(node.get_ref());
        cx.error(
            &node.span(),
            self.key(name),
            format!("expected {expected}, found {found}"),
        );
    }

    pub fn string(&self, cx: &mut Ctx<'_>, name: &str) -> Option<Spanned<String>> {
        let node = self.get(name)?;
        match node.get_ref() {
            DeValue::String(s) => Some(Spanned::new(node.span(), s.to_string())),
            _ => {
                self.wrong_type(cx, name, node, "a string");
                None
            }
        }
    }

    /// A string that must not be blank.
    pub fn text(&self, cx: &mut Ctx<'_>, name: &str) -> Option<Spanned<String>> {
        let value = self.string(cx, name)?;
        if value.get_ref().trim().is_empty() {
            cx.error(&value.span(), self.key(name), "must not be empty");
            return None;
        }
        Some(value)
    }

    /// A required non-blank string.
    pub fn required_text(&self, cx: &mut Ctx<'_>, name: &str) -> Option<Spanned<String>> {
        if !self.has(name) {
            self.missing(cx, name, "");
            return None;
        }
        self.text(cx, name)
    }

    /// A Vault mount or path: non-empty, no leading or trailing `/`.
    pub fn path_segment(&self, cx: &mut Ctx<'_>, name: &str) -> Option<String> {
        let value = self.text(cx, name)?;
        let text = value.get_ref();
        if text.starts_with('/') || text.ends_with('/') {
            cx.error(
                &value.span(),
                self.key(name),
                "must not start or end with `/`",
            );
            return None;
        }
        if let Some(problem) = vault_path_problem(text) {
            cx.error(&value.span(), self.key(name), problem);
            return None;
        }
        Some(text.clone())
    }

    pub fn bool(&self, cx: &mut Ctx<'_>, name: &str) -> Option<bool> {
        let node = self.get(name)?;
        match node.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(cx, name, node, "a boolean (true or false)");
                None
            }
        }
    }

    /// An integer within `range`.
    pub fn integer(
        &self,
        cx: &mut Ctx<'_>,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let node = self.get(name)?;
        let DeValue::Integer(int) = node.get_ref() else {
            self.wrong_type(cx, name, node, "an integer");
            return None;
        };
        let value = i64::from_str_radix(int.as_str(), int.radix())
            .ok()
            .filter(|v| range.contains(v));
        if value.is_none() {
            let (lo, hi) = (range.start(), range.end());
            let message = if *hi == i64::MAX {
                format!("must be at least {lo}, found {int}")
            } else {
                format!("must be between {lo} and {hi}, found {int}")
            };
            cx.error(&node.span(), self.key(name), message);
        }
        value
    }

    /// A string that must be one of `choices`.
    pub fn choice<'c>(
        &self,
        cx: &mut Ctx<'_>,
        name: &str,
        choices: &[&'c str],
    ) -> Option<Spanned<&'c str>> {
        let value = self.string(cx, name)?;
        let found = choices.iter().find(|c| **c == value.get_ref().as_str());
        if let Some(choice) = found {
            return Some(Spanned::new(value.span(), *choice));
        }
        let list = choices
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let hint = did_you_mean(value.get_ref(), choices);
        cx.error(
            &value.span(),
            self.key(name),
            format!("expected one of {list}, found {:?}{hint}", value.get_ref()),
        );
        None
    }

    pub fn duration(&self, cx: &mut Ctx<'_>, name: &str) -> Option<Spanned<Duration>> {
        let value = self.string(cx, name)?;
        match parse_duration(value.get_ref()) {
            Ok(d) => Some(Spanned::new(value.span(), d)),
            Err(message) => {
                cx.error(&value.span(), self.key(name), message);
                None
            }
        }
    }

    /// The text of a string or date-time value as written (without quotes), for messages.
    pub fn written(&self, name: &str) -> Option<String> {
        match self.get(name)?.get_ref() {
            DeValue::String(s) => Some(s.trim().to_owned()),
            DeValue::Datetime(dt) => Some(dt.to_string()),
            _ => None,
        }
    }

    /// A duration of at most `max`; `why` says what the limit protects.
    pub fn duration_at_most(
        &self,
        cx: &mut Ctx<'_>,
        name: &str,
        max: Duration,
        why: &str,
    ) -> Option<Spanned<Duration>> {
        let value = self.duration(cx, name)?;
        if *value.get_ref() > max {
            let message = format!("must be at most {}: {why}", format_duration(max));
            cx.error(&value.span(), self.key(name), message);
            return None;
        }
        Some(value)
    }

    /// A lifetime, as a string or a bare TOML date / date-time. A date must lie ahead of the
    /// load time.
    pub fn lifetime(&self, cx: &mut Ctx<'_>, name: &str) -> Option<Spanned<Lifetime>> {
        let node = self.get(name)?;
        let text = match node.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Datetime(dt) => dt.to_string(),
            _ => {
                self.wrong_type(cx, name, node, "a string such as \"90d\" or a date");
                return None;
            }
        };
        match Lifetime::parse(&text) {
            Ok(Lifetime::Until(at)) if at <= cx.now => {
                let message = format!("lifetime {} is in the past", text.trim());
                cx.error(&node.span(), self.key(name), message);
                None
            }
            Ok(lifetime) => Some(Spanned::new(node.span(), lifetime)),
            Err(message) => {
                cx.error(&node.span(), self.key(name), message);
                None
            }
        }
    }

    /// An array of strings.
    pub fn strings(&self, cx: &mut Ctx<'_>, name: &str) -> Option<Vec<Spanned<String>>> {
        let node = self.get(name)?;
        let DeValue::Array(items) = node.get_ref() else {
            self.wrong_type(cx, name, node, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push(Spanned::new(item.span(), s.to_string())),
                other => cx.error(
                    &item.span(),
                    format!("{}[{i}]", self.key(name)),
                    format!("expected a string, found {}", a_type(other)),
                ),
            }
        }
        Some(out)
    }

    /// A sub-table (a `[section]` or an inline table).
    pub fn table(&self, cx: &mut Ctx<'_>, name: &str) -> Option<Table<'a, 'i>> {
        let node = self.get(name)?;
        match node.get_ref() {
            DeValue::Table(map) => Some(Table {
                map,
                span: node.span(),
                path: self.key(name),
            }),
            _ => {
                self.wrong_type(cx, name, node, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[name]]`); a single table counts as one element.
    pub fn tables(&self, cx: &mut Ctx<'_>, name: &str) -> Vec<Table<'a, 'i>> {
        let Some(node) = self.get(name) else {
            return Vec::new();
        };
        let path = self.key(name);
        let items = match node.get_ref() {
            DeValue::Array(items) => items,
            DeValue::Table(map) => {
                let span = node.span();
                return vec![Table { map, span, path }];
            }
            _ => {
                self.wrong_type(cx, name, node, &format!("an array of tables ([[{path}]])"));
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            match item.get_ref() {
                DeValue::Table(map) => out.push(Table {
                    map,
                    span: item.span(),
                    path: item_path,
                }),
                other => cx.error(
                    &item.span(),
                    item_path,
                    format!("expected a table, found {}", a_type(other)),
                ),
            }
        }
        out
    }
}

/// Why `path` cannot name a Vault secret as written: Vault collapses empty, `.` and `..`
/// segments, so `ci//deploy` would be the secret `ci/deploy` under another spelling (and two
/// tokens could write one secret unnoticed).
pub(crate) fn vault_path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("must not be empty");
    }
    if path.chars().any(char::is_control) {
        return Some("must not contain control characters (a line break, a tab, NUL)");
    }
    if path.contains('#') {
        // `#` separates path and key in `path#key` and in destination names
        // (`vault:secret/a#b#c` would be both `a#b` key `c` and `a` key `b#c`).
        return Some("must not contain `#` (it separates the path from the key)");
    }
    path.split('/')
        .any(|segment| matches!(segment, "" | "." | ".."))
        .then_some("must not contain empty, `.` or `..` segments (`a//b`, `a/./b`, `a/../b`): Vault would read it as another path")
}
