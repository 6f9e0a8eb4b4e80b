//! Generic JSON webhooks: the schema-v1 event, signed with HMAC-SHA256 over `"{timestamp}.{body}"`.

use super::channel::{SendError, post};
use super::schema::Event;
use crate::policy::ChannelPolicy;
use crate::secret::scrub;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

pub const HEADER_TIMESTAMP: &str = "X-ECI-Sync-Timestamp";
pub const HEADER_SIGNATURE: &str = "X-ECI-Sync-Signature";
pub const HEADER_EVENT: &str = "X-ECI-Sync-Event";
pub const HEADER_DELIVERY: &str = "X-ECI-Sync-Delivery";

/// `v1=<hex HMAC-SHA256 of "{timestamp}.{body}" keyed with the shared secret>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v1={hex}")
}

/// The exact body sent: the event as compact JSON, scrubbed once more for safety.
pub fn body(event: &Event) -> Result<Vec<u8>, SendError> {
    let json = serde_json::to_string(event).map_err(|e| SendError::permanent(e.to_string()))?;
    Ok(scrub(&json).into_bytes())
}

pub async fn send(
    http: &reqwest::Client,
    ch: &ChannelPolicy,
    event: &Event,
    timeout: Duration,
) -> Result<(), SendError> {
    let url = ch
        .url
        .as_ref()
        .ok_or_else(|| SendError::transient("webhook channel has no url"))?;
    let secret_ref = ch
        .secret
        .as_ref()
        .ok_or_else(|| SendError::transient("webhook channel has no secret"))?;
    let secret = secret_ref
        .resolve()
        .map_err(|e| SendError::transient(format!("secret ({}): {e}", secret_ref.describe())))?;
    let body = body(event)?;
    // Signed at send time, so a message delivered late from the queue is still fresh.
    let timestamp = chrono::Utc::now().timestamp();
    let headers = [
        (HEADER_TIMESTAMP, timestamp.to_string()),
        (
            HEADER_SIGNATURE,
            signature(secret.expose().as_bytes(), timestamp, &body),
        ),
        (HEADER_EVENT, event.event.as_str().to_string()),
        (HEADER_DELIVERY, event.id.clone()),
    ];
    post(http, url, body, &headers, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"s3cret",b"1700000000.{\"a\":1}",hashlib.sha256).hexdigest())'
        assert_eq!(
            signature(b"s3cret", 1_700_000_000, br#"{"a":1}"#),
            "v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }
}
