//! The redacting secret type: token values and credentials that cannot be printed by accident.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;

/// A secret string (an ECI token value, a Vault or GitHub credential).
///
/// `Debug` and `Display` print `[redacted]`; the value is reachable only through
/// [`SecretValue::expose`], which marks every place that handles the real value.
#[derive(Clone)]
pub struct SecretValue(SecretString);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
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

/// Replace anything shaped like an ECI token (`u_` + 43 URL-safe base64 characters) in `text`
/// with `u_***`. Used on every server reply body before it can reach an error message.
pub fn scrub(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'u' && bytes.get(i + 1) == Some(&b'_') && (i == 0 || !is_b64(bytes[i - 1]))
        {
            let run = bytes[i + 2..].iter().take_while(|b| is_b64(**b)).count();
            if run >= 20 {
                out.push_str("u_***");
                i += 2 + run;
                continue;
            }
        }
        let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = SecretValue::new("u_Zb0eS2Orcu9Pv8EBfdf9D9aQiANHnqCsNt_Hy3TBIA");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(s.fingerprint().len(), 12);
    }

    #[test]
    fn scrubs_token_shaped_strings() {
        let t = "error: token u_Zb0eS2Orcu9Pv8EBfdf9D9aQiANHnqCsNt_Hy3TBIA is bad; menu_item ok";
        assert_eq!(scrub(t), "error: token u_*** is bad; menu_item ok");
    }
}
