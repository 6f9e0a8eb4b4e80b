//! Loading policies: the shipped example, and the exact text of each kind of problem.

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use eci_secret_sync::policy::{
    self, GithubAuth, GithubTarget, Lifetime, Policy, SecretApp, SecretRef, VaultAuth, Visibility,
    Watch,
};

const ECI_VALUE: &str = "u_Zb0eS2Orcu9Pv8EBfdf9D9aQiANHnqCsNt_Hy3TBIA";

/// Sets, once per test process and before any test reads them, the variables the policies
/// below refer to. `POLICY_TEST_UNSET` is never set; `POLICY_TEST_EMPTY` is empty.
#[allow(unsafe_code)]
fn setup_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let vars = [
            ("ECI_ACCESS_TOKEN", ECI_VALUE),
            ("VAULT_TOKEN", "hvs.example"),
            ("GITHUB_TOKEN", "ghp_example"),
            (
                "SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T0/B0/x",
            ),
            ("POLICY_TEST_ECI", ECI_VALUE),
            ("POLICY_TEST_VAULT", "hvs.example"),
            ("POLICY_TEST_GITHUB", "ghp_example"),
            ("POLICY_TEST_EMPTY", ""),
            (
                "POLICY_TEST_NEWLINE",
                "u_Zb0eS2Orcu9Pv8EBfdf9D9aQiANHnqCsNt_Hy3TBIA\r\n",
            ),
            ("POLICY_TEST_BLANK", " \n"),
            ("POLICY_TEST_TWO_LINES", "ghp_x\ny"),
        ];
        for (name, value) in vars {
            // SAFETY: runs exactly once, inside `Once`, before any test of this binary reads
            // the environment (every test calls `setup_env` first); nothing else in these
            // tests reads the environment from C code.
            unsafe { std::env::set_var(name, value) };
        }
        // SAFETY: as above. Relative file references are looked up next to the policy only.
        unsafe { std::env::remove_var("CREDENTIALS_DIRECTORY") };
    });
}

fn parse(source: &str) -> Result<Policy, Vec<String>> {
    setup_env();
    policy::parse(source, Path::new("policy.toml"))
        .map_err(|errors| errors.iter().map(ToString::to_string).collect())
}

fn errors(source: &str) -> Vec<String> {
    match parse(source) {
        Ok(_) => vec!["<loaded without errors>".to_owned()],
        Err(errors) => errors,
    }
}

const ECI: &str = "[eci]\ntoken = { env = \"POLICY_TEST_ECI\" }\n";

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml")
}

#[test]
fn the_example_loads() {
    setup_env();
    let policy = match policy::load(&example_path()) {
        Ok(policy) => policy,
        Err(errors) => panic!("config.example.toml:\n{errors}"),
    };
    assert_eq!(policy.eci.endpoint, "https://portal.elice.cloud/api");
    assert_eq!(policy.eci.token, SecretRef::Env("ECI_ACCESS_TOKEN".into()));
    let vault = policy.vault.as_ref().map(|v| (&v.auth, v.mount.as_str()));
    let token_auth = VaultAuth::Token {
        token: SecretRef::Env("VAULT_TOKEN".into()),
    };
    assert_eq!(vault, Some((&token_auth, "secret")));
    let github = policy
        .github
        .as_ref()
        .map(|g| (&g.auth, g.api_url.as_str()));
    let github_auth = GithubAuth::Token(SecretRef::Env("GITHUB_TOKEN".into()));
    assert_eq!(github, Some((&github_auth, "https://api.github.com")));
    assert_eq!(policy.schedule.cron, "*/30 * * * *");
    assert_eq!(policy.defaults.concurrency, 4);
    assert_eq!(policy.notify.watch, Watch::Policy);
    assert_eq!(policy.notify.channels.len(), 1);
    let days = |d: u64| Duration::from_secs(d * 86_400);
    assert_eq!(
        policy.notify.thresholds,
        vec![days(30), days(14), days(7), days(1)]
    );
    assert_eq!(policy.metrics.listen, None);

    let names: Vec<&str> = policy.tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["ci-deploy", "dependabot-registry"]);
    let deploy = &policy.tokens[0];
    assert_eq!(deploy.rotate_before, days(21));
    assert_eq!(deploy.lifetime, Lifetime::Days(90));
    assert_eq!(deploy.vault.len(), 1);
    assert_eq!(deploy.github.len(), 3);
    assert!(matches!(
        deploy.github[1].target,
        GithubTarget::Environment { .. }
    ));
    let org = GithubTarget::Org {
        org: "acme".into(),
        visibility: Visibility::Selected,
        repositories: vec!["web".into(), "api".into()],
    };
    assert_eq!(deploy.github[2].target, org);
    let registry = &policy.tokens[1];
    assert_eq!(registry.lifetime, Lifetime::Months(6));
    assert_eq!(registry.rotate_before, days(14), "from [defaults]");
    assert_eq!(
        registry.description,
        "private registry access for Dependabot"
    );
    assert_eq!(registry.github[0].app, SecretApp::Dependabot);
}

#[test]
fn defaults_fill_in_a_minimal_policy() {
    let policy = match parse(&format!("{ECI}[[token]]\nname = \"watched\"\n")) {
        Ok(policy) => policy,
        Err(errors) => panic!("{errors:?}"),
    };
    assert!(policy.vault.is_none() && policy.github.is_none());
    let token = &policy.tokens[0];
    assert_eq!(token.description, "managed by eci-secret-sync");
    assert_eq!(token.rotate_before, Duration::from_secs(14 * 86_400));
    assert_eq!(token.lifetime, Lifetime::Days(90));
    assert_eq!(token.grace, Duration::ZERO);
    assert_eq!(token.line, 3);
    assert_eq!(policy.eci.timeout, Duration::from_secs(30));
}

#[test]
fn eci_section_is_required() {
    assert_eq!(
        errors(""),
        ["policy.toml:1:1: eci: missing required section [eci]"]
    );
}

#[test]
fn bad_toml() {
    let source = "[eci\ntoken = { env = \"POLICY_TEST_ECI\" }\n";
    assert_eq!(
        errors(source),
        ["policy.toml:1:5: unclosed table, expected `]`"]
    );
}

#[test]
fn every_syntax_error_is_reported() {
    let source = "[eci]\ntoken = \nendpoint = https://x\n[[token]]\nname = \"a\"\nname = \"b\"\n";
    assert_eq!(
        errors(source),
        [
            "policy.toml:2:9: string values must be quoted, expected literal string",
            "policy.toml:3:12: string values must be quoted, expected literal string",
            "policy.toml:6:1: duplicate key `name`",
        ]
    );
}

#[test]
fn unknown_key_with_suggestion() {
    let source = "[eci]\ntokn = { env = \"POLICY_TEST_ECI\" }\n";
    assert_eq!(
        errors(source),
        [
            "policy.toml:1:1: eci.token: missing required key ({ env = \"...\" } or { file = \"...\" })",
            "policy.toml:2:1: eci.tokn: unknown key `tokn`; did you mean `token`?",
        ]
    );
}

#[test]
fn unknown_section_with_suggestion() {
    let source = format!("{ECI}[shedule]\ncron = \"0 * * * *\"\n");
    assert_eq!(
        errors(&source),
        ["policy.toml:3:2: shedule: unknown key `shedule`; did you mean `schedule`?"]
    );
}

#[test]
fn wrong_type() {
    let source = format!("{ECI}timeout = 30\n");
    assert_eq!(
        errors(&source),
        ["policy.toml:3:11: eci.timeout: expected a string, found an integer"]
    );
}

#[test]
fn bad_duration() {
    let source = format!("{ECI}[[token]]\nname = \"a\"\nrotate_before = \"2 weeks\"\n");
    assert_eq!(
        errors(&source),
        [
            "policy.toml:5:17: token[0].rotate_before: invalid duration \"2 weeks\"; \
             use a number followed by ms, s, m, h, d or w, e.g. \"30m\", \"12h\", \"14d\""
        ]
    );
}

#[test]
fn bad_lifetime() {
    let source = format!("{ECI}[defaults]\nlifetime = \"25mo\"\n");
    assert_eq!(
        errors(&source),
        ["policy.toml:4:12: defaults.lifetime: lifetime \"25mo\" is out of range; use 1mo to 24mo"]
    );
}

#[test]
fn literal_secret_is_refused_without_echoing_it() {
    let source = format!("[eci]\ntoken = \"{ECI_VALUE}\"\n");
    let found = errors(&source);
    assert_eq!(
        found,
        [
            "policy.toml:2:9: eci.token: literal secret values are not allowed; \
             use { env = \"...\" } or { file = \"...\" }"
        ]
    );
    assert!(!found.concat().contains(ECI_VALUE));
    assert!(!found.concat().contains("u_Zb0e"));
}

#[test]
fn literal_github_token_is_refused() {
    let source = format!("{ECI}[github]\ntoken = \"ghp_0123456789abcdef\"\n");
    let found = errors(&source);
    assert_eq!(
        found,
        [
            "policy.toml:4:9: github.token: literal secret values are not allowed; \
             use { env = \"...\" } or { file = \"...\" }"
        ]
    );
    assert!(!found.concat().contains("ghp_0123"));
}

#[test]
fn missing_and_empty_env_vars() {
    let source = "[eci]\ntoken = { env = \"POLICY_TEST_UNSET\" }\n\
                  [github]\ntoken = { env = \"POLICY_TEST_EMPTY\" }\n";
    assert_eq!(
        errors(source),
        [
            "policy.toml:2:9: eci.token: environment variable `POLICY_TEST_UNSET` is not set",
            "policy.toml:4:9: github.token: environment variable `POLICY_TEST_EMPTY` is empty",
        ]
    );
}

#[test]
fn duplicate_token_names() {
    let source = format!("{ECI}[[token]]\nname = \"a\"\n[[token]]\nname = \"a\"\n");
    assert_eq!(
        errors(&source),
        ["policy.toml:6:8: token[1].name: duplicate token name `a` (first defined at line 4)"]
    );
}

#[test]
fn duplicate_destinations() {
    let source = format!(
        "{ECI}[vault]
address = \"https://vault.example.com\"
auth = {{ method = \"token\", token = {{ env = \"POLICY_TEST_VAULT\" }} }}
[github]
token = {{ env = \"POLICY_TEST_GITHUB\" }}
[[token]]
name = \"a\"
[[token.vault]]
path = \"ci/a\"
key = \"TOKEN\"
[[token.github]]
repo = \"acme/web\"
secret = \"ECI_TOKEN\"
[[token]]
name = \"b\"
[[token.vault]]
mount = \"secret\"
path = \"ci/a\"
key = \"TOKEN\"
[[token.github]]
repo = \"Acme/Web\"
secret = \"eci_token\"
[[token.github]]
repo = \"acme/web\"
secret = \"ECI_TOKEN\"
app = \"dependabot\"
"
    );
    assert_eq!(
        errors(&source),
        [
            "policy.toml:18:1: token[1].vault[0]: duplicate destination: Vault secret \
             `secret/ci/a` key `TOKEN` is already written by token `a` (line 10)",
            "policy.toml:22:1: token[1].github[0]: duplicate destination: GitHub Actions secret \
             `ECI_TOKEN` of repository Acme/Web is already written by token `a` (line 13)",
        ]
    );
}

fn github_policy(destination: &str) -> String {
    format!(
        "{ECI}[github]\ntoken = {{ env = \"POLICY_TEST_GITHUB\" }}\n[[token]]\nname = \"a\"\n\
         [[token.github]]\n{destination}"
    )
}

#[test]
fn org_without_visibility() {
    let source = github_policy("org = \"acme\"\nsecret = \"ECI_TOKEN\"\n");
    assert_eq!(
        errors(&source),
        [
            "policy.toml:7:1: token[0].github[0].visibility: missing required key \
             (\"all\", \"private\" or \"selected\")"
        ]
    );
}

#[test]
fn selected_without_repositories() {
    let source =
        github_policy("org = \"acme\"\nsecret = \"ECI_TOKEN\"\nvisibility = \"selected\"\n");
    assert_eq!(
        errors(&source),
        [
            "policy.toml:7:1: token[0].github[0].repositories: missing required key \
             (visibility = \"selected\" needs repository names)"
        ]
    );
    let empty = github_policy(
        "org = \"acme\"\nsecret = \"ECI_TOKEN\"\nvisibility = \"selected\"\nrepositories = []\n",
    );
    assert_eq!(
        errors(&empty),
        [
            "policy.toml:11:1: token[0].github[0].repositories: must list at least one \
             repository when visibility = \"selected\""
        ]
    );
}

#[test]
fn github_destination_rules() {
    let cases = [
        (
            "repo = \"acme/web\"\norg = \"acme\"\nsecret = \"X\"\n",
            "policy.toml:9:1: token[0].github[0].org: give either `repo` or `org`, not both",
        ),
        (
            "repo = \"acme\"\nsecret = \"X\"\n",
            "policy.toml:8:8: token[0].github[0].repo: expected \"owner/name\", found \"acme\"",
        ),
        (
            "repo = \"acme/web\"\nsecret = \"GITHUB_TOKEN\"\n",
            "policy.toml:9:10: token[0].github[0].secret: secret name \"GITHUB_TOKEN\" must not \
             start with `GITHUB_` (reserved by GitHub)",
        ),
        (
            "repo = \"acme/web\"\nsecret = \"1X\"\n",
            "policy.toml:9:10: token[0].github[0].secret: secret name \"1X\" must not start \
             with a digit",
        ),
        (
            "repo = \"acme/web\"\nsecret = \"A-B\"\n",
            "policy.toml:9:10: token[0].github[0].secret: secret name \"A-B\" may contain only \
             letters, digits and `_`",
        ),
        (
            "repo = \"acme/web\"\nenvironment = \"prod\"\nsecret = \"X\"\napp = \"dependabot\"\n",
            "policy.toml:11:1: token[0].github[0].app: Dependabot secrets have no environments; \
             remove `environment` or use app = \"actions\"",
        ),
        (
            "org = \"acme\"\nenvironment = \"prod\"\nsecret = \"X\"\nvisibility = \"all\"\n",
            "policy.toml:9:1: token[0].github[0].environment: `environment` only applies to a \
             repository secret (`repo`)",
        ),
        (
            "org = \"acme\"\nsecret = \"X\"\nvisibility = \"private\"\nrepositories = [\"web\"]\n",
            "policy.toml:11:1: token[0].github[0].repositories: `repositories` is only used with \
             visibility = \"selected\"",
        ),
        (
            "org = \"acme\"\nsecret = \"X\"\nvisibility = \"public\"\n",
            "policy.toml:10:14: token[0].github[0].visibility: expected one of \"all\", \
             \"private\", \"selected\", found \"public\"",
        ),
        (
            "repo = \"acme/web\"\nsecret = \"X\"\nvisibility = \"all\"\n",
            "policy.toml:10:1: token[0].github[0].visibility: `visibility` only applies to an \
             organization secret (`org`)",
        ),
    ];
    for (destination, expected) in cases {
        assert_eq!(
            errors(&github_policy(destination)),
            [expected],
            "{destination}"
        );
    }
}

#[test]
fn destinations_need_their_section() {
    let source = format!(
        "{ECI}[[token]]\nname = \"a\"\n[[token.vault]]\npath = \"p\"\nkey = \"k\"\n\
         [[token.github]]\nrepo = \"acme/web\"\nsecret = \"X\"\n"
    );
    assert_eq!(
        errors(&source),
        [
            "policy.toml:5:1: token[0].vault[0]: a Vault destination needs a [vault] section",
            "policy.toml:8:1: token[0].github[0]: a GitHub destination needs a [github] section",
        ]
    );
}

#[test]
fn plain_http_only_to_loopback() {
    let insecure = "[eci]\nendpoint = \"http://portal.example.com/api\"\n\
                    token = { env = \"POLICY_TEST_ECI\" }\n";
    assert_eq!(
        errors(insecure),
        [
            "policy.toml:2:12: eci.endpoint: plain http:// is only allowed to a loopback \
             address; use https:// or set `allow_insecure_http = true` in [eci]"
        ]
    );
    let loopback = "[eci]\nendpoint = \"http://127.0.0.1:8080/api/\"\n\
                    token = { env = \"POLICY_TEST_ECI\" }\n";
    let endpoint = parse(loopback).map(|p| p.eci.endpoint);
    assert_eq!(endpoint, Ok("http://127.0.0.1:8080/api".to_owned()));
    let allowed = "[eci]\nendpoint = \"http://eci.internal/api\"\nallow_insecure_http = true\n\
                   token = { env = \"POLICY_TEST_ECI\" }\n";
    assert!(parse(allowed).is_ok());
}

#[test]
fn many_problems_are_reported_together() {
    let source = "\
[eci]
endpoint = \"ftp://x\"
token = \"u_literal\"

[schedule]
cron = \"* * *\"

[defaults]
concurrency = 100
grace = \"-1h\"

[notify]
watch = \"everything\"

  [[notify.channel]]
  kind = \"webhook\"
  url = { env = \"POLICY_TEST_ECI\" }

[[token]]
description = \"no name\"
lifetime = \"1y\"
";
    assert_eq!(
        errors(source),
        [
            "policy.toml:2:12: eci.endpoint: expected an http:// or https:// URL",
            "policy.toml:3:9: eci.token: literal secret values are not allowed; \
             use { env = \"...\" } or { file = \"...\" }",
            "policy.toml:6:8: schedule.cron: expected 5 fields (minute hour day-of-month month \
             day-of-week) or 6 (seconds first), found 3",
            "policy.toml:9:15: defaults.concurrency: must be between 1 and 64, found 100",
            "policy.toml:10:9: defaults.grace: negative duration \"-1h\" is not allowed",
            "policy.toml:13:9: notify.watch: expected one of \"policy\", \"all\", found \"everything\"",
            "policy.toml:15:3: notify.channel[0].secret: missing required key \
             ({ env = \"...\" } or { file = \"...\" })",
            "policy.toml:19:1: token[0].name: missing required key",
            "policy.toml:21:12: token[0].lifetime: invalid lifetime \"1y\"; use \"30d\", \"90d\", \
             \"6mo\", \"12mo\", any \"<n>d\", \"<n>w\" or \"<n>mo\", or a date such as \"2027-06-30\"",
        ]
    );
}

#[test]
fn file_references_resolve_next_to_the_policy() {
    setup_env();
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("tempdir: {e}"),
    };
    let policy_path = dir.path().join("policy.toml");
    let text = "[eci]\ntoken = { file = \"creds/eci\" }\n\
                [github]\ntoken = { file = \"missing\" }\n";
    let write = std::fs::write(&policy_path, text)
        .and_then(|()| std::fs::create_dir(dir.path().join("creds")))
        .and_then(|()| std::fs::write(dir.path().join("creds/eci"), format!("{ECI_VALUE}\n")));
    assert!(write.is_ok());
    let found: Vec<String> = match policy::load(&policy_path) {
        Ok(_) => vec![],
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    };
    let shown = policy_path.display();
    let missing = dir.path().join("missing");
    assert_eq!(
        found,
        [format!(
            "{shown}:4:9: github.token: cannot read file `missing`: not in \
             $CREDENTIALS_DIRECTORY (not set) nor at {}",
            missing.display()
        )]
    );
    let eci = policy::parse("[eci]\ntoken = { file = \"creds/eci\" }\n", &policy_path);
    let token = eci.map(|p| p.eci.token);
    assert_eq!(token, Ok(SecretRef::File(dir.path().join("creds/eci"))));
    let value = SecretRef::File(dir.path().join("creds/eci")).resolve();
    assert_eq!(
        value.map(|v| v.expose().to_owned()),
        Ok(ECI_VALUE.to_owned())
    );
}

#[test]
fn vault_references_only_for_the_eci_token() {
    let source = "[eci]\ntoken = { vault = \"secret/eci#token\" }\n\
                  [vault]\naddress = \"https://v.example.com\"\n\
                  auth = { method = \"token\", token = { vault = \"secret/x#y\" } }\n";
    assert_eq!(
        errors(source),
        [
            "policy.toml:5:38: vault.auth.token.vault: a `vault` reference is only allowed for \
             `[eci] token`; use `env` or `file`"
        ]
    );
    let ok = "[eci]\ntoken = { vault = \"secret/eci#token\" }\n\
              [vault]\naddress = \"https://v.example.com\"\n\
              auth = { method = \"approle\", role_id = { env = \"POLICY_TEST_VAULT\" }, \
              secret_id = { env = \"POLICY_TEST_VAULT\" } }\n";
    let policy = parse(ok);
    let token = policy.as_ref().map(|p| p.eci.token.describe());
    assert_eq!(token, Ok("vault secret/eci#token".to_owned()));
    let mount = policy.map(|p| match p.vault.map(|v| v.auth) {
        Some(VaultAuth::AppRole { mount, .. }) => mount,
        _ => String::new(),
    });
    assert_eq!(mount, Ok("approle".to_owned()));
}

#[test]
fn unreadable_policy_file() {
    setup_env();
    let found = policy::load(Path::new("/nonexistent/policy.toml")).map_err(|e| e.to_string());
    assert_eq!(
        found.err().as_deref(),
        Some(
            "/nonexistent/policy.toml: cannot read policy file: no such file \
             (name the policy with --config PATH or ECI_SECRET_SYNC_CONFIG; config.example.toml is a start)"
        )
    );
}

#[test]
fn a_policy_that_is_not_a_small_regular_file_is_refused_without_reading_it() {
    setup_env();
    let dir = tempdir();
    let fifo = dir.path().join("fifo.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let big = dir.path().join("big.toml");
    std::fs::write(&big, "#".repeat(1024 * 1024 + 1)).expect("write");
    for (path, want) in [
        (fifo.as_path(), "policy file is not a regular file (a FIFO)"),
        (
            Path::new("/dev/zero"),
            "policy file is not a regular file (a character device)",
        ),
        (
            dir.path(),
            "policy file is not a regular file (a directory)",
        ),
        (big.as_path(), "policy file is larger than 1 MiB"),
    ] {
        let found = policy::load(path).map_err(|e| e.to_string());
        assert_eq!(
            found.err(),
            Some(format!("{}: {want}", path.display())),
            "{}",
            path.display()
        );
    }
}

#[test]
fn email_channel_addresses_and_clear_text_smtp() {
    let source = format!(
        "{ECI}[notify]\n\n[[notify.channel]]\nkind = \"email\"\nsmtp_host = \"smtp.example.com\"\nsmtp_tls = \"none\"\nfrom = \"not an address\"\nto = [\"ops@example.com\", \"nobody\"]\n"
    );
    let errs = errors(&source);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs[0].starts_with("policy.toml:8:1: notify.channel[0].smtp_tls: smtp_tls = \"none\" sends credentials and mail in clear text"), "{errs:#?}");
    assert!(
        errs[1].starts_with(
            "policy.toml:9:8: notify.channel[0].from: \"not an address\" is not an email address"
        ),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with(
            "policy.toml:10:26: notify.channel[0].to[1]: \"nobody\" is not an email address"
        ),
        "{errs:#?}"
    );
    // Loopback may go without TLS.
    let local = source
        .replace("smtp.example.com", "127.0.0.1")
        .replace("not an address", "eci-secret-sync@example.com")
        .replace(", \"nobody\"", "");
    assert!(parse(&local).is_ok(), "{:?}", parse(&local).err());
}

fn tempdir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("tempdir: {e}"),
    }
}

/// A UTC date `days` from today, as a policy writes it.
fn date_in(days: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Days::new(days.unsigned_abs()))
        .format("%Y-%m-%d")
        .to_string()
}

#[test]
fn a_date_lifetime_in_the_past_is_refused() {
    let source = format!("{ECI}[defaults]\nlifetime = 2020-01-01\n");
    assert_eq!(
        errors(&source),
        ["policy.toml:4:12: defaults.lifetime: lifetime 2020-01-01 is in the past"]
    );
    let source =
        format!("{ECI}[[token]]\nname = \"a\"\nlifetime = \"2020-01-01T09:00:00+09:00\"\n");
    assert_eq!(
        errors(&source),
        [
            "policy.toml:5:12: token[0].lifetime: lifetime 2020-01-01T09:00:00+09:00 is in the \
             past"
        ]
    );
}

#[test]
fn a_date_lifetime_within_rotate_before_is_refused() {
    // Midnight UTC 14 days from today is at most 14d (the default rotate_before) away.
    let near = date_in(14);
    let source = format!("{ECI}[[token]]\nname = \"a\"\nlifetime = {near}\n");
    assert_eq!(
        errors(&source),
        [format!(
            "policy.toml:5:12: token[0].lifetime: lifetime {near} is within rotate_before (14d) \
             from now: every run would rotate it"
        )]
    );
    let source = format!("{ECI}[defaults]\nrotate_before = \"30d\"\nlifetime = \"{near}\"\n");
    assert_eq!(
        errors(&source),
        [format!(
            "policy.toml:5:12: defaults.lifetime: lifetime {near} is within rotate_before (30d) \
             from now: every run would rotate it"
        )]
    );
    // A date from [defaults] brought within reach by a token's own rotate_before.
    let later = date_in(40);
    let source = format!(
        "{ECI}[defaults]\nlifetime = {later}\n[[token]]\nname = \"a\"\nrotate_before = \"60d\"\n"
    );
    assert_eq!(
        errors(&source),
        [format!(
            "policy.toml:7:17: token[0].rotate_before: lifetime {later}T00:00:00Z is within \
             rotate_before (60d) from now: every run would rotate it"
        )]
    );
    // More than rotate_before away: accepted.
    let source = format!("{ECI}[[token]]\nname = \"a\"\nlifetime = {}\n", date_in(15));
    assert!(parse(&source).is_ok(), "{:?}", parse(&source).err());
}

#[test]
fn jitter_and_grace_have_upper_bounds() {
    let source = format!("{ECI}[schedule]\njitter = \"61m\"\n");
    assert_eq!(
        errors(&source),
        [
            "policy.toml:4:10: schedule.jitter: must be at most 1h: jitter delays each run by \
             up to this long"
        ]
    );
    let source =
        format!("{ECI}[defaults]\ngrace = \"31d\"\n[[token]]\nname = \"a\"\ngrace = \"5w\"\n");
    let why = "the replaced token stays valid, and its rotation open, this long after the switch";
    assert_eq!(
        errors(&source),
        [
            format!("policy.toml:4:9: defaults.grace: must be at most 30d: {why}"),
            format!("policy.toml:7:9: token[0].grace: must be at most 30d: {why}"),
        ]
    );
    let source = format!(
        "{ECI}[schedule]\ncron = \"0 */2 * * *\"\njitter = \"1h\"\n[defaults]\ngrace = \"30d\"\nlifetime = \"90d\"\n"
    );
    assert!(parse(&source).is_ok(), "{:?}", parse(&source).err());
}

#[test]
fn state_dir_must_not_be_a_file() {
    let dir = tempdir();
    let file = dir.path().join("state");
    assert!(std::fs::write(&file, "").is_ok());
    let source = format!("{ECI}[state]\ndir = \"{}\"\n", file.display());
    assert_eq!(
        errors(&source),
        [format!(
            "policy.toml:4:7: state.dir: {} exists but is not a directory",
            file.display()
        )]
    );
    // An existing folder, or one still to be created, is fine.
    for ok in [dir.path().to_path_buf(), dir.path().join("later")] {
        let source = format!("{ECI}[state]\ndir = \"{}\"\n", ok.display());
        let loaded = parse(&source).map(|p| p.state.dir);
        assert_eq!(loaded, Ok(Some(ok)));
    }
}

/// Errors of a policy at `dir/policy.toml` whose `[eci] token` is `{ file = "<reference>" }`.
fn file_ref_errors(dir: &Path, reference: &str) -> Vec<String> {
    setup_env();
    let policy_path = dir.join("policy.toml");
    let source = format!("[eci]\ntoken = {{ file = \"{reference}\" }}\n");
    match policy::parse(&source, &policy_path) {
        Ok(_) => vec!["<loaded without errors>".to_owned()],
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn file_references_must_be_small_regular_files() {
    let dir = tempdir();
    let shown = dir.path().join("policy.toml").display().to_string();
    assert_eq!(
        file_ref_errors(dir.path(), "/dev/zero"),
        [format!(
            "{shown}:2:9: eci.token: credential file `/dev/zero` is not a regular file \
             (a character device)"
        )]
    );
    let fifo = dir.path().join("fifo");
    let made = rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from(0o600));
    assert!(made.is_ok(), "mkfifo: {made:?}");
    assert_eq!(
        file_ref_errors(dir.path(), "fifo"),
        [format!(
            "{shown}:2:9: eci.token: credential file `{}` is not a regular file (a FIFO)",
            fifo.display()
        )]
    );
    let big = dir.path().join("big");
    let content = format!("{ECI_VALUE}\n").repeat(64 * 1024 / ECI_VALUE.len() + 1);
    assert!(std::fs::write(&big, &content).is_ok());
    let found = file_ref_errors(dir.path(), "big");
    assert_eq!(
        found,
        [format!(
            "{shown}:2:9: eci.token: credential file `{}` is larger than 64 KiB",
            big.display()
        )]
    );
    assert!(!found.concat().contains("u_Zb0e"));
    let exact = dir.path().join("exact");
    assert!(std::fs::write(&exact, "x".repeat(64 * 1024)).is_ok());
    assert_eq!(
        file_ref_errors(dir.path(), "exact"),
        ["<loaded without errors>"]
    );
}

#[test]
fn a_missing_relative_file_says_where_it_was_looked_for() {
    let dir = tempdir();
    let shown = dir.path().join("policy.toml").display().to_string();
    assert_eq!(
        file_ref_errors(dir.path(), "eci"),
        [format!(
            "{shown}:2:9: eci.token: cannot read file `eci`: not in $CREDENTIALS_DIRECTORY \
             (not set) nor at {}",
            dir.path().join("eci").display()
        )]
    );
    // An absolute path is looked for in one place only.
    let absolute = dir.path().join("absent");
    assert_eq!(
        file_ref_errors(dir.path(), &absolute.display().to_string()),
        [format!(
            "{shown}:2:9: eci.token: cannot read file `{}`: no such file",
            absolute.display()
        )]
    );
}

#[test]
fn a_missing_section_is_reported_with_the_destinations_own_problems() {
    let errs = errors(&format!(
        "{ECI}\n[[token]]\nname = \"a\"\n  [[token.vault]]\n  path = \"/ci/a/\"\n  key = \"K\"\n  [[token.github]]\n  repo = \"acme\"\n  secret = \"S\"\n"
    ));
    assert!(
        errs.iter().any(|e| e.contains("token[0].vault[0].path")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("a Vault destination needs a [vault] section")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("token[0].github[0].repo")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("a GitHub destination needs a [github] section")),
        "{errs:#?}"
    );
}

#[test]
fn vault_paths_that_vault_would_read_as_another_path_are_refused() {
    for path in ["ci//deploy", "ci/./deploy", "ci/../deploy", "ci/.."] {
        let source = format!(
            "{ECI}[vault]
address = \"https://vault.example.com\"
auth = {{ method = \"token\", token = {{ env = \"POLICY_TEST_VAULT\" }} }}
[[token]]
name = \"a\"
[[token.vault]]
path = \"{path}\"
key = \"TOKEN\"
"
        );
        assert_eq!(
            errors(&source),
            [
                "policy.toml:9:8: token[0].vault[0].path: must not contain empty, `.` or `..` segments (`a//b`, `a/./b`, `a/../b`): Vault would read it as another path"
            ],
            "{path}"
        );
    }
    let source = "[eci]\ntoken = { vault = \"ci//bot#token\" }\n[vault]
address = \"https://vault.example.com\"
auth = { method = \"token\", token = { env = \"POLICY_TEST_VAULT\" } }
";
    let got = errors(source);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("policy.toml:2:19: eci.token.vault: the path must not contain empty"),
        "{got:?}"
    );
}

/// `#` separates path and key in `vault:mount/path#key`: path `a#b` key `c` and path `a` key
/// `b#c` would be one destination (one written and reported for both).
#[test]
fn a_hash_in_a_vault_path_or_key_is_refused() {
    let source = format!(
        "{ECI}[vault]
address = \"https://vault.example.com\"
auth = {{ method = \"token\", token = {{ env = \"POLICY_TEST_VAULT\" }} }}
[[token]]
name = \"a\"
[[token.vault]]
path = \"a#b\"
key = \"c\"
[[token.vault]]
path = \"a\"
key = \"b#c\"
"
    );
    assert_eq!(
        errors(&source),
        [
            "policy.toml:9:8: token[0].vault[0].path: must not contain `#` (it separates the path from the key)",
            "policy.toml:13:7: token[0].vault[1].key: must not contain `#` (it separates the path from the key)",
        ]
    );
}

/// Control characters in Vault names: a line break in `namespace` made the Vault client panic
/// (it is a header), and in a path or key it names a secret nobody could type.
#[test]
fn control_characters_in_vault_names_are_refused() {
    let source = format!(
        "{ECI}[vault]
address = \"https://vault.example.com\"
namespace = \"te\\nam\"
auth = {{ method = \"token\", token = {{ env = \"POLICY_TEST_VAULT\" }} }}
[[token]]
name = \"a\"
[[token.vault]]
path = \"ci/\\u0000x\"
key = \"K\\u007f\"
"
    );
    let problem = "must not contain control characters (a line break, a tab, NUL)";
    assert_eq!(
        errors(&source),
        [
            format!("policy.toml:5:13: vault.namespace: {problem}"),
            format!("policy.toml:10:8: token[0].vault[0].path: {problem}"),
            format!("policy.toml:11:7: token[0].vault[0].key: {problem}"),
        ]
    );
}

#[test]
fn a_relative_state_dir_is_taken_from_the_policy_folder() {
    setup_env();
    let dir = tempdir();
    let policy_path = dir.path().join("policy.toml");
    let source = format!("{ECI}[state]\ndir = \"state\"\n");
    let loaded = policy::parse(&source, &policy_path).map(|p| p.state.dir);
    assert_eq!(loaded.ok().flatten(), Some(dir.path().join("state")));
}

#[test]
fn an_env_credential_is_used_without_its_trailing_newline() {
    let policy = parse("[eci]\ntoken = { env = \"POLICY_TEST_NEWLINE\" }\n").expect("loads");
    let value = policy.eci.token.resolve().expect("resolves");
    assert!(value.same_as(&eci_secret_sync::secret::SecretValue::new(ECI_VALUE)));
    assert_eq!(
        errors("[eci]\ntoken = { env = \"POLICY_TEST_BLANK\" }\n"),
        ["policy.toml:2:9: eci.token: environment variable `POLICY_TEST_BLANK` is empty"]
    );
}

/// A line break inside a credential (two lines pasted, a file of two lines) cannot be sent in a
/// header: refused at load, naming the key, never quoting the value (it used to pass `--check`
/// and make the HTTP client panic at the first run).
#[test]
fn a_credential_of_two_lines_is_refused() {
    let dir = tempdir();
    let file = dir.path().join("two-lines");
    std::fs::write(&file, "hvs.first\nhvs.second\n").expect("write");
    let source = format!(
        "[eci]\ntoken = {{ env = \"POLICY_TEST_TWO_LINES\" }}\n[vault]
address = \"https://vault.example.com\"
auth = {{ method = \"token\", token = {{ file = \"{}\" }} }}
",
        file.display()
    );
    let got = errors(&source);
    assert_eq!(
        got,
        [
            "policy.toml:2:9: eci.token: env POLICY_TEST_TWO_LINES: the value has a line break at character 6 (only trailing whitespace is dropped); a credential is one line".to_string(),
            format!(
                "policy.toml:5:36: vault.auth.token: file {}: the value has a line break at character 10 (only trailing whitespace is dropped); a credential is one line",
                file.display()
            ),
        ]
    );
    assert!(
        got.iter()
            .all(|e| !e.contains("hvs.second") && !e.contains("ghp_x"))
    );
}

#[test]
fn metrics_listen_must_be_an_address_to_bind() {
    for bad in ["999.1.1.1:80", "example.com:9464", "127.0.0.1", ":9464"] {
        let source = format!("{ECI}[metrics]\nlisten = \"{bad}\"\n");
        assert_eq!(
            errors(&source),
            [
                "policy.toml:4:10: metrics.listen: expected an IP address and a port, e.g. \"127.0.0.1:9464\", \"[::1]:9464\" or \"localhost:9464\""
            ],
            "{bad}"
        );
    }
    for good in [
        "127.0.0.1:9464",
        "[::1]:9464",
        "0.0.0.0:9464",
        "localhost:9464",
    ] {
        let source = format!("{ECI}[metrics]\nlisten = \"{good}\"\n");
        assert_eq!(
            parse(&source).map(|p| p.metrics.listen),
            Ok(Some(good.to_owned()))
        );
    }
}

#[test]
fn rotate_before_leaves_time_to_rotate() {
    for (section, line) in [("[defaults]", 4), ("[[token]]\nname = \"a\"", 5)] {
        let source = format!("{ECI}{section}\nrotate_before = \"0s\"\n");
        assert_eq!(
            errors(&source),
            [format!(
                "policy.toml:{line}:17: {}rotate_before: rotate_before (0s) leaves no time to rotate before the token expires: use at least 1h (a few days is usual)",
                if line == 4 { "defaults." } else { "token[0]." }
            )],
        );
    }
}

#[test]
fn token_names_cannot_forge_or_hide_text() {
    for name in ["a\\nb", "ci\\u202Edeploy", "ci\\u200Bdeploy", "tab\\there"] {
        let source = format!("{ECI}[[token]]\nname = \"{name}\"\n");
        assert_eq!(
            errors(&source),
            [
                "policy.toml:4:8: token[0].name: must not contain control, zero-width or text-direction characters"
            ],
            "{name}"
        );
    }
    let long = "x".repeat(201);
    assert_eq!(
        errors(&format!("{ECI}[[token]]\nname = \"{long}\"\n")),
        ["policy.toml:4:8: token[0].name: is longer than 200 characters"]
    );
}

#[test]
fn jitter_is_shorter_than_the_gap_between_runs() {
    let source = format!("{ECI}[schedule]\ncron = \"*/5 * * * * *\"\njitter = \"1h\"\n");
    assert_eq!(
        errors(&source),
        [
            "policy.toml:5:10: schedule.jitter: jitter (1h) must be shorter than the 5s between runs of the schedule"
        ]
    );
    let ok = format!("{ECI}[schedule]\ncron = \"0 * * * *\"\njitter = \"10m\"\n");
    assert!(parse(&ok).is_ok());
}

#[test]
fn a_duplicate_key_is_named() {
    assert_eq!(
        errors(
            "[eci]\ntoken = { env = \"POLICY_TEST_ECI\" }\ntoken = { env = \"POLICY_TEST_ECI\" }\n"
        ),
        ["policy.toml:3:1: duplicate key `token`"]
    );
}

/// A GitHub App key that is not a PEM RSA key is refused where it is named, not at the first
/// run's GitHub call.
#[test]
fn github_app_key_that_is_not_a_pem_rsa_key() {
    let dir = std::env::temp_dir().join(format!("policy-load-pem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bad = dir.join("app.pem");
    std::fs::write(&bad, "not a key\n").expect("write");
    let source = format!(
        "{ECI}[github]\napp = {{ app_id = 1, installation_id = 2, private_key = {{ file = \"{}\" }} }}\n",
        bad.display()
    );
    let errors = errors(&source);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("policy.toml:4:56: ")
            && errors[0].contains("github.app.private_key: ")
            && errors[0].contains("is not a PEM RSA private key"),
        "{errors:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
