//! Backoff with jitter and the parsing of server wait hints (`Retry-After`, `x-ratelimit-reset`).

use rand::Rng;
use std::time::Duration;

/// Exponential backoff with full jitter, bounded in attempts and in each wait.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub attempts: u32,
    pub base: Duration,
    pub max_wait: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            attempts: 4,
            base: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// How long to wait before attempt `attempt + 1`. A server's hint wins, capped at `max_wait`.
    pub fn delay(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        if let Some(h) = hint {
            return h.min(self.max_wait);
        }
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max_wait);
        let ms = exp.as_millis().max(1) as u64;
        let jittered = rand::rng().random_range(ms / 2..=ms);
        Duration::from_millis(jittered)
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after_from(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// GitHub's primary limit: `x-ratelimit-remaining: 0` with `x-ratelimit-reset` (epoch seconds).
pub fn ratelimit_reset_from(headers: &http::HeaderMap) -> Option<Duration> {
    let remaining = headers.get("x-ratelimit-remaining")?.to_str().ok()?;
    if remaining.trim() != "0" {
        return None;
    }
    let reset: i64 = headers
        .get("x-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let secs = reset - chrono::Utc::now().timestamp();
    Some(Duration::from_secs(secs.max(1) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_wins_and_is_capped() {
        let b = Backoff::default();
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(b.delay(0, Some(Duration::from_secs(3600))), b.max_wait);
        let d = b.delay(2, None);
        assert!(d <= Duration::from_secs(2) && d >= Duration::from_secs(1));
    }

    #[test]
    fn parses_retry_after_forms() {
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after_from(&h), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after_from(&h), Some(Duration::ZERO));
    }
}
