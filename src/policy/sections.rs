//! The plain settings sections: `[schedule]`, `[defaults]`, `[state]` and `[metrics]`.

use std::path::PathBuf;
use std::time::Duration;

use super::duration::{Lifetime, format_duration};
use super::error::Span;
use super::model::*;
use super::reader::{Ctx, Table};
use super::suggest::did_you_mean;

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
    if valid
        && let Err(message) = crate::schedule::Schedule::new(&schedule.cron, &schedule.timezone)
    {
        let at = t.get("cron").map_or_else(|| t.span.clone(), |c| c.span());
        cx.error(&at, t.key("cron"), message);
    }
    if let Some(jitter) = t.duration(cx, "jitter") {
        schedule.jitter = jitter.into_inner();
    }
    schedule
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
    if let Some(grace) = t.duration(cx, "grace") {
        defaults.grace = grace.into_inner();
    }
    if let Some(n) = t.integer(cx, "concurrency", 1..=64) {
        defaults.concurrency = usize::try_from(n).unwrap_or(defaults.concurrency);
    }
    let at = match (rotate_before, lifetime) {
        (Some(d), _) => Some((d.span(), "rotate_before")),
        (None, Some(l)) => Some((l.span(), "lifetime")),
        (None, None) => None,
    };
    if let Some((at, key)) = at {
        check_rotate_before(
            cx,
            &at,
            &t.key(key),
            defaults.rotate_before,
            &defaults.lifetime,
        );
    }
    defaults
}

/// A token must be rotated before it expires: `rotate_before` shorter than the lifetime.
pub(crate) fn check_rotate_before(
    cx: &mut Ctx<'_>,
    at: &Span,
    key: &str,
    rotate_before: Duration,
    lifetime: &Lifetime,
) {
    let Some(shortest) = lifetime.min_length() else {
        return;
    };
    if rotate_before >= shortest {
        let message = format!(
            "rotate_before ({}) must be shorter than the lifetime ({lifetime}), or every new token is due at once",
            format_duration(rotate_before),
        );
        cx.error(at, key, message);
    }
}

pub(crate) fn state(cx: &mut Ctx<'_>, root: &Table<'_, '_>) -> StateSection {
    let Some(t) = root.table(cx, "state") else {
        return StateSection::default();
    };
    t.check_keys(cx, &["dir"]);
    StateSection {
        dir: t.text(cx, "dir").map(|d| PathBuf::from(d.into_inner())),
    }
}

pub(crate) fn metrics(cx: &mut Ctx<'_>, root: &Table<'_, '_>) -> MetricsSection {
    let Some(t) = root.table(cx, "metrics") else {
        return MetricsSection::default();
    };
    t.check_keys(cx, &["listen"]);
    let listen = t.text(cx, "listen").filter(|listen| {
        let port = listen
            .get_ref()
            .rsplit_once(':')
            .map(|(_, port)| port.parse::<u16>());
        let ok = matches!(port, Some(Ok(_)));
        if !ok {
            let message = "expected \"<host>:<port>\", e.g. \"127.0.0.1:9184\"";
            cx.error(&listen.span(), t.key("listen"), message);
        }
        ok
    });
    MetricsSection {
        listen: listen.map(|l| l.into_inner()),
    }
}
