//! Clients: the RFC 7591 registration request and the redirect-URI rules both
//! registration and Client ID Metadata Documents obey. Every client is public (PKCE, no
//! secret): `token_endpoint_auth_method` is always `none`.
//!
//! A redirect URI is `https://…`, or `http://` on a loopback host (RFC 8252 §7.3, the
//! native apps' local callback); never a fragment, never user info. Matching is exact,
//! except that a loopback URI may come back on another port (RFC 8252 §7.3: a native app
//! picks a free port at each login); its scheme, host and path must still be the same.

use crate::OAuthError;
use serde::Deserialize;
use url::{Host, Url};

/// At most this many redirect URIs per client.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest redirect URI accepted.
pub const MAX_URI_LEN: usize = 2000;
/// Longest client name shown on the consent page.
pub const MAX_NAME_LEN: usize = 100;

/// What a client says about itself (RFC 7591 §2; also the body of a Client ID Metadata
/// Document). Fields this server does not use are ignored, as the RFC asks.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClientMetadata {
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub client_uri: Option<String>,
}

/// A client as this server keeps it: validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub client_name: String,
    pub redirect_uris: Vec<String>,
}

impl ClientMetadata {
    /// Validates a registration (or metadata document): the redirect URIs by the rules
    /// above, the grant and response types within what this server does, a printable name.
    pub fn validate(&self) -> Result<Client, OAuthError> {
        if self.redirect_uris.is_empty() {
            return Err(OAuthError::invalid_redirect_uri(
                "redirect_uris must list at least one URI",
            ));
        }
        if self.redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(OAuthError::invalid_redirect_uri(format!(
                "at most {MAX_REDIRECT_URIS} redirect_uris"
            )));
        }
        for u in &self.redirect_uris {
            check_redirect_uri(u)?;
        }
        if let Some(g) = &self.grant_types
            && g.iter()
                .any(|t| t != "authorization_code" && t != "refresh_token")
        {
            return Err(OAuthError::invalid_client_metadata(
                "grant_types may be authorization_code and refresh_token only",
            ));
        }
        if let Some(r) = &self.response_types
            && r.iter().any(|t| t != "code")
        {
            return Err(OAuthError::invalid_client_metadata(
                "response_types may be code only",
            ));
        }
        let name = self
            .client_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or("unnamed client");
        if name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(OAuthError::invalid_client_metadata(format!(
                "client_name must be at most {MAX_NAME_LEN} printable characters"
            )));
        }
        Ok(Client {
            client_name: name.to_owned(),
            redirect_uris: self.redirect_uris.clone(),
        })
    }
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(Host::Ipv4(a)) => a.is_loopback(),
        Some(Host::Ipv6(a)) => a.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// One redirect URI by the rules of this module.
pub fn check_redirect_uri(u: &str) -> Result<Url, OAuthError> {
    if u.len() > MAX_URI_LEN {
        return Err(OAuthError::invalid_redirect_uri("redirect URI too long"));
    }
    let url =
        Url::parse(u).map_err(|_| OAuthError::invalid_redirect_uri("redirect URI is not a URL"))?;
    if url.fragment().is_some() {
        return Err(OAuthError::invalid_redirect_uri(
            "a redirect URI has no fragment",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OAuthError::invalid_redirect_uri(
            "a redirect URI has no user info",
        ));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(OAuthError::invalid_redirect_uri(
            "a redirect URI is https, or http on a loopback address",
        )),
    }
}

/// True when the `requested` redirect URI is one of the `registered` ones, by the rules
/// of this module.
pub fn redirect_matches(registered: &[String], requested: &str) -> bool {
    if registered.iter().any(|r| r == requested) {
        return true;
    }
    let Ok(req) = Url::parse(requested) else {
        return false;
    };
    if req.scheme() != "http" || !is_loopback(&req) || req.fragment().is_some() {
        return false;
    }
    registered.iter().any(|r| {
        Url::parse(r).is_ok_and(|reg| {
            reg.scheme() == "http"
                && is_loopback(&reg)
                && reg.host() == req.host()
                && reg.path() == req.path()
                && reg.query() == req.query()
                && req.username().is_empty()
                && req.password().is_none()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uris: &[&str]) -> ClientMetadata {
        ClientMetadata {
            redirect_uris: uris.iter().map(|s| (*s).to_owned()).collect(),
            client_name: Some("Claude Code".into()),
            ..Default::default()
        }
    }

    #[test]
    fn redirect_uris_are_https_or_loopback() {
        assert!(
            meta(&["http://localhost:33418/callback"])
                .validate()
                .is_ok()
        );
        assert!(
            meta(&["http://127.0.0.1/cb", "https://vscode.dev/redirect"])
                .validate()
                .is_ok()
        );
        for bad in [
            "http://evil.example/cb",
            "https://x.example/cb#frag",
            "https://user:pw@x.example/cb",
            "javascript:alert(1)",
            "cursor://callback",
            "not a url",
        ] {
            let e = meta(&[bad]).validate().expect_err(bad);
            assert_eq!(e.code, "invalid_redirect_uri", "{bad}");
        }
        assert!(meta(&[]).validate().is_err());
    }

    #[test]
    fn grant_types_and_names_are_checked() {
        let mut m = meta(&["https://a.example/cb"]);
        m.grant_types = Some(vec!["client_credentials".into()]);
        assert_eq!(
            m.validate().expect_err("refused").code,
            "invalid_client_metadata"
        );
        let mut m = meta(&["https://a.example/cb"]);
        m.client_name = Some("x\u{7}".into());
        assert!(m.validate().is_err());
        m.client_name = None;
        assert_eq!(m.validate().expect("ok").client_name, "unnamed client");
    }

    #[test]
    fn matching_is_exact_but_for_a_loopback_port() {
        let reg = vec![
            "http://127.0.0.1:5000/callback".to_owned(),
            "https://app.example/cb".to_owned(),
        ];
        assert!(redirect_matches(&reg, "https://app.example/cb"));
        assert!(redirect_matches(&reg, "http://127.0.0.1:61234/callback"));
        assert!(!redirect_matches(&reg, "https://app.example/cb/"));
        assert!(!redirect_matches(&reg, "https://app.example/cb?x=1"));
        assert!(!redirect_matches(&reg, "https://evil.example/cb"));
        assert!(!redirect_matches(&reg, "http://127.0.0.1:61234/other"));
        assert!(!redirect_matches(&reg, "http://localhost:5000/callback"));
        assert!(!redirect_matches(&reg, "http://app.example/cb"));
    }
}
