//! `[[token]]` entries and their `[[token.vault]]` / `[[token.github]]` destinations.

use super::error::Span;
use super::model::*;
use super::notify::thresholds;
use super::reader::{Ctx, Table};
use super::sections::{GRACE_WHY, MAX_GRACE, check_rotate_before};

/// A token as read, with where its parts are, for the cross-token checks.
pub(crate) struct BuiltToken {
    pub policy: TokenPolicy,
    /// The `name` value, when valid.
    pub name_at: Option<Span>,
    /// Span and key path of each destination, parallel to `policy.vault` / `policy.github`.
    pub vault_at: Vec<(Span, String)>,
    pub github_at: Vec<(Span, String)>,
}

const TOKEN_KEYS: [&str; 8] = [
    "name",
    "description",
    "rotate_before",
    "lifetime",
    "grace",
    "thresholds",
    "vault",
    "github",
];

pub(crate) fn tokens(
    cx: &mut Ctx<'_>,
    root: &Table<'_, '_>,
    defaults: &Defaults,
) -> Vec<BuiltToken> {
    root.tables(cx, "token")
        .iter()
        .map(|t| token(cx, t, defaults))
        .collect()
}

fn token(cx: &mut Ctx<'_>, t: &Table<'_, '_>, defaults: &Defaults) -> BuiltToken {
    t.check_keys(cx, &TOKEN_KEYS);
    let name = t.required_text(cx, "name").filter(|n| {
        let problem = name_problem(n.get_ref());
        if let Some(problem) = problem {
            cx.error(&n.span(), t.key("name"), problem);
        }
        problem.is_none()
    });
    let description = t
        .text(cx, "description")
        .map_or_else(|| DEFAULT_DESCRIPTION.to_owned(), |d| d.into_inner());
    let rotate_before = t.duration(cx, "rotate_before");
    let lifetime = t.lifetime(cx, "lifetime");
    let grace = t.duration_at_most(cx, "grace", MAX_GRACE, GRACE_WHY);
    let mut policy = TokenPolicy {
        name: name
            .as_ref()
            .map(|n| n.get_ref().clone())
            .unwrap_or_default(),
        description,
        rotate_before: rotate_before
            .as_ref()
            .map_or(defaults.rotate_before, |d| *d.get_ref()),
        lifetime: lifetime
            .as_ref()
            .map_or(defaults.lifetime, |l| *l.get_ref()),
        grace: grace.map_or(defaults.grace, |g| g.into_inner()),
        thresholds: thresholds(cx, t),
        vault: Vec::new(),
        github: Vec::new(),
        line: cx.line_of(&t.span),
    };
    check_rotate_before(
        cx,
        t,
        rotate_before.map(|d| d.span()),
        lifetime.map(|l| l.span()),
        policy.rotate_before,
        &policy.lifetime,
    );
    let mut vault_at = Vec::new();
    // Every destination table is remembered, valid or not, so a missing [vault] or [github]
    // section is reported together with the destination's own problems.
    for d in t.tables(cx, "vault") {
        vault_at.push((d.span.clone(), d.path.clone()));
        if let Some(dest) = vault_destination(cx, &d) {
            policy.vault.push(dest);
        }
    }
    let mut github_at = Vec::new();
    for d in t.tables(cx, "github") {
        github_at.push((d.span.clone(), d.path.clone()));
        if let Some(dest) = github_destination(cx, &d) {
            policy.github.push(dest);
        }
    }
    BuiltToken {
        policy,
        name_at: name.map(|n| n.span()),
        vault_at,
        github_at,
    }
}

fn vault_destination(cx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Option<VaultDestination> {
    t.check_keys(cx, &["mount", "path", "key"]);
    let mount = t.path_segment(cx, "mount");
    if !t.has("path") {
        t.missing(cx, "path", "the secret's path under the mount");
    }
    let path = t.path_segment(cx, "path");
    let key = t.required_text(cx, "key").filter(|k| {
        // `#` separates path and key in destination names: `a#b` key `c` and `a` key `b#c`
        // would be one destination.
        let problem = if k.get_ref().contains('#') {
            Some("must not contain `#` (it separates the path from the key)")
        } else if k.get_ref().chars().any(char::is_control) {
            Some("must not contain control characters (a line break, a tab, NUL)")
        } else {
            None
        };
        if let Some(problem) = problem {
            cx.error(&k.span(), t.key("key"), problem);
        }
        problem.is_none()
    });
    if t.has("mount") && mount.is_none() {
        return None; // the bad mount is already reported
    }
    Some(VaultDestination {
        mount,
        path: path?,
        key: key?.into_inner(),
    })
}

const GITHUB_KEYS: [&str; 7] = [
    "repo",
    "environment",
    "org",
    "visibility",
    "repositories",
    "secret",
    "app",
];

fn github_destination(cx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Option<GithubDestination> {
    t.check_keys(cx, &GITHUB_KEYS);
    let secret = secret_name(cx, t);
    let app = match t.choice(cx, "app", &["actions", "dependabot"]) {
        Some(app) if *app.get_ref() == "dependabot" => Some(SecretApp::Dependabot),
        Some(_) => Some(SecretApp::Actions),
        None if t.has("app") => None,
        None => Some(SecretApp::Actions),
    };
    let target = match (t.has("repo"), t.has("org")) {
        (true, true) => {
            let message = "give either `repo` or `org`, not both";
            cx.error(&t.key_span("org"), t.key("org"), message);
            None
        }
        (false, false) => {
            t.missing(
                cx,
                "repo",
                "\"owner/name\", or `org` for an organization secret",
            );
            None
        }
        (true, false) => repo_target(cx, t, app),
        (false, true) => org_target(cx, t),
    };
    Some(GithubDestination {
        target: target?,
        secret: secret?,
        app: app?,
    })
}

fn repo_target(
    cx: &mut Ctx<'_>,
    t: &Table<'_, '_>,
    app: Option<SecretApp>,
) -> Option<GithubTarget> {
    for key in ["visibility", "repositories"] {
        if t.has(key) {
            let message = format!("`{key}` only applies to an organization secret (`org`)");
            cx.error(&t.key_span(key), t.key(key), message);
        }
    }
    let repo = t.text(cx, "repo")?;
    let parsed = repo.get_ref().split_once('/').filter(|(owner, name)| {
        is_github_name(owner) && is_github_name(name) && !name.contains('/')
    });
    let Some((owner, name)) = parsed else {
        let message = format!("expected \"owner/name\", found {:?}", repo.get_ref());
        cx.error(&repo.span(), t.key("repo"), message);
        return None;
    };
    let (owner, repo) = (owner.to_owned(), name.to_owned());
    let Some(environment) = t.text(cx, "environment") else {
        return (!t.has("environment")).then_some(GithubTarget::Repo { owner, repo });
    };
    if app == Some(SecretApp::Dependabot) {
        let message = "Dependabot secrets have no environments; remove `environment` or use app = \"actions\"";
        cx.error(&t.key_span("app"), t.key("app"), message);
        return None;
    }
    Some(GithubTarget::Environment {
        owner,
        repo,
        environment: environment.into_inner(),
    })
}

fn org_target(cx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Option<GithubTarget> {
    if t.has("environment") {
        let message = "`environment` only applies to a repository secret (`repo`)";
        cx.error(&t.key_span("environment"), t.key("environment"), message);
    }
    let org = t.text(cx, "org").filter(|org| {
        let ok = is_github_name(org.get_ref());
        if !ok {
            let message = format!("expected an organization name, found {:?}", org.get_ref());
            cx.error(&org.span(), t.key("org"), message);
        }
        ok
    });
    if !t.has("visibility") {
        t.missing(cx, "visibility", "\"all\", \"private\" or \"selected\"");
    }
    let visibility = t
        .choice(cx, "visibility", &["all", "private", "selected"])
        .map(|v| match *v.get_ref() {
            "all" => Visibility::All,
            "private" => Visibility::Private,
            _ => Visibility::Selected,
        });
    let repositories = match visibility {
        Some(Visibility::Selected) => selected_repositories(cx, t)?,
        Some(_) if t.has("repositories") => {
            let message = "`repositories` is only used with visibility = \"selected\"";
            cx.error(&t.key_span("repositories"), t.key("repositories"), message);
            return None;
        }
        _ => Vec::new(),
    };
    Some(GithubTarget::Org {
        org: org?.into_inner(),
        visibility: visibility?,
        repositories,
    })
}

fn selected_repositories(cx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Option<Vec<String>> {
    if !t.has("repositories") {
        t.missing(
            cx,
            "repositories",
            "visibility = \"selected\" needs repository names",
        );
        return None;
    }
    let items = t.strings(cx, "repositories")?;
    if items.is_empty() {
        let message = "must list at least one repository when visibility = \"selected\"";
        cx.error(&t.key_span("repositories"), t.key("repositories"), message);
        return None;
    }
    let mut names = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let name = item.get_ref();
        if is_github_name(name) {
            names.push(name.clone());
        } else {
            let message = format!(
                "expected a repository name of the organization (without owner), found {name:?}"
            );
            cx.error(
                &item.span(),
                format!("{}[{i}]", t.key("repositories")),
                message,
            );
        }
    }
    (names.len() == items.len()).then_some(names)
}

/// GitHub secret names: letters, digits and `_`; no leading digit; no `GITHUB_` prefix.
fn secret_name(cx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Option<String> {
    let secret = t.required_text(cx, "secret")?;
    let name = secret.get_ref();
    let problem = if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Some("may contain only letters, digits and `_`")
    } else if name.starts_with(|c: char| c.is_ascii_digit()) {
        Some("must not start with a digit")
    } else if name.to_ascii_uppercase().starts_with("GITHUB_") {
        Some("must not start with `GITHUB_` (reserved by GitHub)")
    } else {
        None
    };
    if let Some(problem) = problem {
        let message = format!("secret name {name:?} {problem}");
        cx.error(&secret.span(), t.key("secret"), message);
        return None;
    }
    Some(name.clone())
}

/// An owner, organization or repository name: letters, digits, `-`, `_`, `.`.
fn is_github_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Why `name` cannot be a token name: printed in summaries, logs and messages, it must not be
/// able to forge a line or hide what it says.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Some("is longer than 200 characters");
    }
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
    };
    name.chars()
        .any(hidden)
        .then_some("must not contain control, zero-width or text-direction characters")
}

const MAX_NAME_CHARS: usize = 200;
