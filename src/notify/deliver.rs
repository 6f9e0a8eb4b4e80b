//! Delivery within a time budget: channels in parallel, each in queue order; what fails stays queued.

use super::channel::{Channel, SendError, http_client};
use super::outbox::{Entry, Outbox};
use std::time::Duration;
use tokio::time::Instant;

/// A message the receiver refused (HTTP 400/413/422) is dropped after this many attempts.
const MAX_REFUSALS: u32 = 3;

#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Total time one delivery pass may take; what is left over waits for the next run.
    pub budget: Duration,
    /// Tries per message within one pass.
    pub attempts: u32,
    /// Wait before the second try; doubled for each further one.
    pub backoff: Duration,
    /// Longest wait for one send.
    pub request_timeout: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(10),
            attempts: 3,
            backoff: Duration::from_millis(250),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// What one delivery pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    pub delivered: usize,
    pub dropped: usize,
    /// `(channel label, last error)` for each channel that still has messages waiting.
    pub failures: Vec<(String, String)>,
}

/// Try to empty the outbox. Never fails: what cannot be sent stays in `outbox`.
pub async fn deliver(
    outbox: &mut Outbox,
    channels: &[Channel],
    opts: &DeliveryOptions,
) -> Delivered {
    let mut result = Delivered::default();
    let queues: Vec<Vec<Entry>> = channels.iter().map(|c| outbox.take(&c.key)).collect();
    // Whatever is left belongs to channels no longer in the policy.
    for orphan in std::mem::take(&mut outbox.entries) {
        tracing::warn!(channel = %orphan.channel, event = orphan.event.event.as_str(),
            token = %orphan.event.token.name, "channel removed from the policy: dropping its queued message");
        result.dropped += 1;
    }
    let http = match http_client() {
        Ok(h) => h,
        Err(e) => {
            for (c, q) in channels.iter().zip(queues) {
                if !q.is_empty() {
                    result.failures.push((c.label.clone(), e.clone()));
                }
                outbox.entries.extend(q);
            }
            return result;
        }
    };
    let deadline = Instant::now() + opts.budget;
    let runs = channels
        .iter()
        .zip(queues)
        .map(|(c, q)| channel_pass(&http, c, q, deadline, opts));
    for (channel, pass) in channels.iter().zip(futures::future::join_all(runs).await) {
        result.delivered += pass.delivered;
        result.dropped += pass.dropped;
        if let Some(e) = pass.error {
            result.failures.push((channel.label.clone(), e));
        }
        outbox.entries.extend(pass.kept);
    }
    result
}

struct Pass {
    kept: Vec<Entry>,
    delivered: usize,
    dropped: usize,
    error: Option<String>,
}

/// One channel's queue, in order. The first message that cannot get through stops the channel
/// for this pass (it is down); a message the receiver refuses is skipped, then dropped.
async fn channel_pass(
    http: &reqwest::Client,
    ch: &Channel,
    queue: Vec<Entry>,
    deadline: Instant,
    opts: &DeliveryOptions,
) -> Pass {
    let mut pass = Pass {
        kept: Vec::new(),
        delivered: 0,
        dropped: 0,
        error: None,
    };
    let mut queue = queue.into_iter();
    while let Some(mut entry) = queue.next() {
        let (result, tries) = send_with_retries(http, ch, &entry, deadline, opts).await;
        entry.attempts += tries;
        match result {
            Ok(()) => {
                tracing::info!(channel = %ch.label, event = entry.event.event.as_str(),
                    token = %entry.event.token.name, "notification sent");
                pass.delivered += 1;
            }
            Err(e) if e.permanent && entry.refusals + 1 >= MAX_REFUSALS => {
                tracing::error!(channel = %ch.label, event = entry.event.event.as_str(),
                    token = %entry.event.token.name, error = %e, "receiver keeps refusing this notification: dropped");
                pass.dropped += 1;
            }
            Err(e) if e.permanent => {
                entry.refusals += 1;
                tracing::warn!(channel = %ch.label, error = %e, "receiver refused a notification; will retry it");
                entry.last_error = Some(e.message.clone());
                pass.error = Some(e.message);
                pass.kept.push(entry);
            }
            Err(e) => {
                tracing::warn!(channel = %ch.label, error = %e, waiting = queue.len() + 1,
                    "notification channel unavailable; messages stay queued for the next run");
                entry.last_error = Some(e.message.clone());
                pass.error = Some(e.message);
                pass.kept.push(entry);
                pass.kept.extend(queue);
                break;
            }
        }
    }
    pass
}

async fn send_with_retries(
    http: &reqwest::Client,
    ch: &Channel,
    entry: &Entry,
    deadline: Instant,
    opts: &DeliveryOptions,
) -> (Result<(), SendError>, u32) {
    let mut tries = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (
                Err(SendError::transient("time budget of this run used up")),
                tries,
            );
        }
        tries += 1;
        match ch
            .send(http, &entry.event, opts.request_timeout.min(left))
            .await
        {
            Ok(()) => return (Ok(()), tries),
            Err(e) if e.permanent || tries >= opts.attempts.max(1) => return (Err(e), tries),
            Err(e) => {
                let wait = opts.backoff.saturating_mul(1 << (tries - 1).min(16));
                if Instant::now() + wait >= deadline {
                    return (Err(e), tries);
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::schema::{Event, EventKind, SCHEMA, TokenInfo};
    use crate::policy::{ChannelKind, ChannelPolicy, SecretRef};
    use axum::extract::State;
    use axum::http::StatusCode;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Server {
        down: AtomicBool,
        hang: AtomicBool,
        seen: Mutex<Vec<String>>,
    }

    async fn handler(State(s): State<Arc<Server>>, body: String) -> StatusCode {
        if s.hang.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        if s.down.load(Ordering::SeqCst) {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        if id.starts_with("bad") {
            return StatusCode::BAD_REQUEST;
        }
        s.seen.lock().unwrap().push(id);
        StatusCode::NO_CONTENT
    }

    async fn serve(dir: &std::path::Path, name: &str) -> (Arc<Server>, Channel) {
        let s = Arc::new(Server::default());
        let app = axum::Router::new().fallback(handler).with_state(s.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        let (url_file, secret_file) = (
            dir.join(format!("{name}-url")),
            dir.join(format!("{name}-secret")),
        );
        std::fs::write(&url_file, url).unwrap();
        std::fs::write(&secret_file, "k").unwrap();
        let policy = ChannelPolicy {
            kind: ChannelKind::Webhook,
            url: Some(SecretRef::File(url_file)),
            secret: Some(SecretRef::File(secret_file)),
            events: vec![],
            smtp_host: None,
            smtp_port: None,
            smtp_tls: None,
            username: None,
            password: None,
            from: None,
            to: vec![],
        };
        (s, Channel::new(&policy))
    }

    fn event(id: &str) -> Event {
        Event {
            schema: SCHEMA.into(),
            id: id.into(),
            event: EventKind::Expiring,
            occurred_at: chrono::Utc::now(),
            summary: String::new(),
            token: TokenInfo {
                name: "t".into(),
                id: None,
                expires: None,
                expires_in_seconds: None,
                owner: None,
                roles: vec![],
                managed: true,
                rotates_from: None,
            },
            threshold: None,
            rotation: None,
        }
    }

    fn opts() -> DeliveryOptions {
        DeliveryOptions {
            budget: Duration::from_secs(2),
            attempts: 3,
            backoff: Duration::from_millis(10),
            request_timeout: Duration::from_secs(5),
        }
    }

    fn ids(o: &Outbox) -> Vec<&str> {
        o.entries.iter().map(|e| e.event.id.as_str()).collect()
    }

    #[tokio::test]
    async fn a_down_channel_keeps_its_queue_in_order_and_delivers_it_later() {
        let tmp = tempfile::tempdir().unwrap();
        let (server, ch) = serve(tmp.path(), "a").await;
        let mut outbox = Outbox::default();
        for id in ["e1", "e2", "e3"] {
            outbox.push(&ch.key, event(id), chrono::Utc::now());
        }
        server.down.store(true, Ordering::SeqCst);
        let r = deliver(&mut outbox, std::slice::from_ref(&ch), &opts()).await;
        assert_eq!(r.delivered, 0);
        assert_eq!(r.failures.len(), 1);
        assert!(r.failures[0].1.contains("HTTP 503"), "{:?}", r.failures);
        assert_eq!(ids(&outbox), ["e1", "e2", "e3"]);
        assert_eq!(outbox.entries[0].attempts, 3, "retried within the pass");
        assert_eq!(
            outbox.entries[1].attempts, 0,
            "the rest wait behind the first"
        );

        server.down.store(false, Ordering::SeqCst);
        let r = deliver(&mut outbox, std::slice::from_ref(&ch), &opts()).await;
        assert_eq!((r.delivered, r.failures.len()), (3, 0));
        assert!(outbox.entries.is_empty());
        assert_eq!(*server.seen.lock().unwrap(), ["e1", "e2", "e3"]);
    }

    #[tokio::test]
    async fn a_refused_message_never_blocks_the_others_and_is_dropped_after_three_tries() {
        let tmp = tempfile::tempdir().unwrap();
        let (server, ch) = serve(tmp.path(), "a").await;
        let mut outbox = Outbox::default();
        outbox.push(&ch.key, event("bad-1"), chrono::Utc::now());
        outbox.push(&ch.key, event("good-1"), chrono::Utc::now());
        let r = deliver(&mut outbox, std::slice::from_ref(&ch), &opts()).await;
        assert_eq!(r.delivered, 1);
        assert_eq!(ids(&outbox), ["bad-1"]);
        deliver(&mut outbox, std::slice::from_ref(&ch), &opts()).await;
        let r = deliver(&mut outbox, std::slice::from_ref(&ch), &opts()).await;
        assert_eq!(r.dropped, 1);
        assert!(outbox.entries.is_empty());
        assert_eq!(*server.seen.lock().unwrap(), ["good-1"]);
    }

    #[tokio::test]
    async fn refusals_after_an_outage_count_from_the_first_refusal() {
        let tmp = tempfile::tempdir().unwrap();
        let (server, ch) = serve(tmp.path(), "a").await;
        let mut outbox = Outbox::default();
        outbox.push(&ch.key, event("bad-1"), chrono::Utc::now());
        // An outage first: three failed attempts in that pass.
        server.down.store(true, Ordering::SeqCst);
        deliver(&mut outbox, std::slice::from_ref(&ch), &opts()).await;
        assert_eq!(outbox.entries[0].attempts, 3);
        server.down.store(false, Ordering::SeqCst);
        // Then refused: kept for two more runs, dropped at the third refusal.
        for run in 1..=2 {
            let r = deliver(&mut outbox, std::slice::from_ref(&ch), &opts()).await;
            assert_eq!((r.dropped, outbox.entries.len()), (0, 1), "refusal {run}");
        }
        let r = deliver(&mut outbox, std::slice::from_ref(&ch), &opts()).await;
        assert_eq!(r.dropped, 1);
        assert!(outbox.entries.is_empty());
    }

    #[tokio::test]
    async fn a_hanging_channel_is_cut_off_by_the_budget_and_never_delays_another() {
        let tmp = tempfile::tempdir().unwrap();
        let (slow, slow_ch) = serve(tmp.path(), "slow").await;
        let (fast, fast_ch) = serve(tmp.path(), "fast").await;
        slow.hang.store(true, Ordering::SeqCst);
        let mut outbox = Outbox::default();
        outbox.push(&slow_ch.key, event("s1"), chrono::Utc::now());
        outbox.push(&fast_ch.key, event("f1"), chrono::Utc::now());
        outbox.push("removed-channel", event("x"), chrono::Utc::now());
        // It returns (the slow channel is cut off by the budget) having delivered the other.
        let r = deliver(&mut outbox, &[slow_ch.clone(), fast_ch], &opts()).await;
        assert_eq!((r.delivered, r.dropped), (1, 1));
        assert_eq!(*fast.seen.lock().unwrap(), ["f1"]);
        assert_eq!(ids(&outbox), ["s1"]);
        assert_eq!(r.failures[0].0, slow_ch.label);
    }
}
