//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, MCP
//! authorization 2025-11-25), the rules that need no network: which `client_id` URLs may be
//! fetched at all, which addresses a fetch may reach (the SSRF guard's classifier), what the
//! fetched document must say, and how long it may be kept. nexusd does the fetching and the
//! caching (`rpc-server/src/oauth/cimd.rs`); keeping the rules here keeps them testable
//! without sockets and this crate free of a runtime.
//!
//! Every refusal is `invalid_client`: the authorization endpoint shows it on an error page
//! (never a redirect to a URI nobody vouched for), the token endpoint answers 401.

use crate::OAuthError;
use crate::client::{Client, ClientMetadata};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use url::{Host, Url};

/// Largest document read; a longer one is refused without reading further.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// Connect, TLS, headers and body together.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Kept this long when the server says nothing (`Cache-Control` absent).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Never kept shorter: one sign-in looks the client up four times (authorize, login,
/// consent, token), and a document that asks for no caching must not cost four fetches.
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// Never kept longer, whatever `max-age` says.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// A refused document (or target) is not fetched again for this long.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// Longest `client_id` URL.
pub const MAX_URL_LEN: usize = 2000;

fn refused(d: impl Into<String>) -> OAuthError {
    OAuthError::new("invalid_client", d)
}

/// True when `client_id` is meant as a metadata document URL (and so is judged by
/// [`check_client_id_url`], not looked up as a registered id, which never holds a `:`).
pub fn is_url(client_id: &str) -> bool {
    let lower = client_id.get(..8).unwrap_or(client_id).to_ascii_lowercase();
    lower.starts_with("https:") || lower.starts_with("http:")
}

/// The draft's rules for a `client_id` URL: `https`, a host, a path other than `/`, no
/// fragment, no user info, no `.`/`..` segments; and written in canonical form, because the
/// `client_id` is compared as a string (inside the document, in codes and tokens) and two
/// spellings of one URL would be two clients.
pub fn check_client_id_url(client_id: &str) -> Result<Url, OAuthError> {
    if client_id.len() > MAX_URL_LEN {
        return Err(refused("the client_id URL is too long"));
    }
    let url = Url::parse(client_id).map_err(|_| refused("the client_id is not a valid URL"))?;
    if url.scheme() != "https" {
        return Err(refused(
            "a client_id URL must be https; its metadata document is not fetched over anything else",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("a client_id URL has no user info"));
    }
    if url.fragment().is_some() || client_id.contains('#') {
        return Err(refused("a client_id URL has no fragment"));
    }
    let Some(host) = url.host() else {
        return Err(refused("a client_id URL names a host"));
    };
    if let Host::Domain(d) = host
        && d.trim_end_matches('.').is_empty()
    {
        return Err(refused("a client_id URL names a host"));
    }
    let raw_path = client_id
        .split_once("://")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("");
    let raw_path = raw_path.split(['?', '#']).next().unwrap_or("");
    if raw_path.split('/').any(|seg| {
        let s = seg.to_ascii_lowercase();
        matches!(s.as_str(), "." | ".." | "%2e" | "%2e." | ".%2e" | "%2e%2e")
    }) {
        return Err(refused("a client_id URL has no . or .. path segments"));
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(refused(
            "a client_id URL has a path (https://host/ alone is not a document)",
        ));
    }
    if url.as_str() != client_id {
        return Err(refused(format!(
            "the client_id URL is not in canonical form; it would be {}",
            url.as_str()
        )));
    }
    Ok(url)
}

/// True when `host` is allowed by the operator's list: an exact host, or `*.example.com`
/// for any host below `example.com` (not `example.com` itself). An empty list allows all.
pub fn host_allowed(patterns: &[String], host: &str) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.trim().trim_end_matches('.').to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            None => !p.is_empty() && host == p,
        }
    })
}

/// Where an address leads, for the SSRF guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// A public unicast address: fetchable.
    Public,
    /// This host or a private network (loopback, RFC 1918, unique local, shared address
    /// space): fetchable only when the operator allows private targets (tests, labs).
    Private(&'static str),
    /// Never fetched: link-local (cloud metadata services live there), unspecified,
    /// multicast, broadcast, documentation, reserved, and tunnels that hide where they lead.
    Never(&'static str),
}

impl Reach {
    /// Why the address is refused, or `None` when it may be fetched.
    pub fn refusal(self, allow_private: bool) -> Option<&'static str> {
        match self {
            Reach::Public => None,
            Reach::Private(_) if allow_private => None,
            Reach::Private(why) | Reach::Never(why) => Some(why),
        }
    }
}

/// The class of `ip`; an IPv6 address that carries an IPv4 one (mapped, compatible, NAT64,
/// 6to4) is judged by the IPv4 address it leads to.
pub fn classify(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a),
    }
}

fn in_v4(a: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    (u32::from(a) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn classify_v4(a: Ipv4Addr) -> Reach {
    const NEVER: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "unspecified (this network)"),
        ([169, 254, 0, 0], 16, "link-local (cloud metadata)"),
        ([192, 0, 0, 0], 24, "IETF protocol assignment"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([192, 88, 99, 0], 24, "6to4 relay anycast"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([255, 255, 255, 255], 32, "broadcast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    const PRIVATE: &[([u8; 4], u32, &str)] = &[
        ([127, 0, 0, 0], 8, "loopback"),
        ([10, 0, 0, 0], 8, "private (RFC 1918)"),
        ([172, 16, 0, 0], 12, "private (RFC 1918)"),
        ([192, 168, 0, 0], 16, "private (RFC 1918)"),
        ([100, 64, 0, 0], 10, "shared address space (CGNAT)"),
    ];
    if let Some((_, _, why)) = NEVER.iter().find(|(n, b, _)| in_v4(a, *n, *b)) {
        return Reach::Never(why);
    }
    if let Some((_, _, why)) = PRIVATE.iter().find(|(n, b, _)| in_v4(a, *n, *b)) {
        return Reach::Private(why);
    }
    Reach::Public
}

fn in_v6(a: Ipv6Addr, net: [u16; 8], bits: u32) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    };
    (u128::from(a) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

fn classify_v6(a: Ipv6Addr) -> Reach {
    let bits = u128::from(a);
    // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible (::a.b.c.d) forms.
    if let Some(v4) = a.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if a.is_unspecified() {
        return Reach::Never("unspecified");
    }
    if a.is_loopback() {
        return Reach::Private("loopback");
    }
    if bits >> 32 == 0 {
        return classify_v4(Ipv4Addr::from(bits as u32));
    }
    // NAT64 (64:ff9b::/96): a translator forwards to the embedded IPv4 address.
    if in_v6(a, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return classify_v4(Ipv4Addr::from(bits as u32));
    }
    // 6to4 (2002::/16): the IPv4 address is in bits 16..48.
    if in_v6(a, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return match classify_v4(Ipv4Addr::from((bits >> 80) as u32)) {
            Reach::Public => Reach::Public,
            _ => Reach::Never("6to4 tunnel to a non-public address"),
        };
    }
    const NEVER: &[([u16; 8], u32, &str)] = &[
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, "local-use NAT64"),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only"),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "Teredo tunnel"),
        ([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48, "benchmarking"),
        ([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, "ORCHID"),
        ([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, "ORCHIDv2"),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation"),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local"),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local (deprecated)"),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast"),
    ];
    if let Some((_, _, why)) = NEVER.iter().find(|(n, b, _)| in_v6(a, *n, *b)) {
        return Reach::Never(why);
    }
    if in_v6(a, [0xfc00, 0, 0, 0, 0, 0, 0, 0], 7) {
        return Reach::Private("unique local (fc00::/7)");
    }
    // Only global unicast (2000::/3) is public; the rest of the space is unassigned.
    if in_v6(a, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        Reach::Public
    } else {
        Reach::Never("reserved")
    }
}

/// How long a fetched document may be kept, from its `Cache-Control`: `max-age` within
/// [`MIN_TTL`]..[`MAX_TTL`]; `no-store`/`no-cache` get the floor; nothing gets
/// [`DEFAULT_TTL`].
pub fn cache_ttl(cache_control: Option<&str>) -> Duration {
    let Some(cc) = cache_control else {
        return DEFAULT_TTL;
    };
    let mut ttl = None;
    for directive in cc.split(',') {
        let d = directive.trim().to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return MIN_TTL;
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            ttl = v
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    ttl.unwrap_or(DEFAULT_TTL).clamp(MIN_TTL, MAX_TTL)
}

/// True for `application/json` and `application/<x>+json`, whatever the parameters.
pub fn is_json_content_type(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|s| s.ends_with("+json"))
}

/// The document fetched from `client_id`: a JSON object whose `client_id` is that URL
/// exactly, a public client (no secret, `token_endpoint_auth_method` `none` if given), and
/// redirect URIs, grant types and name by the same rules as a registration.
pub fn validate_document(client_id: &str, body: &[u8]) -> Result<Client, OAuthError> {
    let doc: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| refused("the client metadata document is not JSON"))?;
    let Some(obj) = doc.as_object() else {
        return Err(refused("the client metadata document is not a JSON object"));
    };
    if obj.contains_key("client_secret") || obj.contains_key("client_secret_expires_at") {
        return Err(refused(
            "a client metadata document holds no client_secret (its clients are public)",
        ));
    }
    let meta: ClientMetadata = serde_json::from_value(doc)
        .map_err(|_| refused("the client metadata document has fields of the wrong type"))?;
    if meta.client_id.as_deref() != Some(client_id) {
        return Err(refused(
            "the client_id inside the metadata document differs from its URL",
        ));
    }
    if let Some(m) = meta.token_endpoint_auth_method.as_deref()
        && m != "none"
    {
        return Err(refused(format!(
            "token_endpoint_auth_method {m:?} is not supported; only public clients (none)"
        )));
    }
    meta.validate()
        .map_err(|e| refused(format!("the client metadata document: {}", e.description)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_urls_follow_the_drafts_rules() {
        for ok in [
            "https://app.example/client.json",
            "https://app.example:8443/oauth/client",
            "https://app.example/c?v=2",
            "https://127.0.0.1:4443/client.json",
        ] {
            assert!(check_client_id_url(ok).is_ok(), "{ok}");
            assert!(is_url(ok), "{ok}");
        }
        for bad in [
            "http://app.example/client.json",
            "HTTP://app.example/client.json",
            "ftp://app.example/c",
            "https://app.example",
            "https://app.example/",
            "https://app.example/c#frag",
            "https://user:pw@app.example/c",
            "https://user@app.example/c",
            "https://app.example/a/../c",
            "https://app.example/./c",
            "https://app.example/a/%2e%2e/c",
            "https://APP.example/c",
            "https://app.example:443/c",
            "https:///c",
            "https://",
        ] {
            let e = check_client_id_url(bad).expect_err(bad);
            assert_eq!(e.code, "invalid_client", "{bad}");
        }
        assert!(!is_url("dcr-0123abcd"));
        assert!(check_client_id_url(&format!("https://a.example/{}", "x".repeat(2000))).is_err());
    }

    #[test]
    fn hosts_are_allowed_exactly_or_below_a_wildcard() {
        let list = vec!["app.example".to_owned(), "*.clients.example".to_owned()];
        assert!(host_allowed(&[], "anything.example"));
        assert!(host_allowed(&list, "app.example"));
        assert!(host_allowed(&list, "APP.example."));
        assert!(host_allowed(&list, "a.clients.example"));
        assert!(host_allowed(&list, "b.a.clients.example"));
        assert!(!host_allowed(&list, "clients.example"));
        assert!(!host_allowed(&list, "evilclients.example"));
        assert!(!host_allowed(&list, "app.example.evil"));
        assert!(!host_allowed(&list, "sub.app.example"));
    }

    fn reach(s: &str) -> Reach {
        classify(s.parse().expect(s))
    }

    #[test]
    fn ipv4_private_and_special_ranges_are_refused() {
        for p in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
        ] {
            assert!(matches!(reach(p), Reach::Private(_)), "{p}");
            assert_eq!(reach(p).refusal(true), None, "{p}");
            assert!(reach(p).refusal(false).is_some(), "{p}");
        }
        for n in [
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "192.0.0.8",
        ] {
            assert!(matches!(reach(n), Reach::Never(_)), "{n}");
            assert!(
                reach(n).refusal(true).is_some(),
                "{n}: never, even when private is allowed"
            );
        }
        for p in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "169.253.1.1",
            "93.184.216.34",
        ] {
            assert_eq!(reach(p), Reach::Public, "{p}");
        }
        assert_eq!(
            reach("169.254.169.254").refusal(false),
            Some("link-local (cloud metadata)")
        );
    }

    #[test]
    fn ipv6_forms_are_judged_by_where_they_lead() {
        for p in [
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "::ffff:100.64.0.1",
        ] {
            assert!(matches!(reach(p), Reach::Private(_)), "{p}: {:?}", reach(p));
        }
        for n in [
            "::",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::ffff:0.0.0.0",
            "2001:db8::1",
            "3fff::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "100::1",
            "64:ff9b:1::1",
            "4000::1",
        ] {
            assert!(matches!(reach(n), Reach::Never(_)), "{n}: {:?}", reach(n));
        }
        for p in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(reach(p), Reach::Public, "{p}");
        }
    }

    #[test]
    fn cache_lifetimes_are_bounded() {
        assert_eq!(cache_ttl(None), DEFAULT_TTL);
        assert_eq!(cache_ttl(Some("max-age=600")), Duration::from_secs(600));
        assert_eq!(cache_ttl(Some("public, max-age=5")), MIN_TTL);
        assert_eq!(cache_ttl(Some("max-age=99999999")), MAX_TTL);
        assert_eq!(cache_ttl(Some("no-store")), MIN_TTL);
        assert_eq!(cache_ttl(Some("max-age=junk")), DEFAULT_TTL);
        assert!(is_json_content_type("application/json; charset=utf-8"));
        assert!(is_json_content_type("Application/JSON"));
        assert!(is_json_content_type("application/oauth-client+json"));
        assert!(!is_json_content_type("text/html"));
        assert!(!is_json_content_type("text/json+html"));
    }

    #[test]
    fn documents_are_checked_against_their_url() {
        let id = "https://app.example/client.json";
        let good = serde_json::json!({
            "client_id": id, "client_name": "App", "redirect_uris": ["http://127.0.0.1/cb"],
            "token_endpoint_auth_method": "none",
        });
        let c = validate_document(id, good.to_string().as_bytes()).expect("valid");
        assert_eq!(c.client_name, "App");
        let cases = [
            serde_json::json!({"client_id": "https://other.example/client.json", "redirect_uris": ["https://a.example/cb"]}),
            serde_json::json!({"redirect_uris": ["https://a.example/cb"]}),
            serde_json::json!({"client_id": id}),
            serde_json::json!({"client_id": id, "redirect_uris": ["http://evil.example/cb"]}),
            serde_json::json!({"client_id": id, "redirect_uris": ["https://a.example/cb"], "client_secret": "s"}),
            serde_json::json!({"client_id": id, "redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
            serde_json::json!({"client_id": id, "redirect_uris": "https://a.example/cb"}),
            serde_json::json!(["not", "an", "object"]),
        ];
        for doc in cases {
            let e = validate_document(id, doc.to_string().as_bytes()).expect_err("refused");
            assert_eq!(e.code, "invalid_client", "{doc}");
        }
        assert!(validate_document(id, b"<html>").is_err());
    }
}
