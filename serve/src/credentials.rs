//! The caller's credential and address as both services read them from a request's
//! headers. Whether a token is valid is the rpc-server's decision alone; this only picks
//! the one candidate a request names, or says why there is none.

use axum::http::{HeaderMap, HeaderValue, header};
use ipnet::IpNet;
use nexus_wire::bearer::{self, BearerError};
use nexus_wire::{forwarded, headers};
use std::net::IpAddr;

/// The candidate token of a request, from `Authorization: Bearer`, `X-Nexus-API-Key` or
/// `X-API-Key`. Two values of one credential header are ambiguity, not a credential:
/// `Malformed`, as are two headers naming different tokens.
pub fn caller_token(h: &HeaderMap) -> Result<&str, BearerError> {
    if headers::CREDENTIALS
        .iter()
        .any(|name| h.get_all(*name).iter().nth(1).is_some())
    {
        return Err(BearerError::Malformed);
    }
    bearer::extract_any(
        h.get(header::AUTHORIZATION).map(HeaderValue::as_bytes),
        &[
            h.get(headers::API_KEY).map(HeaderValue::as_bytes),
            h.get(headers::X_API_KEY).map(HeaderValue::as_bytes),
        ],
    )
}

/// The client's address: the socket peer, or, when the peer is a trusted proxy, what
/// every `X-Forwarded-For` line together says ([`forwarded::client_ip`]). A proxy may
/// append its own line after the client's, so all lines are read, not the first.
pub fn client_ip(peer: IpAddr, h: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    // An untrusted peer is the answer whatever it sent: skip reading the header.
    if !trusted.iter().any(|n| n.contains(&peer)) {
        return peer;
    }
    let lines = forwarded::join_lines(
        h.get_all(headers::FORWARDED_FOR)
            .iter()
            .map(|v| v.to_str().ok()),
    );
    forwarded::client_ip(peer, lines.as_deref(), trusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn one_candidate_or_why_not() {
        assert_eq!(caller_token(&map(&[])), Err(BearerError::Missing));
        assert_eq!(
            caller_token(&map(&[("authorization", "Bearer sk-a")])),
            Ok("sk-a")
        );
        assert_eq!(
            caller_token(&map(&[("x-nexus-api-key", "sk-a")])),
            Ok("sk-a")
        );
        assert_eq!(caller_token(&map(&[("x-api-key", "sk-a")])), Ok("sk-a"));
        assert_eq!(
            caller_token(&map(&[
                ("authorization", "Bearer sk-a"),
                ("x-api-key", "sk-a")
            ])),
            Ok("sk-a")
        );
        for twice in [
            map(&[
                ("authorization", "Bearer sk-a"),
                ("authorization", "Bearer sk-a"),
            ]),
            map(&[("x-nexus-api-key", "sk-a"), ("x-nexus-api-key", "sk-a")]),
            map(&[("x-api-key", "sk-a"), ("x-api-key", "sk-a")]),
            map(&[("x-api-key", "sk-a"), ("x-nexus-api-key", "sk-b")]),
            map(&[("authorization", "Bearer sk-a"), ("x-api-key", "sk-b")]),
            map(&[
                ("authorization", "Bearer sk-a"),
                ("x-nexus-api-key", "sk-b"),
            ]),
            map(&[("authorization", "Basic sk-a")]),
        ] {
            assert_eq!(
                caller_token(&twice),
                Err(BearerError::Malformed),
                "{twice:?}"
            );
        }
    }

    #[test]
    fn forwarded_for_is_read_only_from_a_trusted_peer_and_in_full() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "1.2.3.4"),
        ]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("10.1.1.1"), &h, &trusted), ip("1.2.3.4"));
        assert_eq!(
            client_ip(ip("10.1.1.1"), &map(&[]), &trusted),
            ip("10.1.1.1")
        );
    }
}
