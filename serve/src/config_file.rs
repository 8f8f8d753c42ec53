//! The configuration file (`--config nexus-hub.toml`): one section per program (`[rpc]`
//! for nexusd / `nexus serve`, `[mcp]` for `nexus mcp serve`), keys named as the flags
//! (`allowed_hosts` for `--allowed-hosts`). Precedence is defaults < file < environment <
//! flags: a file value is used only where neither a flag nor an environment variable gave
//! one, by handing it to clap as if typed, so it is validated exactly like a flag.
//!
//! `[auth]` is nexusd's auth provider chain (SPEC §10): `type`, and `config` (an auth
//! file) or the providers' tables inline. It is read as a whole by [`read_auth`], not as
//! flags, and only when neither `--auth-type` nor `--auth-config` was given.
//!
//! `[oauth]` is the hub as the MCP clients' OAuth server (SPEC §11), for both programs:
//! `issuer`, `dcr` and the Client ID Metadata Document keys (`cimd`, `cimd_allow_hosts`,
//! `cimd_allow_private`, `cimd_ca_file`) are nexusd's `oauth_*` flags, and an `issuer` turns
//! on the frontend's relay (`oauth`). Each may be named once: in `[oauth]` or in its
//! program's section.

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};
use std::ffi::OsString;
use std::path::Path;

/// Keys that hold secrets: accepted only from a file readable by its owner alone.
const SECRET_KEYS: &[&str] = &["database_url", "redis_url"];

/// Reads `section` of a TOML file as `(key, value as flag text)` pairs.
pub fn read_section(path: &Path, section: &str) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    for k in doc.keys() {
        if !["rpc", "mcp", "auth", "oauth"].contains(&k.as_str()) {
            bail!(
                "{}: unknown section [{k}] (use [rpc], [mcp], [auth] and [oauth])",
                path.display()
            );
        }
    }
    let empty = toml::Table::new();
    let table = match doc.get(section) {
        None => &empty,
        Some(toml::Value::Table(t)) => t,
        Some(_) => bail!("{}: [{section}] must be a table", path.display()),
    };
    let table = &with_oauth(path, &doc, section, table)?;
    let mut out = Vec::new();
    for (k, v) in table {
        if SECRET_KEYS.contains(&k.as_str()) {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "{} holds {k} but is readable by others (mode {mode:o}); chmod 600 it",
                    path.display()
                );
            }
        }
        let text = match v {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Integer(i) => Some(i.to_string()),
            toml::Value::Float(f) => Some(f.to_string()),
            toml::Value::Boolean(b) => Some(b.to_string()),
            toml::Value::Array(items) => {
                let parts: Option<Vec<String>> = items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect();
                match parts {
                    Some(p) => Some(p.join(",")),
                    None => bail!(
                        "{}: [{section}] {k} must be a list of strings",
                        path.display()
                    ),
                }
            }
            _ => bail!(
                "{}: [{section}] {k} has an unsupported type",
                path.display()
            ),
        };
        out.push((k.clone(), text));
    }
    Ok(out)
}

/// `[oauth]`'s keys and the nexusd flags they stand for.
const RPC_OAUTH_KEYS: &[(&str, &str)] = &[
    ("issuer", "oauth_issuer"),
    ("dcr", "oauth_dcr"),
    ("cimd", "oauth_cimd"),
    ("cimd_allow_hosts", "oauth_cimd_allow_hosts"),
    ("cimd_allow_private", "oauth_cimd_allow_private"),
    ("cimd_ca_file", "oauth_cimd_ca_file"),
];

/// `section` with what `[oauth]` says for its program added, as that program's keys.
fn with_oauth(
    path: &Path,
    doc: &toml::Table,
    section: &str,
    table: &toml::Table,
) -> anyhow::Result<toml::Table> {
    let mut out = table.clone();
    let Some(oauth) = doc.get("oauth") else {
        return Ok(out);
    };
    let Some(oauth) = oauth.as_table() else {
        bail!("{}: [oauth] must be a table", path.display())
    };
    for k in oauth.keys() {
        if !RPC_OAUTH_KEYS.iter().any(|(from, _)| from == k) {
            bail!(
                "{}: [oauth] has unknown key {k:?} (use issuer, dcr, cimd, cimd_allow_hosts, cimd_allow_private, cimd_ca_file)",
                path.display()
            );
        }
    }
    let keys: &[(&str, &str)] = match section {
        "rpc" => RPC_OAUTH_KEYS,
        "mcp" => &[("issuer", "oauth")],
        _ => &[],
    };
    for (from, to) in keys {
        let Some(v) = oauth.get(*from) else { continue };
        if out.contains_key(*to) {
            bail!(
                "{}: [oauth] {from} and [{section}] {to} say the same thing; keep one",
                path.display()
            );
        }
        let v = if *to == "oauth" {
            toml::Value::Boolean(true)
        } else {
            v.clone()
        };
        out.insert((*to).to_owned(), v);
    }
    Ok(out)
}

/// The `[auth]` table of a configuration file, if it has one. The chain is named in one
/// place: `auth_type` or `auth_config` under `[rpc]` beside an `[auth]` section is an error.
pub fn read_auth(path: &Path) -> anyhow::Result<Option<toml::Table>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut doc: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    let Some(auth) = doc.remove("auth") else {
        return Ok(None);
    };
    let toml::Value::Table(auth) = auth else {
        bail!("{}: [auth] must be a table", path.display())
    };
    if let Some(rpc) = doc.get("rpc").and_then(toml::Value::as_table)
        && (rpc.contains_key("auth_type") || rpc.contains_key("auth_config"))
    {
        bail!(
            "{}: the auth chain is named twice ([rpc] auth_type/auth_config and [auth]); keep [auth]",
            path.display()
        );
    }
    Ok(Some(auth))
}

/// Parses `argv` for `cmd` (whose leaf subcommand is `path`), filling from the file's
/// `section` every argument that was left at its default. Unknown keys are errors.
pub fn parse_with_file(
    cmd: &Command,
    argv: &[OsString],
    leaf: &[&str],
    section: &str,
    file: &Path,
) -> anyhow::Result<ArgMatches> {
    parse_with_file_sources(cmd, argv, leaf, section, file).map(|(m, _)| m)
}

/// As [`parse_with_file`], also returning the argument ids the file supplied.
pub fn parse_with_file_sources(
    cmd: &Command,
    argv: &[OsString],
    leaf: &[&str],
    section: &str,
    file: &Path,
) -> anyhow::Result<(ArgMatches, Vec<String>)> {
    let first = cmd.clone().try_get_matches_from(argv)?;
    let mut sub = &first;
    let mut leaf_cmd = cmd;
    for name in leaf {
        sub = sub
            .subcommand_matches(name)
            .with_context(|| format!("expected `{name}`"))?;
        leaf_cmd = leaf_cmd
            .find_subcommand(name)
            .with_context(|| format!("no subcommand {name}"))?;
    }
    let mut extra: Vec<OsString> = Vec::new();
    let mut from_file = Vec::new();
    for (key, value) in read_section(file, section)? {
        let Some(arg) = leaf_cmd
            .get_arguments()
            .find(|a| a.get_id().as_str() == key)
        else {
            bail!("{}: [{section}] has unknown key {key:?}", file.display());
        };
        let Some(long) = arg.get_long() else {
            bail!(
                "{}: [{section}] {key:?} cannot be set from a file",
                file.display()
            )
        };
        if matches!(
            sub.value_source(&key),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let takes_value = arg.get_action().takes_values();
        match value {
            Some(v) if takes_value => {
                extra.push(format!("--{long}").into());
                extra.push(v.into());
                from_file.push(key);
            }
            Some(v) if v == "true" => {
                extra.push(format!("--{long}").into());
                from_file.push(key);
            }
            Some(_) => {}
            None => {}
        }
    }
    let mut all = argv.to_vec();
    all.extend(extra);
    Ok((cmd.clone().try_get_matches_from(all)?, from_file))
}

// Tested with the rpc-server's own arguments, in rpc-server/src/config.rs.
