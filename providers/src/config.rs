//! The auth configuration (SPEC §10): which providers form the chain (`--auth-type`, a
//! comma list) and each provider's settings (`--auth-config FILE`, YAML, one top-level key
//! per provider holding the seed's own dict for it; with a single provider the bare dict
//! is accepted too), or the same under `[auth]` in the TOML configuration file.
//!
//! Everything is checked here, before a server starts: an unknown key, a provider named
//! in the chain without settings, or settings for a provider not in the chain is an error
//! that names the key.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// One provider of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthType {
    /// `sk-…` keys minted by `nexus hub token create`, digests in the database.
    Database,
    /// `sk-…` keys listed in the auth file.
    Static,
    /// Users with passwords; `POST /auth/login` issues the hub's own JWTs.
    Local,
    /// JWT access tokens of one OpenID provider.
    Oidc,
    /// JWT access tokens of several OpenID providers, picked by `iss`.
    MultiOidc,
}

impl AuthType {
    pub const ALL: [Self; 5] = [
        Self::Database,
        Self::Static,
        Self::Local,
        Self::Oidc,
        Self::MultiOidc,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Static => "static",
            Self::Local => "local",
            Self::Oidc => "oidc",
            Self::MultiOidc => "multi-oidc",
        }
    }

    /// Parses `database,static,local`: order kept, repeats refused.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, ConfigError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let t = Self::ALL
                .into_iter()
                .find(|t| t.as_str() == part)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "unknown auth type {part:?} (use database, static, local, oidc or multi-oidc)"
                    ))
                })?;
            if out.contains(&t) {
                return Err(ConfigError(format!("auth type {part:?} is given twice")));
            }
            out.push(t);
        }
        if out.is_empty() {
            return Err(ConfigError("no auth type given".into()));
        }
        if out.contains(&Self::Oidc) && out.contains(&Self::MultiOidc) {
            return Err(ConfigError(
                "use oidc or multi-oidc, not both (multi-oidc holds any number of issuers)".into(),
            ));
        }
        Ok(out)
    }
}

impl fmt::Display for AuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configuration error, worded for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Zones as the CLI writes them (`eng:rw,ops:r`) or as a map (`{eng: rw, ops: r}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ZonesSpec {
    Text(String),
    Map(BTreeMap<String, String>),
}

impl ZonesSpec {
    /// The `zone:perm` list in the CLI's form.
    pub fn to_cli(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Map(m) => m
                .iter()
                .map(|(z, p)| format!("{z}:{p}"))
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// One key of the static file. The map key is the raw key (warned about) or
/// `sha256:<hex>` of it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticKey {
    pub user_id: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub is_admin: bool,
    /// Free-form, kept for the seed's format; never used for a decision.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    #[serde(default)]
    pub subject_type: Option<String>,
    #[serde(default)]
    pub zones: Option<ZonesSpec>,
    /// READ, WRITE, ADMIN (SPEC §10); absent: what `is_admin` and the zones give.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// RFC 3339.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// A tier override such as `100/m,1000/h`.
    #[serde(default)]
    pub rate_limit: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub api_keys: BTreeMap<String, StaticKey>,
}

/// A user of the local provider, keyed by username in [`LocalConfig::users`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalUser {
    /// PHC argon2id, or a seed-style `$2b$` bcrypt hash (re-hashed on first login).
    pub password_hash: String,
    #[serde(default)]
    pub subject_type: Option<String>,
    #[serde(default)]
    pub subject_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub is_admin: bool,
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    #[serde(default)]
    pub zones: Option<ZonesSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Login token lifetime (`1h`, `15m`); `NEXUS_JWT_TTL` when absent.
    #[serde(default)]
    pub jwt_ttl: Option<String>,
    /// The seed's HS256 secret. Accepted so the seed's file loads, never used: login
    /// tokens are EdDSA-signed with keys kept in the database.
    #[serde(default)]
    pub jwt_secret: Option<String>,
    #[serde(default)]
    pub users: BTreeMap<String, LocalUser>,
}

/// `aud` as one string or a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// One OpenID provider whose access tokens the hub accepts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    pub issuer: String,
    /// What `aud` must contain: the hub's resource URL (its `/mcp` URL).
    pub audience: OneOrMany,
    /// Else read from the issuer's discovery document.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The claim naming the subject (default `sub`).
    #[serde(default)]
    pub subject_claim: Option<String>,
    /// A claim holding a list of group names (ReBAC `group:<g>` membership).
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Members of any of these groups are hub administrators.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// A claim holding zone grants (`eng:rw,ops:r` or a list of such entries).
    #[serde(default)]
    pub zones_claim: Option<String>,
    /// Allowed signature algorithms (default: those of each key's type).
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Sign-in through this provider on the hub's OAuth pages (SPEC §11): the hub's own
    /// client at the issuer. Absent: its access tokens are accepted, nobody signs in here.
    #[serde(default)]
    pub login: Option<OidcLogin>,
}

/// The hub as a client of an OpenID provider, for the "Continue with …" button of the
/// OAuth login page: authorization code with PKCE, redirect URI
/// `<oauth issuer>/oauth/upstream/callback`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcLogin {
    /// The hub's client_id at the issuer.
    pub client_id: String,
    /// A file holding the client secret (one line; mode 0600 or stricter). With neither
    /// this nor `client_secret_env`, the hub is a public client (PKCE alone).
    #[serde(default)]
    pub client_secret_file: Option<std::path::PathBuf>,
    /// An environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Scopes asked for; default `openid profile email` (`openid` is always added).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The button's text: "Continue with <display_name>"; default the provider's name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// How long an MCP client signed in through this provider stays signed in (its refresh
    /// tokens' lifetime) before the user signs in at the provider again: `12h`, `7d` …
    /// Default 24 h, at most 30 days. The hub cannot hear of a user the provider disables
    /// or a group it takes away; this bounds how long such a user keeps access.
    #[serde(default)]
    pub session: Option<String>,
}

// Written out so that a future inline secret could never be printed by a `{:?}`.
impl fmt::Debug for OidcLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcLogin")
            .field("client_id", &self.client_id)
            .field("client_secret_file", &self.client_secret_file)
            .field("client_secret_env", &self.client_secret_env)
            .field("scopes", &self.scopes)
            .field("display_name", &self.display_name)
            .field("session", &self.session)
            .finish()
    }
}

impl OidcLogin {
    /// The scopes as sent: `openid` first, then the rest, without repeats.
    pub fn scope_string(&self) -> String {
        let mut out = vec!["openid".to_owned()];
        let asked = self
            .scopes
            .clone()
            .unwrap_or_else(|| vec!["profile".into(), "email".into()]);
        for s in asked {
            if !s.is_empty() && !out.contains(&s) {
                out.push(s);
            }
        }
        out.join(" ")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiOidcConfig {
    pub providers: BTreeMap<String, OidcConfig>,
}

/// The auth file: one key per provider.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    #[serde(default, rename = "static")]
    pub static_keys: Option<StaticConfig>,
    #[serde(default)]
    pub local: Option<LocalConfig>,
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
    #[serde(default, rename = "multi-oidc")]
    pub multi_oidc: Option<MultiOidcConfig>,
}

/// Parses YAML into `T`, with an error that quotes no input: the file may hold raw keys
/// (and password hashes), and the parser's own messages show the source around an error
/// and name a duplicated map key. Only the position and the kind of error are kept.
fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let opts = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options(text, opts).map_err(|e| {
        let e = e.without_snippet();
        match e {
            serde_saphyr::Error::DuplicateMappingKey { location, .. } => format!(
                "line {} column {}: a key is given twice",
                location.line(),
                location.column()
            ),
            other => other
                .to_string()
                .lines()
                .next()
                .unwrap_or("invalid YAML")
                .trim_start_matches("error: ")
                .to_owned(),
        }
    })
}

/// Largest auth file read: far more than any real one, small enough that a mistake (a
/// log file named by accident) is refused rather than parsed.
pub const MAX_AUTH_FILE_BYTES: usize = 4 * 1024 * 1024;

impl AuthFile {
    /// Parses YAML. The keyed form first; with exactly one non-database provider in
    /// `types`, the seed's bare dict for that provider is accepted too.
    pub fn from_yaml(text: &str, types: &[AuthType]) -> Result<Self, ConfigError> {
        if text.len() > MAX_AUTH_FILE_BYTES {
            return Err(ConfigError(format!(
                "the auth file is larger than {MAX_AUTH_FILE_BYTES} bytes"
            )));
        }
        let keyed_err = match parse_yaml::<Self>(text) {
            Ok(f) => return Ok(f),
            Err(e) => e,
        };
        let configured: Vec<AuthType> = types
            .iter()
            .copied()
            .filter(|t| *t != AuthType::Database)
            .collect();
        let bare = match configured.as_slice() {
            [AuthType::Static] => parse_yaml(text).map(|c| Self {
                static_keys: Some(c),
                ..Self::default()
            }),
            [AuthType::Local] => parse_yaml(text).map(|c| Self {
                local: Some(c),
                ..Self::default()
            }),
            [AuthType::Oidc] => parse_yaml(text).map(|c| Self {
                oidc: Some(c),
                ..Self::default()
            }),
            [AuthType::MultiOidc] => parse_yaml(text).map(|c| Self {
                multi_oidc: Some(c),
                ..Self::default()
            }),
            _ => return Err(ConfigError(format!("the auth file: {keyed_err}"))),
        };
        bare.map_err(|e| {
            ConfigError(format!(
                "the auth file is neither keyed by provider ({keyed_err}) nor a bare {} dict ({e})",
                configured[0]
            ))
        })
    }

    /// Parses the `[auth]` table of the TOML configuration file, less its `type` and
    /// `config` keys (which name the chain and an auth file).
    pub fn from_toml(table: &toml::Table) -> Result<Self, ConfigError> {
        let mut rest = table.clone();
        rest.remove("type");
        rest.remove("config");
        rest.try_into()
            .map_err(|e: toml::de::Error| ConfigError(format!("[auth]: {}", e.message())))
    }

    /// Checks the file against the chain: every provider named has settings (local may
    /// have none), and no settings are given for a provider outside the chain.
    pub fn check(&self, types: &[AuthType]) -> Result<(), ConfigError> {
        let present = [
            (AuthType::Static, self.static_keys.is_some()),
            (AuthType::Local, self.local.is_some()),
            (AuthType::Oidc, self.oidc.is_some()),
            (AuthType::MultiOidc, self.multi_oidc.is_some()),
        ];
        for (t, has) in present {
            let wanted = types.contains(&t);
            if has && !wanted {
                return Err(ConfigError(format!(
                    "the auth configuration has a {t} section, but the auth type ({}) does not include {t}",
                    types
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                )));
            }
            if wanted && !has && t != AuthType::Local {
                return Err(ConfigError(format!(
                    "auth type {t} needs a {t} section in the auth configuration (--auth-config FILE or [auth.{t}])"
                )));
            }
        }
        if let Some(m) = &self.multi_oidc
            && m.providers.is_empty()
        {
            return Err(ConfigError("multi-oidc lists no providers".into()));
        }
        Ok(())
    }

    /// Every OIDC provider configured, by name (`oidc` for the single one).
    pub fn oidc_providers(&self) -> Vec<(String, &OidcConfig)> {
        let mut out: Vec<(String, &OidcConfig)> = Vec::new();
        if let Some(o) = &self.oidc {
            out.push(("oidc".to_owned(), o));
        }
        if let Some(m) = &self.multi_oidc {
            out.extend(m.providers.iter().map(|(n, o)| (n.clone(), o)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_lists_parse_in_order() {
        assert_eq!(
            AuthType::parse_list("database, static,local").expect("list"),
            vec![AuthType::Database, AuthType::Static, AuthType::Local]
        );
        assert!(AuthType::parse_list("database,database").is_err());
        assert!(AuthType::parse_list("ldap").is_err());
        assert!(AuthType::parse_list("").is_err());
        assert!(AuthType::parse_list("oidc,multi-oidc").is_err());
    }

    #[test]
    fn an_oidc_provider_may_carry_login_settings() {
        let yaml = "oidc:\n  issuer: https://sso.example/realms/corp\n  audience: https://hub/mcp\n  login:\n    client_id: nexus-hub\n    client_secret_env: SSO_SECRET\n    scopes: [email, openid, email]\n    display_name: Corp SSO\n";
        let f = AuthFile::from_yaml(yaml, &[AuthType::Database, AuthType::Oidc]).expect("yaml");
        let login = f
            .oidc
            .as_ref()
            .and_then(|o| o.login.clone())
            .expect("login");
        assert_eq!(login.client_id, "nexus-hub");
        assert_eq!(
            login.scope_string(),
            "openid email",
            "openid first, no repeats"
        );
        let default = OidcLogin {
            scopes: None,
            ..login.clone()
        };
        assert_eq!(default.scope_string(), "openid profile email");
        let bad = yaml.replace("display_name", "client_secret");
        assert!(
            AuthFile::from_yaml(&bad, &[AuthType::Database, AuthType::Oidc]).is_err(),
            "an inline secret is not a setting"
        );
    }

    const SEED_STATIC: &str = r#"
api_keys:
  sk-alice-secret-key:
    user_id: "alice"
    tenant_id: null  # Self-hosted, no multi-tenancy
    is_admin: true
    metadata:
      email: "alice@example.com"
"#;

    #[test]
    fn the_seeds_bare_static_dict_loads_when_static_is_alone() {
        let f = AuthFile::from_yaml(SEED_STATIC, &[AuthType::Database, AuthType::Static])
            .expect("bare dict");
        let keys = &f.static_keys.as_ref().expect("static").api_keys;
        assert!(keys["sk-alice-secret-key"].is_admin);
        f.check(&[AuthType::Database, AuthType::Static])
            .expect("check");
        let err = AuthFile::from_yaml(SEED_STATIC, &[AuthType::Static, AuthType::Local])
            .expect_err("ambiguous");
        assert!(err.0.contains("api_keys"), "{err}");
    }

    #[test]
    fn keyed_files_are_checked_against_the_chain() {
        let text = r#"
static:
  api_keys:
    "sha256:00": {user_id: bob, zones: {eng: rw}}
oidc:
  issuer: https://idp.example
  audience: https://hub.example/mcp
"#;
        let f = AuthFile::from_yaml(text, &[AuthType::Static, AuthType::Oidc]).expect("keyed");
        f.check(&[AuthType::Static, AuthType::Oidc]).expect("both");
        assert!(
            f.check(&[AuthType::Static]).is_err(),
            "oidc not in the chain"
        );
        assert!(
            AuthFile::default().check(&[AuthType::Oidc]).is_err(),
            "oidc needs its section"
        );
        AuthFile::default()
            .check(&[AuthType::Database, AuthType::Local])
            .expect("local may have no section");
        let typo = "static:\n  api_key: {}\n";
        let e = AuthFile::from_yaml(typo, &[AuthType::Static]).expect_err("unknown key");
        assert!(e.0.contains("api_key"), "{e}");
    }

    #[test]
    fn toml_auth_tables_read_like_the_yaml() {
        let t: toml::Table = r#"
type = "database,multi-oidc"
[multi-oidc.providers.a]
issuer = "https://a"
audience = ["https://hub/mcp"]
"#
        .parse()
        .expect("toml");
        let f = AuthFile::from_toml(&t).expect("toml");
        assert_eq!(f.oidc_providers().len(), 1);
        f.check(&[AuthType::Database, AuthType::MultiOidc])
            .expect("check");
    }
}
