//! A configured channel: its stable key, its event filter, and sending one event through it.

use super::schema::Event;
use super::{email, slack, webhook};
use crate::policy::{ChannelKind, ChannelPolicy};
use crate::secret::scrub;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Why a send did not go through. `permanent`: this message will never be accepted (the
/// receiver rejected its content); otherwise the channel is down and the message waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub message: String,
    pub permanent: bool,
}

impl SendError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: scrub(&message.into()),
            permanent: false,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: scrub(&message.into()),
            permanent: true,
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One `[[notify.channel]]`, ready to send.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Stable across restarts and reordering: kind + where it sends (names of references, not
    /// their values). Queued messages are filed under it.
    pub key: String,
    /// For logs and summaries: `slack (env SLACK_WEBHOOK_URL)`; never a secret.
    pub label: String,
    pub policy: ChannelPolicy,
}

impl Channel {
    pub fn new(policy: &ChannelPolicy) -> Self {
        let kind = kind_name(policy.kind);
        let target = match policy.kind {
            ChannelKind::Slack | ChannelKind::Webhook => policy
                .url
                .as_ref()
                .map(|u| u.describe())
                .unwrap_or_default(),
            ChannelKind::Email => format!(
                "{}:{} to {}",
                policy.smtp_host.as_deref().unwrap_or_default(),
                policy.smtp_port.map(|p| p.to_string()).unwrap_or_default(),
                policy.to.join(", ")
            ),
        };
        let digest = Sha256::digest(format!("{kind}\n{target}").as_bytes());
        let tag: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        Self {
            key: format!("{kind}-{tag}"),
            label: format!("{kind} ({target})"),
            policy: policy.clone(),
        }
    }

    /// Whether this channel's `events` filter lets `event` through.
    pub fn wants(&self, event: &Event) -> bool {
        self.policy.events.is_empty()
            || self.policy.events.iter().any(|e| e == event.event.as_str())
    }

    /// Send one event, waiting at most `timeout`.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        event: &Event,
        timeout: Duration,
    ) -> Result<(), SendError> {
        match self.policy.kind {
            ChannelKind::Slack => slack::send(http, &self.policy, event, timeout).await,
            ChannelKind::Webhook => webhook::send(http, &self.policy, event, timeout).await,
            ChannelKind::Email => email::send(&self.policy, event, timeout).await,
        }
    }
}

fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Slack => "slack",
        ChannelKind::Webhook => "webhook",
        ChannelKind::Email => "email",
    }
}

/// Hosts to which plain `http://` and unencrypted SMTP are allowed.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The HTTP client for Slack and webhooks: no redirects (a signed POST is not replayed
/// elsewhere), short connect timeout.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("eci-secret-sync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// POST a JSON body. Errors never name the URL (a Slack URL is a credential).
pub async fn post(
    http: &reqwest::Client,
    url: &crate::policy::SecretRef,
    body: Vec<u8>,
    headers: &[(&str, String)],
    timeout: Duration,
) -> Result<(), SendError> {
    let url = url
        .resolve()
        .map_err(|e| SendError::transient(format!("url ({}): {e}", url.describe())))?;
    let parsed = reqwest::Url::parse(url.expose())
        .map_err(|_| SendError::transient("url is not a valid URL"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if parsed.host_str().is_some_and(is_loopback) => {}
        "http" => {
            return Err(SendError::transient(
                "refusing plain http to a non-loopback host; use an https URL",
            ));
        }
        other => {
            return Err(SendError::transient(format!(
                "url scheme {other:?} is not http(s)"
            )));
        }
    }
    let mut req = http
        .post(parsed)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    let resp = req.body(body).send().await.map_err(|e| {
        let e = e.without_url();
        let what = if e.is_timeout() {
            "timed out".to_string()
        } else {
            crate::eci::error_chain(&e)
        };
        SendError::transient(format!("request failed: {what}"))
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    // Receivers echo the request path in error pages (`Cannot POST /services/T0/B0/secret`):
    // the URL's parts are masked before any of the body is shown.
    let text = mask_url_parts(&text, url.expose());
    let excerpt: String = text.chars().take(200).collect();
    let message = format!("HTTP {}: {}", status.as_u16(), excerpt.trim());
    // The receiver refused this message's content: resending it cannot help.
    if matches!(status.as_u16(), 400 | 413 | 422) {
        Err(SendError::permanent(message))
    } else if matches!(status.as_u16(), 404 | 410) {
        // Not this message: the URL itself (a deleted webhook). Kept, so a fixed URL still
        // delivers it.
        Err(SendError::transient(format!(
            "{message}; the receiver says this URL does not exist: check the channel's url (the webhook may have been deleted)"
        )))
    } else {
        Err(SendError::transient(message))
    }
}

/// `text` with the URL, its path and query, each of their parts of 6 or more characters, and
/// any user name or password in it replaced by `***` (a webhook URL is a credential, and its
/// path is where the secret sits).
fn mask_url_parts(text: &str, url: &str) -> String {
    let mut parts: Vec<String> = vec![url.to_string()];
    if let Ok(u) = reqwest::Url::parse(url) {
        parts.push(u.path().to_string());
        // Credentials in the URL itself (`https://user:pass@host/...`).
        // (Parts shorter than 4 characters would mask ordinary words.)
        parts.extend(
            [Some(u.username()), u.password()]
                .into_iter()
                .flatten()
                .filter(|p| p.chars().count() >= 4)
                .map(str::to_owned),
        );
        if let Some(q) = u.query() {
            parts.push(q.to_string());
        }
        parts.extend(
            u.path()
                .split('/')
                .chain(u.query().unwrap_or_default().split(['&', '=']))
                .filter(|p| p.chars().count() >= 6)
                .map(str::to_owned),
        );
    }
    // Longest first, so a part never leaves a piece of a longer one behind.
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut out = text.to_string();
    for p in parts.iter().filter(|p| !p.is_empty() && p.as_str() != "/") {
        out = out.replace(p.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echoed_webhook_path_is_masked() {
        let url = "https://hooks.slack.com/services/T000/B000/SLACKSECRETPATH";
        assert_eq!(
            mask_url_parts(
                "<pre>Cannot POST /services/T000/B000/SLACKSECRETPATH</pre>",
                url
            ),
            "<pre>Cannot POST ***</pre>"
        );
        assert_eq!(
            mask_url_parts("no such hook SLACKSECRETPATH here", url),
            "no such hook *** here"
        );
        let signed = "https://hooks.example.com/in?token=abcdef123456&x=1";
        assert_eq!(
            mask_url_parts("bad token abcdef123456", signed),
            "bad token ***"
        );
        assert_eq!(mask_url_parts("invalid_payload", url), "invalid_payload");
    }

    #[test]
    fn credentials_in_a_webhook_url_are_masked() {
        let url = "https://hookuser:hookpass@hooks.example.net/notify";
        assert_eq!(
            mask_url_parts("denied for hookuser with password hookpass", url),
            "denied for *** with password ***"
        );
    }
    use crate::policy::SecretRef;

    fn slack(env: &str) -> ChannelPolicy {
        ChannelPolicy {
            kind: ChannelKind::Slack,
            url: Some(SecretRef::Env(env.into())),
            secret: None,
            events: vec![],
            smtp_host: None,
            smtp_port: None,
            smtp_tls: None,
            username: None,
            password: None,
            from: None,
            to: vec![],
        }
    }

    #[test]
    fn keys_are_stable_and_name_no_secret() {
        let a = Channel::new(&slack("SLACK_URL"));
        assert_eq!(a.key, Channel::new(&slack("SLACK_URL")).key);
        assert_ne!(a.key, Channel::new(&slack("OTHER")).key);
        assert_eq!(a.label, "slack (env SLACK_URL)");
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "127.0.0.1", "127.5.0.1", "::1", "[::1]"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
