//! Text and `--json` renderings. JSON output is exactly the admin RPC result, so scripts
//! can switch between local and remote mode without changes.

use crate::error::CliError;
use nexus_wire::methods::{HubStatus, TokenCreated, TokenInfo, ZoneInfo};
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

fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> Result<(), CliError> {
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
            "STATUS",
            "ADMIN",
            "ZONES",
            "EXPIRES",
            "LAST_USED",
        ],
        &rows,
    )
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
                z.tokens.to_string(),
                z.created_at.clone(),
            ]
        })
        .collect();
    table(out, &["ZONE", "STATUS", "TOKENS", "CREATED"], &rows)
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
