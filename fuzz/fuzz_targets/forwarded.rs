//! The trusted-proxy parser (`nexus_wire::forwarded`): `--trusted-proxies` items and the
//! `X-Forwarded-For` walk that decides which client address auth-failure limits and audit see.
//!
//! Input, as text lines so seeds and the dictionary stay readable: the socket peer, the
//! trusted items (comma separated), a real client address, then (optional) every further
//! line is one `X-Forwarded-For` header line (one holding U+FFFD, i.e. invalid UTF-8 in the
//! input, stands for a value that is not text). Unparsable peer/client lines fall back to
//! fixed addresses, so every input reaches `client_ip`.
//! Invariants: no panic; `parse_trusted` accepts exactly the lists whose every non-empty
//! item is an IP or a network, one net per item, and its error is printable; `join_lines`
//! is the lines joined with commas, `None` only without lines; `client_ip` returns the peer
//! unless the peer is trusted and a header is present, otherwise it matches an independent
//! model of the right-to-left walk and names the peer or one of the header's hops; one more
//! trusted proxy appending its peer (to the last line or as a line of its own) changes
//! nothing; and a client behind a chain of trusted proxies is seen as itself whatever it
//! wrote into the header, however the proxies add their hops (no spoofing).
#![no_main]

use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use nexus_wire::forwarded::{client_ip, join_lines, parse_trusted};
use std::net::IpAddr;

fn parse_item(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The walk written differently from the product: collect the hops left to right, find the
/// right-most one that is malformed or untrusted, and decide from there.
fn model(peer: IpAddr, xff: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let Some(xff) = xff.filter(|_| is_trusted(&peer)) else {
        return peer;
    };
    let hops: Vec<Option<IpAddr>> = xff.split(',').map(|p| p.trim().parse().ok()).collect();
    match hops
        .iter()
        .rposition(|h| !h.is_some_and(|ip| is_trusted(&ip)))
    {
        // Every hop is a trusted proxy: the left-most is the furthest that can be believed.
        None => hops[0].expect("trusted hops parse"),
        Some(i) => match hops[i] {
            Some(untrusted) => untrusted,
            // Malformed: believe only what lies to its right.
            None => hops
                .get(i + 1)
                .map_or(peer, |h| h.expect("right of i parses")),
        },
    }
}

/// A header line that stands for a value that is not text.
fn unreadable(line: &str) -> bool {
    line.contains('\u{fffd}')
}

/// The header as the services read it: `lines` joined, a non-text line as `None`.
fn header(lines: &[&str]) -> Option<String> {
    let joined = join_lines(lines.iter().map(|l| (!unreadable(l)).then_some(*l)));
    let expect: Vec<&str> = lines
        .iter()
        .map(|l| if unreadable(l) { "?" } else { l })
        .collect();
    assert_eq!(
        joined,
        (!lines.is_empty()).then(|| expect.join(",")),
        "{lines:?}"
    );
    joined
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(4, '\n');
    let peer_line = lines.next().unwrap_or_default();
    let trusted_line = lines.next().unwrap_or_default();
    let client_line = lines.next().unwrap_or_default();
    let xff_lines: Vec<&str> = lines
        .next()
        .map(|r| r.split('\n').collect())
        .unwrap_or_default();
    let joined = header(&xff_lines);
    let xff = joined.as_deref();

    let items: Vec<String> = trusted_line.split(',').map(str::to_owned).collect();
    let wanted: Vec<Option<IpNet>> = items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(parse_item)
        .collect();
    let trusted: Vec<IpNet> = match parse_trusted(&items) {
        Ok(nets) => {
            let expect: Option<Vec<IpNet>> = wanted.iter().copied().collect();
            assert_eq!(Some(&nets), expect.as_ref(), "{items:?}");
            nets
        }
        Err(e) => {
            assert!(wanted.iter().any(Option::is_none), "{items:?} refused: {e}");
            assert!(!e.0.chars().any(char::is_control), "unprintable error {e}");
            // Still walk with the items that did parse.
            wanted.into_iter().flatten().collect()
        }
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));

    let peer: IpAddr = peer_line
        .trim()
        .parse()
        .unwrap_or(IpAddr::from([10, 0, 0, 1]));
    let got = client_ip(peer, xff, &trusted);
    assert_eq!(got, model(peer, xff, &trusted), "peer {peer}, xff {xff:?}");
    match xff {
        Some(x) if is_trusted(&peer) => assert!(
            got == peer || x.split(',').any(|h| h.trim().parse() == Ok(got)),
            "{got} is neither the peer nor a hop of {x:?}"
        ),
        _ => assert_eq!(got, peer, "untrusted peer or no header"),
    }

    // A further trusted proxy that appends its own peer, to the last line or as a new line,
    // does not change the answer.
    if is_trusted(&peer) {
        let peer_text = peer.to_string();
        let mut on_last: Vec<String> = xff_lines.iter().map(|l| (*l).to_owned()).collect();
        match on_last.last_mut() {
            Some(l) => l.push_str(&format!(", {peer}")),
            None => on_last.push(peer_text.clone()),
        }
        let on_last: Vec<&str> = on_last.iter().map(String::as_str).collect();
        let mut own_line = xff_lines.clone();
        own_line.push(&peer_text);
        // Appended to a line that is not text, a hop is not text either: only its own line
        // is then comparable.
        let last_readable = !xff_lines.last().is_some_and(|l| unreadable(l));
        let variants = if last_readable {
            vec![&on_last, &own_line]
        } else {
            vec![&own_line]
        };
        for q in trusted.iter().take(2).map(IpNet::addr) {
            for appended in variants.iter().copied() {
                let h = header(appended);
                assert_eq!(
                    client_ip(q, h.as_deref(), &trusted),
                    got,
                    "one more hop via {q}: {appended:?}"
                );
            }
        }
    }

    // The real client, behind up to three trusted proxies that each append the address they
    // saw (to the line or as lines of their own), is itself whatever it claimed in the
    // header lines it sent.
    let client: IpAddr = client_line
        .trim()
        .parse()
        .unwrap_or(IpAddr::from([203, 0, 113, 7]));
    if !is_trusted(&client) {
        let proxies: Vec<IpAddr> = trusted.iter().take(3).map(IpNet::addr).collect();
        if let Some((&last, before)) = proxies.split_last() {
            let hops: Vec<String> = std::iter::once(client)
                .chain(before.iter().copied())
                .map(|ip| ip.to_string())
                .collect();
            let mut one_line: Vec<String> = xff_lines.iter().map(|l| (*l).to_owned()).collect();
            match one_line.last_mut() {
                Some(l) => l.push_str(&format!(", {}", hops.join(", "))),
                None => one_line.push(hops.join(", ")),
            }
            let one_line: Vec<&str> = one_line.iter().map(String::as_str).collect();
            let mut own_lines = xff_lines.clone();
            own_lines.extend(hops.iter().map(String::as_str));
            // A client that sends a non-text line gets the hops appended to it lost with it:
            // then it is seen as the nearest proxy, never as an address of its choosing.
            let last_readable = !xff_lines.last().is_some_and(|l| unreadable(l));
            if !last_readable {
                let h = header(&one_line);
                assert!(
                    is_trusted(&client_ip(last, h.as_deref(), &trusted)),
                    "{one_line:?}"
                );
            }
            let variants = if last_readable {
                vec![&one_line, &own_lines]
            } else {
                vec![&own_lines]
            };
            for sent in variants {
                let h = header(sent);
                assert_eq!(
                    client_ip(last, h.as_deref(), &trusted),
                    client,
                    "spoofed via {sent:?} through {proxies:?}"
                );
            }
        }
    }
});
