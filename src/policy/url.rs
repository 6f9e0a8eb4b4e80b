//! http(s) URL checks: shape, and no plain http to anything but loopback unless allowed.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Checks `url` and returns it without trailing `/`. `section` names where
/// `allow_insecure_http` would go, for the message. Messages never repeat the URL (it might
/// carry credentials).
pub(crate) fn check_http_url(
    url: &str,
    allow_insecure: bool,
    section: &str,
) -> Result<String, String> {
    let lower = url.to_ascii_lowercase();
    let (plain, rest) = if lower.starts_with("https://") {
        (false, &url["https://".len()..])
    } else if lower.starts_with("http://") {
        (true, &url["http://".len()..])
    } else {
        return Err("expected an http:// or https:// URL".to_owned());
    };
    if url.chars().any(char::is_whitespace) {
        return Err("a URL must not contain whitespace".to_owned());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "a URL must not contain credentials; use the section's auth settings".to_owned(),
        );
    }
    let host = host_of(authority)?;
    if plain && !allow_insecure && !is_loopback(host) {
        return Err(format!(
            "plain http:// is only allowed to a loopback address; use https:// or set \
             `allow_insecure_http = true` in [{section}]"
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn host_of(authority: &str) -> Result<&str, String> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| "unclosed `[` in the URL's host".to_owned())?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    if port.is_some_and(|port| port.parse::<u16>().is_err()) {
        return Err("the URL's port must be a number from 0 to 65535".to_owned());
    }
    Ok(host)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        || host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_and_loopback_http() {
        let ok = |u| check_http_url(u, false, "vault");
        assert_eq!(
            ok("https://vault.example.com:8200/"),
            Ok("https://vault.example.com:8200".into())
        );
        assert_eq!(
            ok("http://127.0.0.1:8200"),
            Ok("http://127.0.0.1:8200".into())
        );
        assert_eq!(
            ok("http://127.3.4.5/api//"),
            Ok("http://127.3.4.5/api".into())
        );
        assert_eq!(
            ok("http://localhost:9000/api"),
            Ok("http://localhost:9000/api".into())
        );
        assert_eq!(ok("http://[::1]:8080"), Ok("http://[::1]:8080".into()));
    }

    #[test]
    fn rejects_bad_urls() {
        let err = |u| check_http_url(u, false, "vault").expect_err(u);
        assert!(err("http://vault.example.com").starts_with("plain http:// is only allowed"));
        assert!(err("http://10.0.0.1").contains("allow_insecure_http = true` in [vault]"));
        assert_eq!(err("ftp://x"), "expected an http:// or https:// URL");
        assert_eq!(err("https://"), "the URL has no host");
        assert_eq!(
            err("https://h:port"),
            "the URL's port must be a number from 0 to 65535"
        );
        assert!(err("https://user:pw@h").contains("credentials"));
        assert!(check_http_url("http://vault.internal", true, "vault").is_ok());
    }
}
