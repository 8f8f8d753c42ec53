//! `nexus admin set-password` and `nexus hub keys …`: the local provider's passwords and
//! login-token signing keys (SPEC §10), on the hub's database like the other local
//! commands. The hashing, sealing and rotation rules are the server's own
//! (`rpc_server::auth::local`), so a password set here verifies there and a key made here
//! signs there.

use super::hub::{connect, db_url, secret_for};
use crate::cli::{KeysCommand, LocalArgs, SetPasswordArgs};
use crate::error::CliError;
use crate::output;
use chrono::Utc;
use nexus_providers::password::MAX_PASSWORD_BYTES;
use nexus_providers::permissions::{Perm, Perms};
use rpc_server::auth::TokenHasher;
use rpc_server::auth::local::{change_password, check_username, create_user, rotate_stored_key};
use rpc_server::db::{SigningKeyRecord, Store, StoreError};
use secrecy::{ExposeSecret, SecretString};
use std::io::{BufRead, IsTerminal, Read, Write};

pub async fn set_password(
    local: &LocalArgs,
    a: SetPasswordArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if a.target.remote.is_some() {
        return Err(CliError::with_code(
            "set-password has no remote form (no admin tool sets a password): run it on the hub host with NEXUS_DATABASE_URL",
            2,
        ));
    }
    check_username(&a.username).map_err(|e| CliError::with_code(e.to_string(), 2))?;
    let new_user = if a.create {
        Some(new_user_grants(&a)?)
    } else {
        None
    };
    let store = connect(db_url(local.database_url.as_ref())?).await?;
    // Before asking: an unknown user (or, to create, a known one) is refused without a
    // prompt.
    let known = store
        .find_local_user(&a.username)
        .await
        .map_err(|e| CliError::new(format!("cannot read users: {e}")))?;
    match (&known, &new_user) {
        (None, None) => {
            return Err(CliError::new(format!(
                "no local user {:?}: create it with `nexus admin set-password {} --create` (nothing changed)",
                a.username, a.username
            )));
        }
        (Some(_), Some(_)) => {
            return Err(CliError::new(format!(
                "the local user {:?} exists: without --create, set-password changes its password (nothing changed)",
                a.username
            )));
        }
        _ => {}
    }
    let stdin = std::io::stdin();
    let pw = if stdin.is_terminal() {
        prompt_twice(&a.username)?
    } else {
        first_line(&mut stdin.lock())?
    };
    if let Some((perms, zones)) = new_user {
        return match create_user(&store, &a.username, pw, perms, &zones).await {
            Ok(()) => output::line(
                out,
                &format!(
                    "✓ Local user created: {} ({}; {}); it signs in with POST /auth/login or in an MCP client's browser login",
                    a.username,
                    perms.names().join(","),
                    if zones.is_empty() {
                        "no zones: its roles, groups and tuples decide".to_owned()
                    } else {
                        format!("zones {zones}")
                    }
                ),
            ),
            Err(StoreError::SubjectExists(_)) => Err(CliError::new(format!(
                "the local user {:?} exists (nothing changed)",
                a.username
            ))),
            Err(StoreError::Invalid(m)) => Err(CliError::new(format!("{m} (nothing changed)"))),
            Err(e) => Err(CliError::new(format!("cannot create the user: {e}"))),
        };
    }
    match change_password(&store, &a.username, pw).await {
        Ok(()) => output::line(
            out,
            &format!(
                "✓ Password set for {}; its sessions ended (login and refresh tokens are refused)",
                a.username
            ),
        ),
        Err(StoreError::NotFound) => Err(CliError::new(format!(
            "no local user {:?} (nothing changed)",
            a.username
        ))),
        Err(StoreError::Invalid(m)) => Err(CliError::new(format!("{m} (nothing changed)"))),
        Err(e) => Err(CliError::new(format!("cannot set the password: {e}"))),
    }
}

/// The permissions (READ when none are named; SUPER is root's alone) and zones of a user
/// to create, checked before anything is asked or written.
fn new_user_grants(a: &SetPasswordArgs) -> Result<(Perms, String), CliError> {
    let names: Vec<&str> = if a.permissions.is_empty() {
        vec!["READ"]
    } else {
        a.permissions.iter().map(|p| p.trim()).collect()
    };
    let perms = Perms::parse(&names)
        .map_err(|_| CliError::with_code("--permissions are READ, WRITE and ADMIN", 2))?;
    if perms.allows(Perm::Super) {
        return Err(CliError::with_code(
            "--permissions: SUPER is the root user's alone",
            2,
        ));
    }
    let zones = a.zones.clone().unwrap_or_default();
    if !zones.is_empty() {
        nexus_wire::spec::parse_zone_spec(&zones)
            .map_err(|e| CliError::with_code(format!("--zones: {e}"), 2))?;
    }
    Ok((perms, zones))
}

/// A terminal: asked twice without echo.
fn prompt_twice(username: &str) -> Result<SecretString, CliError> {
    let ask = |p: &str| {
        rpassword::prompt_password(p)
            .map(SecretString::from)
            .map_err(|e| CliError::new(format!("cannot read the password: {e}")))
    };
    let first = ask(&format!("New password for {username}: "))?;
    checked(&first)?;
    let again = ask("Again: ")?;
    // Both typed by the person at the terminal: no secret is compared against input
    // from anyone else, so a plain comparison tells an attacker nothing.
    if first.expose_secret() != again.expose_secret() {
        return Err(CliError::new("the two passwords differ (nothing changed)"));
    }
    Ok(first)
}

/// Standard input that is not a terminal: its first line, the line end dropped; read
/// with a bound so a stream without newlines cannot grow without end.
pub(crate) fn first_line(r: &mut dyn BufRead) -> Result<SecretString, CliError> {
    let mut buf = Vec::new();
    r.take(MAX_PASSWORD_BYTES as u64 + 3)
        .read_until(b'\n', &mut buf)
        .map_err(|e| CliError::new(format!("cannot read the password from stdin: {e}")))?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    let s = String::from_utf8(buf)
        .map_err(|_| CliError::new("the password must be UTF-8 (nothing changed)"))?;
    let pw = SecretString::from(s);
    checked(&pw)?;
    Ok(pw)
}

fn checked(pw: &SecretString) -> Result<(), CliError> {
    let n = pw.expose_secret().len();
    if n == 0 {
        return Err(CliError::new("the password is empty (nothing changed)"));
    }
    if n > MAX_PASSWORD_BYTES {
        return Err(CliError::new(format!(
            "the password is longer than {MAX_PASSWORD_BYTES} bytes (nothing changed)"
        )));
    }
    Ok(())
}

/// A signing key as listed: never key material.
#[derive(serde::Serialize)]
struct KeyInfo {
    kid: String,
    /// active, retired (still verifying) or expired (verifies nothing).
    state: &'static str,
    created_at: String,
    not_after: Option<String>,
}

fn info(k: &SigningKeyRecord) -> KeyInfo {
    let state = match (k.state.as_str(), k.not_after) {
        ("active", _) => "active",
        (_, Some(t)) if t > Utc::now() => "retired",
        _ => "expired",
    };
    KeyInfo {
        kid: k.kid.clone(),
        state,
        created_at: rpc_server::control::ts(k.created_at),
        not_after: k.not_after.map(rpc_server::control::ts),
    }
}

async fn keys(store: &Store) -> Result<Vec<KeyInfo>, CliError> {
    let rows = store
        .signing_keys(Utc::now(), true)
        .await
        .map_err(|e| CliError::new(format!("cannot read signing keys: {e}")))?;
    Ok(rows.iter().map(info).collect())
}

pub async fn run_keys(
    url: Option<&SecretString>,
    k: KeysCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let url = db_url(url)?;
    match k {
        KeysCommand::List { json } => {
            let list = keys(&connect(url).await?).await?;
            if json {
                return output::json(out, &list);
            }
            if list.is_empty() {
                return output::line(
                    out,
                    "no signing keys (nexusd makes the first when it starts with the local provider)",
                );
            }
            let rows: Vec<Vec<String>> = list
                .into_iter()
                .map(|k| {
                    vec![
                        k.kid,
                        k.state.into(),
                        k.created_at,
                        k.not_after.unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            output::table(out, &["KID", "STATE", "CREATED", "NOT_AFTER"], &rows)
        }
        KeysCommand::Rotate { force, json } => {
            let secret = secret_for(url.expose_secret()).ok_or_else(|| {
                CliError::new(
                    "the servers' NEXUS_API_KEY_SECRET is needed: it seals the new key (nothing changed)",
                )
            })?;
            let hasher = TokenHasher::new(&secret).map_err(|e| CliError::new(e.to_string()))?;
            let store = connect(url).await?;
            let kid = rotate_stored_key(&store, &hasher, force)
                .await
                .map_err(|e| CliError::new(format!("{e:#} (nothing changed)")))?;
            let list = keys(&store).await?;
            if json {
                let active = list.iter().find(|k| k.kid == kid);
                return output::json(out, &active);
            }
            output::line(
                out,
                &format!(
                    "✓ New signing key: {kid}. Tokens signed before keep verifying until they expire; running servers sign with it from their next login."
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of(input: &[u8]) -> Result<String, CliError> {
        first_line(&mut &input[..]).map(|s| s.expose_secret().to_owned())
    }

    #[test]
    fn stdin_gives_its_first_line_without_the_line_end() {
        assert_eq!(line_of(b"s3cret pass\n").expect("ok"), "s3cret pass");
        assert_eq!(line_of(b"s3cret\r\nignored\n").expect("ok"), "s3cret");
        assert_eq!(line_of(b"no newline").expect("ok"), "no newline");
        assert_eq!(line_of(b" spaces kept \n").expect("ok"), " spaces kept ");
    }

    #[test]
    fn empty_oversized_and_non_utf8_input_is_refused() {
        assert!(line_of(b"").is_err());
        assert!(line_of(b"\n").is_err());
        assert!(line_of(b"\r\n").is_err());
        assert!(line_of(&vec![b'p'; MAX_PASSWORD_BYTES]).is_ok());
        assert!(line_of(&vec![b'p'; MAX_PASSWORD_BYTES + 1]).is_err());
        // Bounded read: a stream without a newline is cut, then refused as too long.
        assert!(line_of(&vec![b'p'; 10 * MAX_PASSWORD_BYTES]).is_err());
        assert!(line_of(b"\xff\xfe\n").is_err());
    }
}
