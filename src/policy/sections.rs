//! The plain settings sections: `[schedule]`, `[defaults]`, `[state]` and `[metrics]`.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::duration::{Lifetime, format_duration};
use super::error::Span;
use super::model::*;
use super::reader::{Ctx, Table};
use super::suggest::did_you_mean;

/// Longest `[schedule] jitter`.
const MAX_JITTER: Duration = Duration::from_secs(3_600);
const JITTER_WHY: &str = "jitter delays each run by up to this long";
/// Longest `grace`, in `[defaults]` or a `[[token]]`.
pub(crate) const MAX_GRACE: Duration = Duration::from_secs(30 * 86_400);
pub(crate) const GRACE_WHY: &str =
    "the replaced token stays valid, and its rotation open, this long after the switch";

pub(crate) fn schedule(cx: &mut Ctx<'_>, root: &Table<'_, '_>) -> ScheduleSection {
    let mut schedule = ScheduleSection {
        cron: "*/30 * * * *".to_owned(),
        timezone: "UTC".to_owned(),
        jitter: Duration::ZERO,
    };
    let Some(t) = root.table(cx, "schedule") else {
        return schedule;
    };
    t.check_keys(cx, &["cron", "timezone", "jitter"]);
    let mut valid = true;
    if let Some(cron) = t.text(cx, "cron") {
        match crate::schedule::parse_cron(cron.get_ref()) {
            Ok(_) => schedule.cron = cron.get_ref().trim().to_owned(),
            Err(message) => {
                valid = false;
                cx.error(&cron.span(), t.key("cron"), message);
            }
        }
    }
    if let Some(timezone) = t.text(cx, "timezone") {
        match crate::schedule::parse_zone(timezone.get_ref()) {
            Ok(_) => schedule.timezone = timezone.get_ref().trim().to_owned(),
            Err(message) => {
                valid = false;
                let hint = did_you_mean(timezone.get_ref().trim(), &crate::schedule::zone_names());
                cx.error(
                    &timezone.span(),
                    t.key("timezone"),
                    format!("{message}{hint}"),
                );
            }
        }
    }
    let built = if valid {
        match crate::schedule::Schedule::new(&schedule.cron, &schedule.timezone) {
            Ok(built) => Some(built),
            Err(message) => {
                let at = t.get("cron").map_or_else(|| t.span.clone(), |c| c.span());
                cx.error(&at, t.key("cron"), message);
                None
            }
        }
    } else {
        None
    };
    if let Some(jitter) = t.duration_at_most(cx, "jitter", MAX_JITTER, JITTER_WHY) {
        // Jitter delays each run by up to its length: at least the gap between two runs, it
        // would push runs past the next one.
        let gap = built.as_ref().and_then(|b| shortest_gap(b, cx.now));
        match gap {
            Some(gap) if *jitter.get_ref() >= gap && !jitter.get_ref().is_zero() => {
                let message = format!(
                    "jitter ({}) must be shorter than the {} between runs of the schedule",
                    format_duration(*jitter.get_ref()),
                    format_duration(gap)
                );
                cx.error(&jitter.span(), t.key("jitter"), message);
            }
            _ => schedule.jitter = jitter.into_inner(),
        }
    }
    schedule
}

/// The shortest time between two of the schedule's next runs (over a sample of them).
fn shortest_gap(
    schedule: &crate::schedule::Schedule,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let runs = schedule.upcoming(now, 24);
    runs.windows(2)
        .filter_map(|w| (w[1] - w[0]).to_std().ok())
        .min()
}

pub(crate) fn defaults(cx: &mut Ctx<'_>, root: &Table<'_, '_>) -> Defaults {
    let mut defaults = Defaults {
        rotate_before: Duration::from_secs(14 * 86_400),
        lifetime: Lifetime::Days(90),
        grace: Duration::ZERO,
        concurrency: 4,
    };
    let Some(t) = root.table(cx, "defaults") else {
        return defaults;
    };
    t.check_keys(cx, &["rotate_before", "lifetime", "grace", "concurrency"]);
    let rotate_before = t.duration(cx, "rotate_before");
    let lifetime = t.lifetime(cx, "lifetime");
    if let Some(d) = &rotate_before {
        defaults.rotate_before = *d.get_ref();
    }
    if let Some(l) = &lifetime {
        defaults.lifetime = *l.get_ref();
    }
    if let Some(grace) = t.duration_at_most(cx, "grace", MAX_GRACE, GRACE_WHY) {
        defaults.grace = grace.into_inner();
    }
    if let Some(n) = t.integer(cx, "concurrency", 1..=64) {
        defaults.concurrency = usize::try_from(n).unwrap_or(defaults.concurrency);
    }
    check_rotate_before(
        cx,
        &t,
        rotate_before.as_ref().map(Spanned::span),
        lifetime.as_ref().map(Spanned::span),
        defaults.rotate_before,
        &defaults.lifetime,
    );
    defaults
}

/// The shortest `rotate_before`: a rotation needs a run of the schedule, and its destinations
/// time to answer, before the old token expires.
const MIN_ROTATE_BEFORE: Duration = Duration::from_secs(3600);

/// A token must be rotated before it expires: `rotate_before` shorter than a duration lifetime,
/// and a date lifetime further from the load time than `rotate_before`. Checked where `t` sets
/// `rotate_before` (at `rotate_before_at`) or `lifetime` (at `lifetime_at`); nothing when it
/// sets neither. A date in the past is reported where it is read.
pub(crate) fn check_rotate_before(
    cx: &mut Ctx<'_>,
    t: &Table<'_, '_>,
    rotate_before_at: Option<Span>,
    lifetime_at: Option<Span>,
    rotate_before: Duration,
    lifetime: &Lifetime,
) {
    let before = format_duration(rotate_before);
    if let Some(span) = &rotate_before_at
        && rotate_before < MIN_ROTATE_BEFORE
    {
        let message = format!(
            "rotate_before ({before}) leaves no time to rotate before the token expires: use at least 1h (a few days is usual)"
        );
        cx.error(span, t.key("rotate_before"), message);
        return;
    }
    if let Lifetime::Until(at) = lifetime {
        let Ok(left) = (*at - cx.now).to_std() else {
            return;
        };
        if left > rotate_before {
            return;
        }
        // The date is reported where it is written; a date inherited from [defaults] at the
        // `rotate_before` that brings it within reach.
        let (span, key, shown) = match (lifetime_at, rotate_before_at) {
            (Some(span), _) => (span, "lifetime", t.written("lifetime")),
            (None, Some(span)) => (span, "rotate_before", None),
            (None, None) => return,
        };
        let shown = shown.unwrap_or_else(|| lifetime.to_string());
        let message = format!(
            "lifetime {shown} is within rotate_before ({before}) from now: every run would rotate it"
        );
        cx.error(&span, t.key(key), message);
        return;
    }
    let Some(shortest) = lifetime.min_length() else {
        return;
    };
    let (span, key) = match (rotate_before_at, lifetime_at) {
        (Some(span), _) => (span, "rotate_before"),
        (None, Some(span)) => (span, "lifetime"),
        (None, None) => return,
    };
    if rotate_before >= shortest {
        let message = format!(
            "rotate_before ({before}) must be shorter than the lifetime ({lifetime}), or every new token is due at once",
        );
        cx.error(&span, t.key(key), message);
    }
}

pub(crate) fn state(cx: &mut Ctx<'_>, root: &Table<'_, '_>) -> StateSection {
    let Some(t) = root.table(cx, "state") else {
        return StateSection::default();
    };
    t.check_keys(cx, &["dir"]);
    let Some(dir) = t.text(cx, "dir") else {
        return StateSection::default();
    };
    // A relative path is taken from the policy file's folder (like `{ file = ... }`), never
    // from the working directory: two runs started from different folders must share one state.
    let path = state_dir(dir.get_ref(), cx.file);
    if let Ok(meta) = std::fs::metadata(&path)
        && !meta.is_dir()
    {
        let message = format!("{} exists but is not a directory", path.display());
        cx.error(&dir.span(), t.key("dir"), message);
    }
    StateSection { dir: Some(path) }
}

pub(crate) fn metrics(cx: &mut Ctx<'_>, root: &Table<'_, '_>) -> MetricsSection {
    let Some(t) = root.table(cx, "metrics") else {
        return MetricsSection::default();
    };
    t.check_keys(cx, &["listen"]);
    let listen = t.text(cx, "listen").filter(|listen| {
        let text = listen.get_ref();
        let ok = text.parse::<std::net::SocketAddr>().is_ok()
            || text
                .strip_prefix("localhost:")
                .is_some_and(|port| port.parse::<u16>().is_ok());
        if !ok {
            let message = "expected an IP address and a port, e.g. \"127.0.0.1:9464\", \"[::1]:9464\" or \"localhost:9464\"";
            cx.error(&listen.span(), t.key("listen"), message);
        }
        ok
    });
    MetricsSection {
        listen: listen.map(|l| l.into_inner()),
    }
}

/// `dir` as an absolute path; a relative one is resolved from the policy file's folder.
fn state_dir(dir: &str, policy_file: &std::path::Path) -> PathBuf {
    let raw = std::path::Path::new(dir);
    if raw.is_absolute() {
        return raw.to_path_buf();
    }
    let folder = policy_file.parent().unwrap_or(std::path::Path::new(""));
    let joined = folder.join(raw);
    std::path::absolute(&joined).unwrap_or(joined)
}
