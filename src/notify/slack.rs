//! Slack incoming-webhook messages: a fallback `text` plus header, section and context blocks.

use super::channel::{SendError, post};
use super::schema::{Event, EventKind};
use super::text::{headline, lines};
use crate::policy::ChannelPolicy;
use crate::rotation::report::when;
use crate::secret::scrub;
use serde_json::{Value, json};
use std::time::Duration;

/// Slack's limits: header text 150 characters, section text 3000.
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;

fn emoji(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Expiring => ":hourglass_flowing_sand:",
        EventKind::Rotated => ":white_check_mark:",
        EventKind::RotationFailed => ":rotating_light:",
        EventKind::Recovered => ":large_green_circle:",
        EventKind::Expired => ":x:",
    }
}

/// `&`, `<` and `>` are control characters in Slack's mrkdwn.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The incoming-webhook JSON for `event`: short lines that read on a phone.
pub fn payload(event: &Event) -> Value {
    let head = format!("{} {}", emoji(event.event), headline(event));
    let mut body: Vec<String> = Vec::new();
    for l in lines(event) {
        match l.values.as_slice() {
            [one] => body.push(format!("*{}:* {}", l.label, escape(one))),
            many => {
                body.push(format!("*{}:*", l.label));
                body.extend(many.iter().map(|v| format!("• {}", escape(v))));
            }
        }
    }
    let context = format!(
        "eci-secret-sync · {} · {} · {}",
        event.event.as_str(),
        when(event.occurred_at),
        event.id
    );
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": scrub(&cut(&head, HEADER_MAX)), "emoji": true}
    })];
    for section in sections(&body) {
        blocks
            .push(json!({"type": "section", "text": {"type": "mrkdwn", "text": scrub(&section)}}));
    }
    blocks.push(
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": scrub(&context)}]}),
    );
    json!({ "text": scrub(&escape(&head)), "blocks": blocks })
}

/// Lines packed into section texts of at most [`SECTION_MAX`] characters.
fn sections(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in lines {
        let line = cut(line, SECTION_MAX);
        if !current.is_empty() && current.chars().count() + 1 + line.chars().count() > SECTION_MAX {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
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
        .ok_or_else(|| SendError::transient("slack channel has no url"))?;
    let body =
        serde_json::to_vec(&payload(event)).map_err(|e| SendError::permanent(e.to_string()))?;
    post(http, url, body, &[], timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::schema::{DestinationInfo, RotationInfo, SCHEMA, TokenInfo, TokenRef};

    #[test]
    fn escapes_mrkdwn_scrubs_values_and_stays_within_limits() {
        let now = chrono::Utc::now();
        let event = Event {
            schema: SCHEMA.into(),
            id: "id-1".into(),
            event: EventKind::RotationFailed,
            occurred_at: now,
            summary: String::new(),
            token: TokenInfo {
                name: "a<b>&c".into(),
                id: Some("old".into()),
                expires: Some(now + chrono::Duration::days(2)),
                expires_in_seconds: None,
                owner: None,
                roles: vec![],
                managed: true,
                rotates_from: None,
            },
            threshold: None,
            rotation: Some(RotationInfo {
                old_token: Some(TokenRef {
                    id: "old".into(),
                    expires: Some(now + chrono::Duration::days(2)),
                }),
                new_token: None,
                old_token_fate: None,
                old_token_deleted_after: None,
                destinations: (0..30)
                    .map(|i| DestinationInfo {
                        destination: format!("github:repo:acme/r{i}:S"),
                        status: "failed".into(),
                        error: Some(format!(
                            "{} u_Zb0eS2Orcu9Pv8EBfdf9D9aQiANHnqCsNt_Hy3TBIA",
                            "x".repeat(500)
                        )),
                    })
                    .collect(),
                error: Some("boom".into()),
                failing_since: Some(now),
                notice: Some(1),
                time_left_seconds: None,
            }),
        };
        let v = payload(&event);
        let text = serde_json::to_string(&v).unwrap();
        assert!(!text.contains("u_Zb0eS2Orcu9Pv8EBfdf9D9aQiANHnqCsNt_Hy3TBIA"));
        assert!(v["text"].as_str().unwrap().contains("a&lt;b&gt;&amp;c"));
        let blocks = v["blocks"].as_array().unwrap();
        let sections: Vec<&str> = blocks
            .iter()
            .filter(|b| b["type"] == "section")
            .map(|b| b["text"]["text"].as_str().unwrap())
            .collect();
        assert!(
            sections.len() > 1,
            "a long message spreads over several sections"
        );
        assert!(sections.iter().all(|s| s.chars().count() <= SECTION_MAX));
        assert!(
            sections.last().unwrap().contains("... and 20 more"),
            "long lists are cut"
        );
        assert!(blocks.len() <= 50);
        assert!(
            v["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= HEADER_MAX
        );
    }
}
