//! The authorization request (RFC 6749 §4.1.1 with PKCE, RFC 8707 `resource`), read from
//! the query. The checks that decide whether an error may be sent back to the client's
//! redirect URI are the caller's: only after the client and its redirect URI are known
//! (RFC 6749 §4.1.2.1 — never redirect to an unverified URI).

use crate::OAuthError;
use crate::scope::Scopes;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Longest `state` echoed back.
const MAX_STATE: usize = 1024;

/// The raw query of `/oauth/authorize`, each parameter at most once.
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    pub params: HashMap<String, String>,
}

impl RawRequest {
    /// Parses a query string; a parameter given twice is an error (RFC 6749 §3.1).
    pub fn parse(query: &str) -> Result<Self, OAuthError> {
        let mut params = HashMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if params.insert(k.into_owned(), v.into_owned()).is_some() {
                return Err(OAuthError::invalid_request(
                    "a parameter is given more than once",
                ));
            }
        }
        Ok(Self { params })
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
}

/// A request whose every check passed: what the login and consent pages carry (sealed)
/// and what the code remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub resource: String,
    pub scope: String,
}

impl AuthorizationRequest {
    /// The checks after the client and redirect URI are known: response type, PKCE,
    /// resource, scope, state. Errors here go back to the redirect URI.
    pub fn validate(
        raw: &RawRequest,
        client_id: &str,
        client_name: &str,
        redirect_uri: &str,
        expected_resource: &str,
    ) -> Result<Self, OAuthError> {
        match raw.get("response_type") {
            Some("code") => {}
            None => return Err(OAuthError::invalid_request("response_type is required")),
            Some(_) => {
                return Err(OAuthError::new(
                    "unsupported_response_type",
                    "response_type must be code",
                ));
            }
        }
        crate::pkce::check_challenge(raw.get("code_challenge"), raw.get("code_challenge_method"))?;
        let resource = raw.get("resource").ok_or_else(|| {
            OAuthError::new(
                "invalid_target",
                format!("resource is required (RFC 8707): {expected_resource}"),
            )
        })?;
        if resource != expected_resource {
            return Err(OAuthError::new(
                "invalid_target",
                format!("this server issues tokens for {expected_resource} only"),
            ));
        }
        let scopes = Scopes::parse(raw.get("scope"))?;
        let state = raw.get("state").map(str::to_owned);
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
            return Err(OAuthError::invalid_request("state too long"));
        }
        Ok(Self {
            client_id: client_id.to_owned(),
            client_name: client_name.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            state,
            code_challenge: raw.get("code_challenge").unwrap_or_default().to_owned(),
            resource: resource.to_owned(),
            scope: scopes.to_scope_string(),
        })
    }
}

/// The redirect that answers a request: `code` or `error`, then `state` and `iss` (RFC
/// 9207), appended to the redirect URI's own query.
pub fn redirect_with(
    redirect_uri: &str,
    issuer: &str,
    state: Option<&str>,
    pairs: &[(&str, &str)],
) -> String {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        // Only validated URIs reach here; fall back to the bare URI rather than panic.
        Err(_) => return redirect_uri.to_owned(),
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", issuer);
    }
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn raw(extra: &str) -> RawRequest {
        RawRequest::parse(&format!(
            "response_type=code&code_challenge={C}&code_challenge_method=S256&resource=https%3A%2F%2Fhub%2Fmcp{extra}"
        ))
        .expect("parse")
    }

    #[test]
    fn a_good_request_validates_and_a_bad_one_says_why() {
        let r = AuthorizationRequest::validate(
            &raw("&state=xyz"),
            "c",
            "n",
            "https://a/cb",
            "https://hub/mcp",
        )
        .expect("valid");
        assert_eq!(r.state.as_deref(), Some("xyz"));
        assert_eq!(r.scope, "files:read files:write");
        let e =
            AuthorizationRequest::validate(&raw(""), "c", "n", "https://a/cb", "https://other/mcp")
                .expect_err("refused");
        assert_eq!(e.code, "invalid_target");
        assert!(RawRequest::parse("a=1&a=2").is_err());
        let plain = RawRequest::parse(&format!(
            "response_type=code&code_challenge={C}&code_challenge_method=plain&resource=https%3A%2F%2Fhub%2Fmcp"
        ))
        .expect("parse");
        assert_eq!(
            AuthorizationRequest::validate(&plain, "c", "n", "https://a/cb", "https://hub/mcp")
                .expect_err("refused")
                .code,
            "invalid_request"
        );
    }

    #[test]
    fn the_redirect_carries_state_and_issuer() {
        let u = redirect_with(
            "http://127.0.0.1:5000/cb?x=1",
            "https://hub",
            Some("s t"),
            &[("code", "nxc-1")],
        );
        assert_eq!(
            u,
            "http://127.0.0.1:5000/cb?x=1&code=nxc-1&state=s+t&iss=https%3A%2F%2Fhub"
        );
    }
}
