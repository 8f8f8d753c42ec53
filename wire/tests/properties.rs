//! Property tests for the small parsers every service and the CLI share: the bearer header,
//! zone specs, token lifetimes, rate limits and the JSON-RPC envelope. Each property runs a
//! few hundred cases so the whole file stays well under a second or two; the long runs are
//! the cargo-fuzz targets in `fuzz/` (same invariants, `fuzz/run`).

use nexus_wire::bearer::{self, BearerError, MAX_TOKEN_LEN};
use nexus_wire::jsonrpc::{self, decode_request, encode_request};
use nexus_wire::spec::{
    self, MAX_EXPIRY, Permission, RateLimit, RateTier, ZoneGrant, format_zone_spec, parse_expiry,
    parse_zone_spec,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};
use std::time::Duration;

/// Cases per property: enough to matter, few enough that the suite stays fast.
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(CASES)
}

// ---------------------------------------------------------------------------------------
// Bearer header
// ---------------------------------------------------------------------------------------

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Header values that get past the cheap checks often: a scheme word in any case, odd
/// whitespace and a mostly-graphic token, sometimes with a stray byte.
fn header_like() -> impl Strategy<Value = Vec<u8>> {
    let scheme = prop_oneof![
        Just("Bearer".to_owned()),
        "[bB][eE][aA][rR][eE][rR]",
        "[A-Za-z]{0,8}",
    ];
    let ws = prop_oneof![Just(" ".to_owned()), "[ \t\r\n\u{a0}\u{3000}]{0,3}"];
    let token = prop_oneof![
        "[!-~]{1,16}",
        "[!-~]{500,520}",
        "[!-~ \t\u{80}-\u{10ffff}]{0,24}",
    ];
    (ws.clone(), scheme, ws.clone(), token, ws)
        .prop_map(|(a, s, b, t, c)| format!("{a}{s}{b}{t}{c}").into_bytes())
}

fn header_value() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(prop_oneof![
        vec(any::<u8>(), 0..64),
        header_like(),
        "[!-~]{1,40}".prop_map(String::into_bytes),
    ])
}

/// A token the parser must accept: 1..=MAX_TOKEN_LEN ASCII-graphic bytes.
fn valid_token() -> impl Strategy<Value = String> {
    prop_oneof![
        "[!-~]{1,64}",
        "sk-[A-Za-z0-9_-]{43}",
        // Up to the limit, by repetition (drawing 16 KiB a character at a time is slow).
        ("[!-~]{1,16}", 0usize..8).prop_map(|(chunk, short)| chunk
            .chars()
            .cycle()
            .take(MAX_TOKEN_LEN - short)
            .collect()),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Never panics; an accepted token is non-empty, ASCII-graphic, at most MAX_TOKEN_LEN
    /// bytes and taken verbatim from one of the headers.
    #[test]
    fn bearer_extract_is_total_and_sound(auth in header_value(), key in header_value()) {
        let got = bearer::extract(auth.as_deref(), key.as_deref());
        match got {
            Ok(t) => {
                prop_assert!(!t.is_empty());
                prop_assert!(t.len() <= MAX_TOKEN_LEN);
                prop_assert!(t.bytes().all(|b| b.is_ascii_graphic()), "{t:?}");
                let from_auth = auth.as_deref().is_some_and(|a| contains(a, t.as_bytes()));
                let from_key = key.as_deref().is_some_and(|k| contains(k, t.as_bytes()));
                prop_assert!(from_auth || from_key, "{t:?} is in neither header");
            }
            Err(BearerError::Missing) => prop_assert!(auth.is_none() && key.is_none()),
            Err(BearerError::Malformed) => prop_assert!(auth.is_some() || key.is_some()),
        }
    }

    /// `Bearer <t>` (any scheme case, padded) and the API-key header give back t exactly,
    /// alone or together.
    #[test]
    fn bearer_round_trips_valid_tokens(
        t in valid_token(),
        scheme in "[bB][eE][aA][rR][eE][rR]",
        pad in "[ \t]{0,2}",
        gap in " {1,3}",
    ) {
        let header = format!("{pad}{scheme}{gap}{t}{pad}");
        prop_assert_eq!(bearer::extract(Some(header.as_bytes()), None), Ok(t.as_str()));
        prop_assert_eq!(bearer::extract(None, Some(t.as_bytes())), Ok(t.as_str()));
        prop_assert_eq!(
            bearer::extract(Some(header.as_bytes()), Some(t.as_bytes())),
            Ok(t.as_str())
        );
    }

    /// Over-long tokens and two different tokens are refused.
    #[test]
    fn bearer_refuses_long_and_conflicting(
        chunk in "[!-~]{1,16}",
        over in 1usize..64,
        a in valid_token(),
        b in valid_token(),
    ) {
        // Past the limit by `over` bytes; built by repetition, since drawing a 16 KiB
        // string character by character makes every case slow.
        let long: String = chunk.chars().cycle().take(MAX_TOKEN_LEN + over).collect();
        let header = format!("Bearer {long}");
        prop_assert_eq!(bearer::extract(Some(header.as_bytes()), None), Err(BearerError::Malformed));
        prop_assert_eq!(bearer::extract(None, Some(long.as_bytes())), Err(BearerError::Malformed));
        let header = format!("Bearer {a}");
        let both = bearer::extract(Some(header.as_bytes()), Some(b.as_bytes()));
        if a == b {
            prop_assert_eq!(both, Ok(a.as_str()));
        } else {
            prop_assert_eq!(both, Err(BearerError::Malformed));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Zone specs
// ---------------------------------------------------------------------------------------

fn zone_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9][a-z0-9_-]{0,8}",
        "[a-z0-9][a-z0-9_-]{0,62}",
        Just("a".repeat(63)),
    ]
}

fn permission() -> impl Strategy<Value = Permission> {
    prop_oneof![
        Just(Permission::Read),
        Just(Permission::Write),
        Just(Permission::ReadWrite),
    ]
}

/// Text close to the spec language: zone-ish words, colons, commas, spaces, odd cases.
fn spec_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9_:, .\t-]{0,40}",
        vec(
            (
                "[a-z0-9_-]{0,6}",
                proptest::option::of("[rwx]{0,3}"),
                "[ \t]{0,1}"
            ),
            0..6
        )
        .prop_map(|items| {
            items
                .into_iter()
                .map(|(z, p, ws)| match p {
                    Some(p) => format!("{ws}{z}:{p}{ws}"),
                    None => format!("{ws}{z}{ws}"),
                })
                .collect::<Vec<_>>()
                .join(",")
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Never panics; whatever parses is valid and survives format → parse unchanged.
    #[test]
    fn zone_spec_parse_is_total_and_stable(s in spec_like()) {
        if let Ok(grants) = parse_zone_spec(&s) {
            prop_assert!(!grants.is_empty());
            for (i, g) in grants.iter().enumerate() {
                prop_assert!(spec::validate_zone_name(&g.zone_id).is_ok(), "{g:?}");
                prop_assert!(grants[..i].iter().all(|h| h.zone_id != g.zone_id), "duplicate");
            }
            let text = format_zone_spec(&grants);
            prop_assert_eq!(parse_zone_spec(&text), Ok(grants));
        }
    }

    /// Specs built from valid parts (bare zones, `wr`, padding) parse to exactly those
    /// grants, and the formatted form parses back to the same.
    #[test]
    fn zone_spec_generated_round_trip(
        items in btree_map(zone_name(), (permission(), 0u8..3, "[ \t]{0,2}"), 1..8),
    ) {
        let mut text = Vec::new();
        let mut want = Vec::new();
        for (zone, (perm, style, ws)) in &items {
            let item = match (perm, style) {
                (Permission::ReadWrite, 0) => zone.clone(),
                (Permission::ReadWrite, 1) => format!("{zone}:wr"),
                _ => format!("{zone}:{perm}"),
            };
            text.push(format!("{ws}{item}{ws}"));
            want.push(ZoneGrant { zone_id: zone.clone(), permission: *perm });
        }
        let text = text.join(",");
        prop_assert_eq!(parse_zone_spec(&text), Ok(want.clone()));
        prop_assert_eq!(parse_zone_spec(&format_zone_spec(&want)), Ok(want));
    }
}

// ---------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------

/// Numbers at the edges of the integer types, where arithmetic in a parser goes wrong.
fn edgy_number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            u32::MAX as u64,
            i64::MAX as u64,
            u64::MAX,
            u64::MAX / 60,
            u64::MAX / 3600,
            u64::MAX / 86400,
            1_000_000_000,
            999_999_999,
        ])
        .prop_map(|n| n.to_string()),
        "[0-9]{18,22}",
        "[0-9]{1,4}\\.[0-9]{1,12}",
    ]
}

/// Text close to humantime's language: numbers with (mostly) known units, several parts.
fn duration_like() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(vec![
        "", "ns", "us", "µs", "ms", "s", "sec", "m", "min", "h", "hr", "d", "days", "w", "M",
        "months", "y", "years", "x",
    ]);
    prop_oneof![
        any::<String>(),
        "[0-9a-zA-Z .µ-]{0,24}",
        vec((edgy_number(), unit, "[ ]{0,1}"), 1..4).prop_map(|parts| {
            parts
                .into_iter()
                .map(|(n, u, ws)| format!("{n}{u}{ws}"))
                .collect::<String>()
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Never panics; an accepted lifetime is between one minute and MAX_EXPIRY.
    #[test]
    fn expiry_parse_is_total_and_bounded(s in duration_like()) {
        if let Ok(d) = parse_expiry(&s) {
            prop_assert!(d >= Duration::from_secs(60), "{s:?} -> {d:?}");
            prop_assert!(d <= MAX_EXPIRY, "{s:?} -> {d:?}");
        }
    }

    /// `Nm`, `Nh`, `Nd` (optionally padded or spelled out) mean exactly N units when that
    /// is within bounds, and are a clean error otherwise.
    #[test]
    fn expiry_units_are_exact(
        n in 1u64..100_000,
        (unit, secs) in prop::sample::select(vec![
            ("m", 60u64), ("min", 60), ("h", 3600), ("hours", 3600), ("d", 86_400), ("days", 86_400),
        ]),
        pad in "[ ]{0,2}",
    ) {
        let text = format!("{pad}{n}{unit}{pad}");
        let want = Duration::from_secs(n * secs);
        let got = parse_expiry(&text);
        if want >= Duration::from_secs(60) && want <= MAX_EXPIRY {
            prop_assert_eq!(got, Ok(want), "{:?}", text);
        } else {
            let e = got.expect_err("out of range");
            prop_assert!(e.0.contains("at most 10 years"), "{:?}: {}", text, e);
        }
    }

    /// A bare number is refused: a unit is required.
    #[test]
    fn expiry_requires_a_unit(n in any::<u64>()) {
        prop_assert!(parse_expiry(&n.to_string()).is_err());
    }
}

/// humantime 2.4 adds the nanosecond carry with `Duration::new` when the seconds are already
/// at `u64::MAX`, which panics ("overflow in Duration::new") instead of returning its
/// overflow error, and `parse_expiry` hands operator text to it (seen in humantime's source
/// while writing the `duration` fuzz target, then reproduced here).
#[test]
fn regression_expiry_overflow_at_u64_max_does_not_panic() {
    for text in [
        "18446744073709551615s1000ms",
        "18446744073709551615s 1000000000ns",
        "18446744073709551615s .5s .5s",
    ] {
        let got = std::panic::catch_unwind(|| parse_expiry(text));
        assert!(
            matches!(got, Ok(Err(_))),
            "{text:?} must be a clean error, not a panic"
        );
    }
}

/// The same panic without any long number: 584 parts of `999999999y` and a few smaller ones
/// add up to exactly `u64::MAX` seconds (no part over 9 digits), then `1000ms` carries.
#[test]
fn regression_expiry_overflow_from_many_short_parts_does_not_panic() {
    let mut text = "999999999y ".repeat(584);
    text.push_str("542046674y 7M 2w 1d 17h 5m 3s 1000ms");
    let got = std::panic::catch_unwind(|| parse_expiry(&text));
    assert!(
        matches!(got, Ok(Err(_))),
        "a {}-byte lifetime must be a clean error, not a panic",
        text.len()
    );
}

// ---------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Never panics; whatever parses is in bounds and survives Display → FromStr.
    #[test]
    fn rate_limit_parse_is_total_and_round_trips(
        s in prop_oneof![
            any::<String>(),
            "[ +-]{0,1}[0-9]{0,11}/(s|sec|m|min|h|hour|d|S|)[ ]{0,1}",
            "[0-9/smhinoure ]{0,12}",
        ],
    ) {
        if let Ok(r) = s.parse::<RateLimit>() {
            prop_assert!((1..=1_000_000).contains(&r.count), "{s:?} -> {r:?}");
            prop_assert!([1, 60, 3600, 86_400].contains(&r.period_secs), "{s:?} -> {r:?}");
            prop_assert_eq!(r.to_string().parse::<RateLimit>(), Ok(r));
        }
    }

    /// Every valid count and unit spelling parses to the right value and prints canonically.
    #[test]
    fn rate_limit_generated_round_trip(
        count in prop_oneof![1u32..=1_000_000, Just(1), Just(1_000_000)],
        (unit, period, canon) in prop::sample::select(vec![
            ("s", 1u32, "s"), ("sec", 1, "s"), ("m", 60, "m"), ("min", 60, "m"),
            ("h", 3600, "h"), ("hour", 3600, "h"), ("d", 86_400, "d"), ("day", 86_400, "d"),
        ]),
    ) {
        let r: RateLimit = format!("{count}/{unit}").parse().expect("valid rate limit");
        prop_assert_eq!(r, RateLimit { count, period_secs: period });
        prop_assert_eq!(r.to_string(), format!("{count}/{canon}"));
    }

    /// Tiers: never panics; whatever parses has 1–4 windows of distinct periods, sorted,
    /// and survives Display → FromStr.
    #[test]
    fn rate_tier_parse_is_total_and_round_trips(
        s in prop_oneof![
            any::<String>(),
            "([0-9]{1,7}/(s|m|h|d|min|hour|day)[ ]{0,1},){0,5}[0-9]{1,7}/(s|m|h|d)",
        ],
    ) {
        if let Ok(t) = s.parse::<RateTier>() {
            let w = t.windows();
            prop_assert!((1..=4).contains(&w.len()), "{s:?} -> {t:?}");
            prop_assert!(w.windows(2).all(|p| p[0].period_secs < p[1].period_secs), "{s:?} -> {t:?}");
            prop_assert_eq!(t.to_string().parse::<RateTier>(), Ok(t));
        }
    }

    /// Counts outside 1..=1_000_000 are refused.
    #[test]
    fn rate_limit_refuses_out_of_range(
        count in prop_oneof![Just(0u64), 1_000_001u64..=u64::MAX],
        unit in "(s|m|h)",
    ) {
        let text = format!("{count}/{unit}");
        prop_assert!(text.parse::<RateLimit>().is_err(), "{:?}", text);
    }
}

// ---------------------------------------------------------------------------------------
// JSON-RPC envelope
// ---------------------------------------------------------------------------------------

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        "(2\\.0|jsonrpc|id|method|params|)".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    btree_map("[a-z_]{0,8}", json_value(), 0..6).prop_map(|m| m.into_iter().collect())
}

/// Objects shaped like requests: each envelope member present or not, right or wrong type,
/// sometimes an extra member.
fn envelope_like() -> impl Strategy<Value = Value> {
    let member = |good: BoxedStrategy<Value>| proptest::option::of(prop_oneof![good, json_value()]);
    (
        member(Just(Value::from("2.0")).boxed()),
        member(
            prop_oneof![
                Just(Value::Null),
                any::<u64>().prop_map(Value::from),
                any::<String>().prop_map(Value::from),
            ]
            .boxed(),
        ),
        member("[a-z_/]{0,16}".prop_map(Value::from).boxed()),
        member(json_object().prop_map(Value::Object).boxed()),
        proptest::option::of(("[a-z]{1,6}", json_value())),
    )
        .prop_map(|(jsonrpc, id, method, params, extra)| {
            let mut obj = Map::new();
            for (k, v) in [
                ("jsonrpc", jsonrpc),
                ("id", id),
                ("method", method),
                ("params", params),
            ] {
                if let Some(v) = v {
                    obj.insert(k.to_owned(), v);
                }
            }
            if let Some((k, v)) = extra {
                obj.insert(k, v);
            }
            Value::Object(obj)
        })
}

/// What serde_json gives back for `v` after a trip through text (floats may not round-trip
/// bit-for-bit, so compare against this rather than against `v`).
fn reparsed(v: &Value) -> Value {
    serde_json::from_slice(&serde_json::to_vec(v).expect("serialise")).expect("reparse")
}

fn is_valid_id(id: &Value) -> bool {
    matches!(id, Value::Null | Value::String(_) | Value::Number(_))
}

fn check_decoded(body: &[u8]) -> Result<(), TestCaseError> {
    match decode_request(body) {
        Ok(req) => {
            prop_assert!(req.params.is_object(), "params {:?}", req.params);
            prop_assert!(is_valid_id(&req.id), "id {:?}", req.id);
        }
        Err((id, e)) => {
            prop_assert!(is_valid_id(&id), "error id {id:?}");
            prop_assert!(e.kind().is_some(), "unknown code {}", e.code);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Never panics on arbitrary bytes; decoded requests and errors are well-formed.
    #[test]
    fn decode_request_total_on_bytes(body in vec(any::<u8>(), 0..256)) {
        check_decoded(&body)?;
    }

    /// Never panics on any JSON value; when a request decodes, id and method are exactly
    /// what was sent and params is an object.
    #[test]
    fn decode_request_total_on_json(v in prop_oneof![json_value(), envelope_like()]) {
        let body = serde_json::to_vec(&v).expect("serialise");
        check_decoded(&body)?;
        if let (Ok(req), Value::Object(sent)) = (decode_request(&body), reparsed(&v)) {
            prop_assert_eq!(&req.id, sent.get("id").unwrap_or(&Value::Null));
            prop_assert_eq!(req.method.as_deref(), sent.get("method").and_then(Value::as_str));
            match sent.get("params") {
                None | Some(Value::Null) => prop_assert_eq!(req.params, Value::Object(Map::new())),
                Some(p) => prop_assert_eq!(&req.params, p),
            }
        }
    }

    /// What `encode_request` writes always decodes with the same id, method and params.
    #[test]
    fn encode_request_round_trips(id in any::<u64>(), method in any::<String>(), params in json_object()) {
        let params = Value::Object(params);
        let body = serde_json::to_vec(&encode_request(id, &method, &params)).expect("serialise");
        let req = decode_request(&body).map_err(|(_, e)| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(req.id, Value::from(id));
        prop_assert_eq!(req.method, Some(method));
        prop_assert_eq!(req.params, reparsed(&params));
    }
}

/// `printable` (used on every echoed error) never panics and stays short.
#[test]
fn printable_is_bounded() {
    proptest!(config(), |(s in any::<String>())| {
        let p = jsonrpc::printable(&s);
        prop_assert!(p.chars().count() <= 65);
        prop_assert!(!p.chars().any(char::is_control));
    });
}

// ---------------------------------------------------------------------------------------
// Method names
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Text from outside is a method only when it is exactly a method's name, and its
    /// label and path are always that method's.
    #[test]
    fn only_exact_names_are_methods(name in prop_oneof![
        "[a-z_]{1,24}",
        proptest::sample::select(nexus_wire::Method::ALL).prop_map(|m| m.as_str().to_owned()),
        proptest::sample::select(nexus_wire::Method::ALL)
            .prop_map(|m| format!("{} ", m.as_str())),
    ]) {
        let label = nexus_wire::methods::method_label(&name);
        match nexus_wire::Method::parse(&name) {
            Some(m) => {
                prop_assert_eq!(m.as_str(), name.as_str());
                prop_assert_eq!(label, m.as_str());
                prop_assert_eq!(
                    nexus_wire::rpc_path(m),
                    format!("{}{}", nexus_wire::RPC_PREFIX, name)
                );
            }
            None => prop_assert_eq!(label, "other"),
        }
    }
}
