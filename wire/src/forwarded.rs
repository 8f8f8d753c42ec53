//! Who the client really is behind trusted proxies. `X-Forwarded-For` is believed only when
//! the socket peer is a configured proxy, and then only up to the first address that is not
//! one: a client cannot pick its own address by sending the header.

use crate::spec::SpecError;
use ipnet::IpNet;
use std::net::IpAddr;

/// Parses `10.0.0.0/8, 127.0.0.1` (networks or single addresses).
pub fn parse_trusted(items: &[String]) -> Result<Vec<IpNet>, SpecError> {
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    SpecError(format!(
                        "invalid trusted proxy {:?}: use an IP or a CIDR network",
                        crate::jsonrpc::printable(s)
                    ))
                })
        })
        .collect()
}

/// Every `X-Forwarded-For` line of a request as the one list they are: repeated fields
/// combine in order with commas (RFC 9110 §5.3). Some proxies (HAProxy's `option forwardfor`)
/// append their hop as a line of its own after the client's, so reading only the first line
/// would believe whatever the client wrote. A line that is not text (`None`) becomes a
/// malformed hop, which ends what can be believed. `None` when there is no line at all.
pub fn join_lines<'a>(lines: impl IntoIterator<Item = Option<&'a str>>) -> Option<String> {
    let lines: Vec<&str> = lines.into_iter().map(|l| l.unwrap_or("?")).collect();
    (!lines.is_empty()).then(|| lines.join(","))
}

/// The client address: the peer, or, when the peer is a trusted proxy, the right-most
/// address of `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(xff) = forwarded_for else {
        return peer;
    };
    let mut last = peer;
    for part in xff.rsplit(',') {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => last = ip,
            Ok(ip) => return ip,
            // A malformed hop ends what can be believed.
            Err(_) => return last,
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn only_trusted_peers_are_believed() {
        let t = parse_trusted(&["10.0.0.0/8".into(), "127.0.0.1".into()]).expect("valid");
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &t),
            ip("203.0.113.9"),
            "untrusted peer"
        );
        assert_eq!(
            client_ip(ip("10.1.1.1"), Some("1.2.3.4"), &t),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("10.1.1.1"), Some("6.6.6.6, 1.2.3.4, 10.2.2.2"), &t),
            ip("1.2.3.4"),
            "spoofed left part ignored"
        );
        assert_eq!(client_ip(ip("10.1.1.1"), None, &t), ip("10.1.1.1"));
        assert_eq!(
            client_ip(ip("10.1.1.1"), Some("garbage"), &t),
            ip("10.1.1.1")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("::1, 2001:db8::1"), &t),
            ip("2001:db8::1")
        );
        // A proxy that appends its own line: the client's forged first line is not believed.
        let two = join_lines([Some("6.6.6.6"), Some("1.2.3.4")]);
        assert_eq!(two.as_deref(), Some("6.6.6.6,1.2.3.4"));
        assert_eq!(client_ip(ip("10.1.1.1"), two.as_deref(), &t), ip("1.2.3.4"));
        let unreadable = join_lines([Some("1.2.3.4"), None, Some("10.2.2.2")]);
        assert_eq!(
            client_ip(ip("10.1.1.1"), unreadable.as_deref(), &t),
            ip("10.2.2.2"),
            "an unreadable line is a malformed hop"
        );
        assert_eq!(join_lines([]), None);
        assert!(parse_trusted(&["nope".into()]).is_err());
        assert!(parse_trusted(&[]).expect("empty").is_empty());
    }
}
