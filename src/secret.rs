//! The redacting secret type: token values and credentials that cannot be printed by accident.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::fmt;
use std::sync::{LazyLock, RwLock};

/// Every secret value this process has held (credentials read from the policy's references,
/// token values from ECI and Vault), so [`scrub`] masks them wherever they turn up, whatever
/// their shape. Bounded: the oldest are forgotten first.
static KNOWN: LazyLock<RwLock<VecDeque<String>>> = LazyLock::new(|| RwLock::new(VecDeque::new()));
const KNOWN_MAX: usize = 4096;
/// Shorter values (a dev server's `root`) would mask ordinary words.
const KNOWN_MIN_CHARS: usize = 8;

fn remember(value: &str) {
    if value.chars().count() < KNOWN_MIN_CHARS {
        return;
    }
    let Ok(mut known) = KNOWN.write() else {
        return;
    };
    if known.iter().any(|k| k == value) {
        return;
    }
    if known.len() >= KNOWN_MAX {
        known.pop_front();
    }
    known.push_back(value.to_string());
}

/// A secret string (an ECI token value, a Vault or GitHub credential).
///
/// `Debug` and `Display` print `[redacted]`; the value is reachable only through
/// [`SecretValue::expose`], which marks every place that handles the real value.
#[derive(Clone)]
pub struct SecretValue(SecretString);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        remember(&value);
        Self(SecretString::from(value))
    }

    /// The real value. Callers must not log, format or persist what this returns.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// A short, one-way fingerprint (first 12 hex digits of SHA-256) that identifies a value
    /// in audit records and comparisons without revealing it.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.expose().as_bytes());
        digest
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    }

    /// Constant-shape comparison of two secrets without exposing either to a formatter.
    pub fn same_as(&self, other: &SecretValue) -> bool {
        let a = Sha256::digest(self.expose().as_bytes());
        let b = Sha256::digest(other.expose().as_bytes());
        a == b
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

/// Prefixes of credentials that must never be echoed: ECI tokens (`u_`), GitHub tokens
/// (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`) and Vault tokens (`hvs.`, `hvb.`,
/// `hvr.`).
const SECRET_PREFIXES: &[&str] = &[
    "github_pat_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "hvs.",
    "hvb.",
    "hvr.",
    "u_",
];

/// How many token characters after a prefix make it a credential (shorter runs are words
/// such as `menu_item`).
const MIN_SECRET_CHARS: usize = 16;

/// Replace anything shaped like a credential in `text` (a prefix above followed by 16 or more
/// URL-safe base64 characters, wherever it stands, even glued to other text or URL-encoded)
/// with the prefix and `***`. Used on every server reply before it can reach an error message,
/// a log line, the journal, the audit log or a notification.
pub fn scrub(text: &str) -> String {
    let known_masked = mask_known(text);
    let text = known_masked.as_deref().unwrap_or(text);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for prefix in SECRET_PREFIXES {
            if let Some(tail) = rest.strip_prefix(prefix) {
                let run = tail.bytes().take_while(|b| is_b64(*b)).count();
                if run >= MIN_SECRET_CHARS {
                    out.push_str(prefix);
                    out.push_str("***");
                    rest = &tail[run..];
                    continue 'outer;
                }
            }
        }
        let ch = rest.chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        rest = &rest[ch.len_utf8().min(rest.len())..];
    }
    out
}

/// `text` with every value this process has held replaced by `***`; `None` when there was none.
fn mask_known(text: &str) -> Option<String> {
    let known = KNOWN.read().ok()?;
    let mut masked: Option<String> = None;
    for value in known.iter() {
        let current = masked.as_deref().unwrap_or(text);
        if current.contains(value.as_str()) {
            let prefix = SECRET_PREFIXES
                .iter()
                .find(|p| value.starts_with(**p))
                .unwrap_or(&"");
            masked = Some(current.replace(value.as_str(), &format!("{prefix}***")));
        }
    }
    masked
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = SecretValue::new("u_NeverPrintedNeverPrintedNeverPrinted");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(s.fingerprint().len(), 12);
    }

    #[test]
    fn scrubs_token_shaped_strings() {
        let t = "error: token u_Zb0eS2Orcu9Pv8EBfdf9D9aQiANHnqCsNt_Hy3TBIA is bad; menu_item ok";
        assert_eq!(scrub(t), "error: token u_*** is bad; menu_item ok");
    }

    #[test]
    fn scrubs_credentials_glued_to_other_text() {
        // A value no other test holds as a SecretValue: this checks the shape-based masking
        // alone, whatever the order the tests run in.
        let eci = "u_GluedToTextGluedToTextGluedToTextGluedToT";
        for (input, want) in [
            (format!("Bearer%20{eci}"), "Bearer%20u_***".to_string()),
            (
                format!("token%3D{eci}&x=1"),
                "token%3Du_***&x=1".to_string(),
            ),
            (format!("tok{eci}end"), "toku_***".to_string()),
            (
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789".into(),
                "ghp_***".into(),
            ),
            (
                "github_pat_11ABCDEFG0123456789_abcdefghijklmnop".into(),
                "github_pat_***".into(),
            ),
            (
                "x-vault-token: hvs.CAESIabcdefghijklmnopqrstuvwxyz".into(),
                "x-vault-token: hvs.***".into(),
            ),
            (
                "ghs_ short and u_short stay".into(),
                "ghs_ short and u_short stay".into(),
            ),
        ] {
            let got = scrub(&input);
            assert_eq!(got, want);
            assert!(!got.contains(eci));
        }
    }

    #[test]
    fn masks_any_value_it_has_held_whatever_its_shape() {
        let _held = SecretValue::new("sandbox-credential-7f3a");
        let _eci = SecretValue::new("u_HeldValueHeldValueHeldValue42");
        assert_eq!(
            scrub("denied for sandbox-credential-7f3a (x)"),
            "denied for *** (x)"
        );
        assert_eq!(
            scrub("string \"u_HeldValueHeldValueHeldValue42\""),
            "string \"u_***\""
        );
        let _short = SecretValue::new("root");
        assert_eq!(scrub("root cause"), "root cause");
    }
}
