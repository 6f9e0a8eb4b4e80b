//! Checks across tokens and sections: unique names and destinations, and that every
//! destination kind has its service section.

use std::collections::HashMap;

use super::error::Span;
use super::model::{GithubDestination, GithubTarget, VaultSection};
use super::reader::{Ctx, Table};
use super::secret_ref::SecretRef;
use super::tokens::BuiltToken;

pub(crate) fn unique_names(cx: &mut Ctx<'_>, tokens: &[BuiltToken]) {
    // Where each name was first seen; its line is only worked out for a message (counting
    // lines for every token would make a large policy quadratic).
    let mut first: HashMap<&str, &Span> = HashMap::new();
    for (i, token) in tokens.iter().enumerate() {
        let Some(at) = &token.name_at else { continue };
        let name = token.policy.name.as_str();
        match first.get(name) {
            Some(first_at) => {
                let first_line = cx.line_of(first_at);
                let message =
                    format!("duplicate token name `{name}` (first defined at line {first_line})");
                cx.error(at, format!("token[{i}].name"), message);
            }
            None => {
                first.insert(name, at);
            }
        }
    }
}

/// No two destinations (of any tokens) may write the same place.
pub(crate) fn unique_destinations(
    cx: &mut Ctx<'_>,
    tokens: &[BuiltToken],
    vault: Option<&VaultSection>,
) {
    let default_mount = vault.map_or("secret", |v| v.mount.as_str());
    let mut seen: HashMap<String, (Span, &str)> = HashMap::new();
    for token in tokens {
        let places = token
            .policy
            .vault
            .iter()
            .zip(&token.vault_at)
            .map(|(d, at)| {
                let mount = d.mount.as_deref().unwrap_or(default_mount);
                let place = format!("Vault secret `{mount}/{}` key `{}`", d.path, d.key);
                (place, at)
            });
        let github = token.policy.github.iter().zip(&token.github_at);
        let places = places.chain(github.map(|(d, at)| (github_place(d), at)));
        for (place, (span, key)) in places.collect::<Vec<_>>() {
            duplicate_check(cx, &mut seen, place, span, key, &token.policy.name);
        }
    }
}

fn duplicate_check<'t>(
    cx: &mut Ctx<'_>,
    seen: &mut HashMap<String, (Span, &'t str)>,
    place: String,
    span: &Span,
    key: &str,
    token: &'t str,
) {
    // GitHub owner, repository and secret names are case-insensitive; Vault paths are not.
    let identity = if place.starts_with("GitHub") {
        place.to_lowercase()
    } else {
        place.clone()
    };
    if let Some((first_at, first_token)) = seen.get(&identity) {
        let line = cx.line_of(first_at);
        let message = format!(
            "duplicate destination: {place} is already written by token `{first_token}` (line {line})"
        );
        cx.error(span, key, message);
    } else {
        seen.insert(identity, (span.clone(), token));
    }
}

fn github_place(d: &GithubDestination) -> String {
    let store = match d.app {
        super::model::SecretApp::Actions => "Actions",
        super::model::SecretApp::Dependabot => "Dependabot",
    };
    let scope = match &d.target {
        GithubTarget::Repo { owner, repo } => format!("repository {owner}/{repo}"),
        GithubTarget::Environment {
            owner,
            repo,
            environment,
        } => format!("environment {environment} of {owner}/{repo}"),
        GithubTarget::Org { org, .. } => format!("organization {org}"),
    };
    format!(
        "GitHub {store} secret `{}` of {scope}",
        d.secret.to_ascii_uppercase()
    )
}

/// Destinations and `vault` references need their service section to exist.
pub(crate) fn sections_present(cx: &mut Ctx<'_>, root: &Table<'_, '_>, tokens: &[BuiltToken]) {
    if !root.has("vault") {
        for (span, key) in tokens.iter().flat_map(|t| &t.vault_at) {
            cx.error(
                span,
                key.clone(),
                "a Vault destination needs a [vault] section",
            );
        }
        let vault_refs: Vec<_> = cx
            .secret_refs
            .iter()
            .filter(|(r, _)| matches!(r.get_ref(), SecretRef::Vault { .. }))
            .map(|(r, key)| (r.span(), key.clone()))
            .collect();
        for (span, key) in vault_refs {
            cx.error(&span, key, "a `vault` reference needs a [vault] section");
        }
    }
    if !root.has("github") {
        for (span, key) in tokens.iter().flat_map(|t| &t.github_at) {
            cx.error(
                span,
                key.clone(),
                "a GitHub destination needs a [github] section",
            );
        }
    }
}
