//! Email through SMTP (lettre): STARTTLS (default), implicit TLS, or plain on loopback only; plain-text body.

use super::channel::{SendError, is_loopback};
use super::schema::Event;
use super::text::{headline, plain};
use crate::eci::error_chain;
use crate::policy::ChannelPolicy;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// `[eci-secret-sync] ci-deploy expires in 6d 23h`
pub fn subject(event: &Event) -> String {
    crate::secret::scrub(&format!("[eci-secret-sync] {}", headline(event)))
}

/// The message for `event`, addressed from `from` to every `to`.
pub fn message(ch: &ChannelPolicy, event: &Event) -> Result<Message, SendError> {
    let from: Mailbox = ch
        .from
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|e| SendError::transient(format!("from address: {e}")))?;
    // The event's id, so a message resent from the outbox carries the Message-ID of the first
    // try and mail clients and list servers can drop the copy.
    let message_id = message_id(&event.id, from.email.domain());
    let mut builder = Message::builder()
        .from(from)
        .subject(subject(event))
        .message_id(Some(message_id));
    for to in &ch.to {
        let mailbox: Mailbox = to
            .parse()
            .map_err(|e| SendError::transient(format!("to address {to:?}: {e}")))?;
        builder = builder.to(mailbox);
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(crate::secret::scrub(&plain(event)))
        .map_err(|e| SendError::transient(format!("building the message: {e}")))
}

/// `<eci-secret-sync.ID@DOMAIN>`, with anything but letters, digits, `-` and `.` dropped from
/// the id.
fn message_id(event_id: &str, domain: &str) -> String {
    let id: String = event_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .collect();
    format!("<eci-secret-sync.{id}@{domain}>")
}

fn transport(
    ch: &ChannelPolicy,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
    let host = ch
        .smtp_host
        .as_deref()
        .ok_or_else(|| SendError::transient("email channel has no smtp_host"))?;
    let mode = ch.smtp_tls.as_deref().unwrap_or("starttls");
    let smtp = |e: lettre::transport::smtp::Error| {
        SendError::transient(format!("SMTP {host}: {}", error_chain(&e)))
    };
    let builder = match mode {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
            .map_err(smtp)?
            .port(ch.smtp_port.unwrap_or(465)),
        "none" if is_loopback(host) => {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(ch.smtp_port.unwrap_or(25))
        }
        "none" => {
            return Err(SendError::transient(format!(
                "smtp_tls = \"none\" is only allowed for a loopback host, not {host}; use starttls or tls"
            )));
        }
        _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(smtp)?
            .port(ch.smtp_port.unwrap_or(587)),
    };
    let builder = builder.timeout(Some(timeout));
    let builder = match (&ch.username, &ch.password) {
        (Some(user), Some(pass)) => {
            let resolve = |r: &crate::policy::SecretRef, what: &str| {
                r.resolve()
                    .map_err(|e| SendError::transient(format!("{what} ({}): {e}", r.describe())))
            };
            let user = resolve(user, "username")?;
            let pass = resolve(pass, "password")?;
            builder.credentials(Credentials::new(
                user.expose().to_string(),
                pass.expose().to_string(),
            ))
        }
        _ => builder,
    };
    Ok(builder.build())
}

pub async fn send(ch: &ChannelPolicy, event: &Event, timeout: Duration) -> Result<(), SendError> {
    let message = message(ch, event)?;
    let transport = transport(ch, timeout)?;
    match tokio::time::timeout(timeout, transport.send(message)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(SendError::transient(format!("SMTP: {}", error_chain(&e)))),
        Err(_) => Err(SendError::transient(format!(
            "SMTP: no answer within {timeout:?}"
        ))),
    }
}
