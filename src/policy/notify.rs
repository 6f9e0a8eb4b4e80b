//! `[notify]`: expiry thresholds, which tokens to watch, and the `[[notify.channel]]` list.

use std::time::Duration;

use toml::de::DeValue;

use super::model::{ChannelKind, ChannelPolicy, EVENTS, NotifySection, Watch};
use super::reader::{Ctx, Table};
use super::secret_ref::{self, VaultRefs};
use super::suggest::did_you_mean;

const DEFAULT_THRESHOLD_DAYS: [u64; 4] = [30, 14, 7, 1];

pub(crate) fn notify(cx: &mut Ctx<'_>, root: &Table<'_, '_>) -> NotifySection {
    let mut section = NotifySection {
        thresholds: DEFAULT_THRESHOLD_DAYS
            .iter()
            .map(|d| Duration::from_secs(d * 86_400))
            .collect(),
        watch: Watch::Policy,
        channels: Vec::new(),
    };
    let Some(t) = root.table(cx, "notify") else {
        return section;
    };
    t.check_keys(cx, &["thresholds", "watch", "channel"]);
    if let Some(thresholds) = thresholds(cx, &t) {
        section.thresholds = thresholds;
    }
    if let Some(watch) = t.choice(cx, "watch", &["policy", "all"]) {
        section.watch = if *watch.get_ref() == "all" {
            Watch::All
        } else {
            Watch::Policy
        };
    }
    section.channels = t
        .tables(cx, "channel")
        .iter()
        .filter_map(|c| channel(cx, c))
        .collect();
    section
}

/// A `thresholds` list of durations, sorted longest first without duplicates.
pub(crate) fn thresholds(cx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Option<Vec<Duration>> {
    let items = t.strings(cx, "thresholds")?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match super::duration::parse_duration(item.get_ref()) {
            Ok(d) => out.push(d),
            Err(message) => cx.error(
                &item.span(),
                format!("{}[{i}]", t.key("thresholds")),
                message,
            ),
        }
    }
    out.sort_unstable_by(|a, b| b.cmp(a));
    out.dedup();
    Some(out)
}

const COMMON_KEYS: [&str; 2] = ["kind", "events"];
const SLACK_KEYS: [&str; 1] = ["url"];
const WEBHOOK_KEYS: [&str; 2] = ["url", "secret"];
const EMAIL_KEYS: [&str; 7] = [
    "smtp_host",
    "smtp_port",
    "smtp_tls",
    "username",
    "password",
    "from",
    "to",
];

fn channel(cx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Option<ChannelPolicy> {
    let all_keys: Vec<&str> = COMMON_KEYS
        .iter()
        .chain(&WEBHOOK_KEYS)
        .chain(&EMAIL_KEYS)
        .copied()
        .collect();
    t.check_keys(cx, &all_keys);
    if !t.has("kind") {
        t.missing(cx, "kind", "\"slack\", \"webhook\" or \"email\"");
        return None;
    }
    let kind = match *t
        .choice(cx, "kind", &["slack", "webhook", "email"])?
        .get_ref()
    {
        "slack" => ChannelKind::Slack,
        "webhook" => ChannelKind::Webhook,
        _ => ChannelKind::Email,
    };
    let (name, own_keys): (&str, &[&str]) = match kind {
        ChannelKind::Slack => ("slack", &SLACK_KEYS),
        ChannelKind::Webhook => ("webhook", &WEBHOOK_KEYS),
        ChannelKind::Email => ("email", &EMAIL_KEYS),
    };
    for key in t.map.keys() {
        let key_name: &str = key.get_ref();
        let foreign = all_keys.contains(&key_name)
            && !COMMON_KEYS.contains(&key_name)
            && !own_keys.contains(&key_name);
        if foreign {
            let message = format!("`{key_name}` is not used by {name} channels");
            cx.error(&key.span(), t.key(key_name), message);
        }
    }
    let mut channel = ChannelPolicy {
        kind,
        url: None,
        secret: None,
        events: events(cx, t),
        smtp_host: None,
        smtp_port: None,
        smtp_tls: None,
        username: None,
        password: None,
        from: None,
        to: Vec::new(),
    };
    let ok = match kind {
        ChannelKind::Slack => {
            channel.url = required(cx, t, "url");
            channel.url.is_some()
        }
        ChannelKind::Webhook => {
            channel.url = required(cx, t, "url");
            channel.secret = required(cx, t, "secret");
            channel.url.is_some() && channel.secret.is_some()
        }
        ChannelKind::Email => email(cx, t, &mut channel),
    };
    ok.then_some(channel)
}

fn events(cx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Vec<String> {
    let items = t.strings(cx, "events").unwrap_or_default();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let event = item.get_ref();
        if EVENTS.contains(&event.as_str()) {
            if !out.contains(event) {
                out.push(event.clone());
            }
        } else {
            let hint = did_you_mean(event, &EVENTS);
            let message = format!(
                "unknown event {event:?}{hint} (events: {})",
                EVENTS.join(", ")
            );
            cx.error(&item.span(), format!("{}[{i}]", t.key("events")), message);
        }
    }
    out
}

fn required(cx: &mut Ctx<'_>, t: &Table<'_, '_>, name: &str) -> Option<super::SecretRef> {
    secret_ref::read_required(cx, t, name, VaultRefs::NotAllowed)
}

/// Fills the email fields; false when a required one is missing or invalid.
fn email(cx: &mut Ctx<'_>, t: &Table<'_, '_>, channel: &mut ChannelPolicy) -> bool {
    channel.smtp_host = t.required_text(cx, "smtp_host").map(|h| h.into_inner());
    channel.smtp_port = t
        .integer(cx, "smtp_port", 1..=65_535)
        .and_then(|p| u16::try_from(p).ok());
    channel.smtp_tls = t
        .choice(cx, "smtp_tls", &["starttls", "tls", "none"])
        .map(|s| (*s.get_ref()).to_owned());
    channel.username = secret_ref::read(cx, t, "username", VaultRefs::NotAllowed);
    channel.password = secret_ref::read(cx, t, "password", VaultRefs::NotAllowed);
    for (have, lacks) in [("username", "password"), ("password", "username")] {
        if t.has(have) && !t.has(lacks) {
            let message = format!("`{have}` needs `{lacks}` as well");
            cx.error(&t.key_span(have), t.key(have), message);
        }
    }
    if channel.smtp_tls.as_deref() == Some("none")
        && let Some(host) = &channel.smtp_host
        && !is_loopback_host(host)
    {
        let message = format!(
            "smtp_tls = \"none\" sends credentials and mail in clear text; only allowed for a loopback host, not {host:?}"
        );
        cx.error(&t.key_span("smtp_tls"), t.key("smtp_tls"), message);
    }
    let from = t.required_text(cx, "from");
    if let Some(f) = &from
        && let Err(e) = f.get_ref().parse::<lettre::message::Mailbox>()
    {
        let message = format!("{:?} is not an email address ({e})", f.get_ref());
        cx.error(&f.span(), t.key("from"), message);
    }
    channel.from = from.map(|f| f.into_inner());
    match t.get("to").map(|node| node.get_ref()) {
        None => t.missing(cx, "to", "a list of addresses"),
        Some(DeValue::Array(items)) if items.is_empty() => {
            let message = "must list at least one address";
            cx.error(&t.key_span("to"), t.key("to"), message);
        }
        Some(_) => {
            let to = t.strings(cx, "to").unwrap_or_default();
            for (i, item) in to.iter().enumerate() {
                if let Err(e) = item.get_ref().parse::<lettre::message::Mailbox>() {
                    let message = format!("{:?} is not an email address ({e})", item.get_ref());
                    cx.error(&item.span(), format!("{}[{i}]", t.key("to")), message);
                }
            }
            channel.to = to.into_iter().map(|s| s.into_inner()).collect();
        }
    }
    channel.smtp_host.is_some() && channel.from.is_some() && !channel.to.is_empty()
}

/// `localhost`, or an address in 127.0.0.0/8 or ::1.
fn is_loopback_host(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
