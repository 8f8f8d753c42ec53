//! Text and `--json` renderings. JSON output is exactly the admin RPC result, so scripts
//! can switch between local and remote mode without changes.

use crate::error::CliError;
use nexus_wire::methods::{
    HubStatus, RebacCheckResult, RebacExpandResult, RebacTuples, TokenCreated, TokenInfo,
    TupleInfo, UserCreated, UserDeleted, UserInfo, ZoneInfo,
};
use nexus_wire::spec::format_zone_spec;
use serde::Serialize;
use std::io::Write;

fn io(e: std::io::Error) -> CliError {
    CliError::new(format!("cannot write output: {e}"))
}

pub fn line(out: &mut dyn Write, s: &str) -> Result<(), CliError> {
    writeln!(out, "{s}").map_err(io)
}

pub fn json<T: Serialize>(out: &mut dyn Write, v: &T) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(|e| CliError::new(e.to_string()))?;
    line(out, &s)
}

fn zones_text(admin: bool, zones: &[nexus_wire::spec::ZoneGrant]) -> String {
    match (admin, zones.is_empty()) {
        (true, true) => "* (admin: every zone)".into(),
        (_, true) => "-".into(),
        _ => format_zone_spec(zones),
    }
}

pub fn token_created(out: &mut dyn Write, t: &TokenCreated, as_json: bool) -> Result<(), CliError> {
    if as_json {
        json(out, t)?;
    } else {
        line(out, &format!("key_id: {}", t.key_id))?;
        line(out, &format!("token: {}", t.token))?;
        line(out, &format!("name: {}", t.name))?;
        line(out, &format!("admin: {}", t.admin))?;
        line(out, &format!("zones: {}", zones_text(t.admin, &t.zones)))?;
        line(
            out,
            &format!("expires_at: {}", t.expires_at.as_deref().unwrap_or("never")),
        )?;
    }
    eprintln!("warning: the token is shown once and cannot be retrieved later; store it now");
    Ok(())
}

pub(crate) fn table(
    out: &mut dyn Write,
    header: &[&str],
    rows: &[Vec<String>],
) -> Result<(), CliError> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let fmt_row = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s
    };
    line(out, &fmt_row(header.to_vec()))?;
    for r in rows {
        line(out, &fmt_row(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

pub fn token_list(
    out: &mut dyn Write,
    tokens: &[TokenInfo],
    as_json: bool,
) -> Result<(), CliError> {
    if as_json {
        return json(out, &tokens);
    }
    if tokens.is_empty() {
        return line(out, "no tokens");
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.key_id.clone(),
                t.name.clone(),
                t.kind.clone().unwrap_or_else(|| "key".into()),
                t.oauth_client_name
                    .clone()
                    .or_else(|| t.oauth_client.clone())
                    .unwrap_or_else(|| "-".into()),
                t.status.clone(),
                if t.admin { "yes" } else { "no" }.into(),
                zones_text(t.admin, &t.zones),
                t.expires_at.clone().unwrap_or_else(|| "never".into()),
                t.last_used_at.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        out,
        &[
            "KEY_ID",
            "NAME",
            "KIND",
            "CLIENT",
            "STATUS",
            "ADMIN",
            "ZONES",
            "EXPIRES",
            "LAST_USED",
        ],
        &rows,
    )
}

/// `hub oauth clients list`: one line per client, or the JSON array.
pub fn oauth_clients(
    out: &mut dyn Write,
    clients: &[nexus_wire::methods::OAuthClientInfo],
    as_json: bool,
) -> Result<(), CliError> {
    if as_json {
        return json(out, &clients);
    }
    if clients.is_empty() {
        return line(out, "no OAuth clients");
    }
    for c in clients {
        line(
            out,
            &format!(
                "{}  {}  {:?}  {}  tokens: {}  created: {}",
                c.client_id, c.kind, c.client_name, c.status, c.active_tokens, c.created_at
            ),
        )?;
    }
    Ok(())
}

pub fn token_revoked(out: &mut dyn Write, info: &TokenInfo, as_json: bool) -> Result<(), CliError> {
    if as_json {
        json(out, info)
    } else {
        line(out, &format!("revoked: {} ({})", info.name, info.key_id))
    }
}

pub fn token_zones(out: &mut dyn Write, t: &TokenInfo, as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(out, &t.zones);
    }
    line(
        out,
        &format!(
            "{} ({}): {}",
            t.name,
            t.key_id,
            zones_text(t.admin, &t.zones)
        ),
    )
}

pub fn zone_list(out: &mut dyn Write, zones: &[ZoneInfo], as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(out, &zones);
    }
    if zones.is_empty() {
        return line(out, "no zones");
    }
    let rows: Vec<Vec<String>> = zones
        .iter()
        .map(|z| {
            vec![
                z.zone_id.clone(),
                z.status.clone(),
                z.access_mode.clone(),
                z.tokens.to_string(),
                z.created_at.clone(),
            ]
        })
        .collect();
    table(
        out,
        &["ZONE", "STATUS", "ACCESS", "TOKENS", "CREATED"],
        &rows,
    )
}

pub fn status(out: &mut dyn Write, s: &HubStatus, as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(out, s);
    }
    let na = || "n/a".to_string();
    line(
        out,
        &format!("endpoint: {}", s.endpoint.clone().unwrap_or_else(na)),
    )?;
    line(out, &format!("profile: {}", s.profile))?;
    line(out, &format!("postgres: {}", s.postgres))?;
    if s.postgres == "n/a" {
        line(out, &format!("database: {} (sqlite)", s.database))?;
    }
    line(out, &format!("redis: {}", s.redis))?;
    if let Some(b) = &s.bus {
        let state = if b.connected { "ok" } else { "err" };
        let why = b
            .last_error
            .as_ref()
            .filter(|_| !b.connected)
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        line(out, &format!("bus: {state} ({}){why}", b.backend))?;
    }
    if let Some(nodes) = &s.nodes {
        line(out, &format!("nodes: {}", nodes.len()))?;
        for n in nodes {
            line(
                out,
                &format!(
                    "  {}  {}  {}  last heartbeat {}",
                    n.name, n.role, n.version, n.last_heartbeat
                ),
            )?;
        }
    }
    let tokens = s
        .tokens
        .as_ref()
        .map(|t| {
            format!(
                "{} active, {} revoked, {} expired",
                t.active, t.revoked, t.expired
            )
        })
        .unwrap_or_else(na);
    line(out, &format!("tokens: {tokens}"))?;
    if let (Some(subjects), Some(tuples)) = (s.subjects, s.tuples) {
        line(out, &format!("subjects: {subjects}"))?;
        line(out, &format!("tuples: {tuples}"))?;
    }
    line(
        out,
        &format!(
            "connections: {}",
            s.connections.map(|c| c.to_string()).unwrap_or_else(na)
        ),
    )?;
    line(
        out,
        &format!(
            "qps (5m): {}",
            s.qps_5m.map(|q| format!("{q:.2}")).unwrap_or_else(na)
        ),
    )?;
    if let Some(d) = &s.detail {
        line(out, "zones (5m):")?;
        if d.zones.is_empty() {
            line(out, "  none seen")?;
        }
        for z in &d.zones {
            line(
                out,
                &format!("  {}: {} clients, {:.2} qps", z.zone, z.clients, z.qps_5m),
            )?;
        }
        line(out, "tokens last seen:")?;
        if d.tokens.is_empty() {
            line(out, "  none seen")?;
        }
        for t in &d.tokens {
            let name = t.name.as_deref().unwrap_or("?");
            line(out, &format!("  {name} ({}): {}", t.key_id, t.last_seen))?;
        }
        let rl: Vec<String> = d
            .rate_limited
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let rl = if rl.is_empty() {
            "none".to_owned()
        } else {
            rl.join(", ")
        };
        line(out, &format!("rate-limit rejections: {rl}"))?;
    }
    Ok(())
}

// ---- subjects and tuples: the shapes of the operator guide (✓/✗, bullets) ----

fn api_key_lines(out: &mut dyn Write, key: &TokenCreated) -> Result<(), CliError> {
    line(out, &format!("✓ API key: {}", key.token))?;
    if !key.zones.is_empty() {
        line(out, &format!("  zones: {}", format_zone_spec(&key.zones)))?;
    }
    if let Some(e) = &key.expires_at {
        line(out, &format!("  expires: {e}"))?;
    }
    Ok(())
}

pub fn user_created(out: &mut dyn Write, u: &UserCreated, as_json: bool) -> Result<(), CliError> {
    if as_json {
        json(out, u)?;
    } else {
        line(out, &format!("✓ User created: {}", u.user.subject_id))?;
        if let Some(key) = &u.key {
            api_key_lines(out, key)?;
            line(
                out,
                &format!("Save this API key for {}!", u.user.subject_id),
            )?;
        }
    }
    if u.key.is_some() {
        eprintln!("warning: the key is shown once and cannot be retrieved later; store it now");
    }
    Ok(())
}

pub fn agent_key_created(
    out: &mut dyn Write,
    u: &UserCreated,
    as_json: bool,
) -> Result<(), CliError> {
    if as_json {
        json(out, u)?;
    } else {
        line(out, "✓ Agent key created")?;
        if let Some(key) = &u.key {
            api_key_lines(out, key)?;
        }
    }
    eprintln!("warning: the key is shown once and cannot be retrieved later; store it now");
    Ok(())
}

fn disabled_mark(u: &UserInfo) -> &'static str {
    if u.disabled_at.is_some() {
        " [disabled]"
    } else {
        ""
    }
}

pub fn user_list(out: &mut dyn Write, users: &[UserInfo], as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(out, &users);
    }
    if users.is_empty() {
        return line(out, "no users");
    }
    line(out, "Users:")?;
    for u in users {
        line(
            out,
            &format!(
                "  • {} ({}) - tenant: {}{}",
                u.subject_id,
                u.subject_type.as_str(),
                u.tenant_id,
                disabled_mark(u)
            ),
        )?;
    }
    Ok(())
}

pub fn agent_list(out: &mut dyn Write, agents: &[UserInfo], as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(out, &agents);
    }
    if agents.is_empty() {
        return line(out, "no agents");
    }
    line(out, "Agents:")?;
    for a in agents {
        let name = if a.display_name.is_empty() {
            &a.subject_id
        } else {
            &a.display_name
        };
        let owner = a
            .owner_id
            .as_deref()
            .map(|o| format!(" (owner: {o})"))
            .unwrap_or_default();
        line(
            out,
            &format!("  • {} - {name}{owner}{}", a.subject_id, disabled_mark(a)),
        )?;
    }
    Ok(())
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn user_deleted(out: &mut dyn Write, d: &UserDeleted, as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(out, d);
    }
    line(
        out,
        &format!(
            "✓ User deleted: {} ({} revoked, {} removed)",
            d.user.subject_id,
            plural(d.tokens_revoked, "token", "tokens"),
            plural(d.tuples_removed, "tuple", "tuples"),
        ),
    )
}

pub fn user_state(out: &mut dyn Write, u: &UserInfo, as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(out, u);
    }
    if u.disabled_at.is_some() {
        line(
            out,
            &format!(
                "✓ User disabled: {} (its tokens are refused until it is enabled)",
                u.subject_id
            ),
        )
    } else {
        line(out, &format!("✓ User enabled: {}", u.subject_id))
    }
}

fn tuple_text(t: &TupleInfo) -> String {
    let mut s = format!("{} {} {}", t.subject, t.relation, t.object);
    if t.expired {
        s.push_str(" (expired)");
    } else if let Some(e) = &t.expires_at {
        s.push_str(&format!(" (until {e})"));
    }
    s
}

pub fn tuple_written(
    out: &mut dyn Write,
    verb: &str,
    t: &TupleInfo,
    as_json: bool,
) -> Result<(), CliError> {
    if as_json {
        return json(out, t);
    }
    line(out, &format!("✓ {verb}: {}", tuple_text(t)))
}

pub fn check(
    out: &mut dyn Write,
    r: &RebacCheckResult,
    explain: bool,
    as_json: bool,
) -> Result<(), CliError> {
    if as_json {
        return json(out, r);
    }
    let (mark, word) = if r.allowed {
        ("✓", "Allowed")
    } else {
        ("✗", "Denied")
    };
    line(
        out,
        &format!("{mark} {word}: {} {} {}", r.subject, r.relation, r.object),
    )?;
    if explain {
        line(out, &format!("  reason: {}", r.reason))?;
        if r.because.is_empty() {
            if !r.allowed {
                line(out, "  no live tuple grants it")?;
            }
        } else {
            line(out, "  because:")?;
            for t in &r.because {
                line(out, &format!("    {}", tuple_text(t)))?;
            }
        }
    }
    Ok(())
}

pub fn tuple_list(
    out: &mut dyn Write,
    subject: Option<&str>,
    r: &RebacTuples,
    as_json: bool,
) -> Result<(), CliError> {
    if as_json {
        return json(out, r);
    }
    let suffix = |t: &TupleInfo| {
        if t.expired {
            " (expired)".to_owned()
        } else {
            t.expires_at
                .as_deref()
                .map(|e| format!(" (until {e})"))
                .unwrap_or_default()
        }
    };
    match subject {
        Some(s) => {
            line(out, &format!("Permissions for {s}:"))?;
            for t in &r.tuples {
                line(
                    out,
                    &format!("  • {} → {}{}", t.relation, t.object, suffix(t)),
                )?;
            }
        }
        None => {
            line(out, "Tuples:")?;
            for t in &r.tuples {
                line(
                    out,
                    &format!(
                        "  • {} {} → {}{}",
                        t.subject,
                        t.relation,
                        t.object,
                        suffix(t)
                    ),
                )?;
            }
        }
    }
    if r.tuples.is_empty() {
        line(out, "  (none)")?;
    }
    if r.truncated {
        line(
            out,
            "  … more: the listing stopped at the server's cap; narrow it with --object, --relation or --zone",
        )?;
    }
    Ok(())
}

pub fn expand(out: &mut dyn Write, r: &RebacExpandResult, as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(out, r);
    }
    line(out, &format!("Who has {} on {}:", r.relation, r.object))?;
    if r.subjects.is_empty() {
        line(out, "  (nobody)")?;
    }
    for e in &r.subjects {
        line(out, &format!("  • {}", e.subject))?;
        for t in &e.because {
            line(out, &format!("      {}", tuple_text(t)))?;
        }
    }
    Ok(())
}
