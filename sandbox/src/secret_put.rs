//! GitHub's rules for creating or updating a secret: name, key id, sealed box, size, visibility.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::github_json::GhError;
use crate::github_world::{Scope, StoredSecret, Visibility};
use crate::timefmt::now_seconds;

/// Largest decrypted secret GitHub accepts (48 KB).
pub(crate) const MAX_SECRET_BYTES: usize = 48 * 1024;

/// Checks a secret name and returns it upper-cased, as GitHub stores it.
pub(crate) fn secret_name(raw: &str) -> Result<String, GhError> {
    let ok_chars = !raw.is_empty() && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok_chars {
        return Err(GhError::invalid(
            "Secret names can only contain alphanumeric characters ([a-z], [A-Z], [0-9]) or underscores (_).",
        ));
    }
    if raw.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(GhError::invalid(
            "Secret names must not start with a number.",
        ));
    }
    let upper = raw.to_ascii_uppercase();
    if upper.starts_with("GITHUB_") {
        return Err(GhError::invalid(
            "Secret names must not start with the GITHUB_ prefix.",
        ));
    }
    Ok(upper)
}

fn required_str<'a>(
    obj: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<&'a str, GhError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(GhError::invalid(format!("\"{field}\" wasn't supplied."))),
        Some(_) => Err(GhError::invalid(format!(
            "For 'properties/{field}', the value is not a string."
        ))),
    }
}

/// Organization secrets: visibility (required) and selected repository ids.
fn visibility(obj: &serde_json::Map<String, Value>) -> Result<(Visibility, Vec<u64>), GhError> {
    let raw = required_str(obj, "visibility")?;
    let vis = Visibility::parse(raw).ok_or_else(|| {
        GhError::invalid(format!(
            "For 'properties/visibility', \"{raw}\" is not one of [\"all\", \"private\", \"selected\"]."
        ))
    })?;
    let ids = match obj.get("selected_repository_ids") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| GhError::invalid("For 'items', the value is not an integer."))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(GhError::invalid(
                "For 'properties/selected_repository_ids', the value is not an array.",
            ));
        }
    };
    // Ids only count for `selected`, as on GitHub.
    let ids = if vis == Visibility::Selected {
        ids
    } else {
        Vec::new()
    };
    Ok((vis, ids))
}

/// Applies a PUT body to `scope`; true when the secret was created, false when updated.
pub(crate) fn put_secret(
    scope: &mut Scope,
    name: &str,
    body: &[u8],
    is_org: bool,
) -> Result<bool, GhError> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|_| GhError::new(StatusCode::BAD_REQUEST, "Problems parsing JSON"))?;
    let obj = parsed
        .as_object()
        .ok_or_else(|| GhError::new(StatusCode::BAD_REQUEST, "Problems parsing JSON"))?;
    let encrypted_value = required_str(obj, "encrypted_value")?;
    let key_id = required_str(obj, "key_id")?;
    let (vis, ids) = if is_org {
        let (v, ids) = visibility(obj)?;
        (Some(v), ids)
    } else {
        (None, Vec::new())
    };
    if key_id != scope.key.key_id {
        return Err(GhError::invalid(
            "key_id does not match the current public key of this scope; fetch the public key again.",
        ));
    }
    let ciphertext = STANDARD
        .decode(encrypted_value)
        .map_err(|_| GhError::invalid("encrypted_value is not valid base64."))?;
    let plain = scope.key.secret.unseal(&ciphertext).map_err(|_| {
        GhError::invalid("encrypted_value could not be decrypted with the public key of key_id.")
    })?;
    if plain.len() > MAX_SECRET_BYTES {
        return Err(GhError::invalid(format!(
            "Secret value is too large: {} bytes, the limit is {MAX_SECRET_BYTES} bytes (48 KB).",
            plain.len()
        )));
    }
    let now = now_seconds();
    let created_at = scope.secrets.get(name).map_or(now, |s| s.created_at);
    let created = !scope.secrets.contains_key(name);
    scope.secrets.insert(
        name.to_owned(),
        StoredSecret {
            encrypted_value: encrypted_value.to_owned(),
            key_id: key_id.to_owned(),
            value: plain,
            created_at,
            updated_at: now,
            visibility: vis,
            selected_repository_ids: ids,
        },
    );
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::secret_name;

    #[test]
    fn names_follow_github_rules() {
        assert_eq!(secret_name("eci_token").ok().as_deref(), Some("ECI_TOKEN"));
        assert!(secret_name("A1_b").is_ok());
        assert!(secret_name("_X").is_ok());
        assert!(secret_name("1ABC").is_err());
        assert!(secret_name("github_token").is_err());
        assert!(secret_name("GITHUBX").is_ok());
        assert!(secret_name("A-B").is_err());
        assert!(secret_name("").is_err());
        assert!(secret_name("ÄB").is_err());
    }
}
