//! Sealed MCP sessions: a legacy (2025-era) session id carries the session's own state,
//! sealed with ChaCha20-Poly1305 under `NEXUS_MCP_SESSION_SECRET`, so that any frontend
//! replica holding the same secret serves any session and no replica needs to share memory.
//!
//! An id is `base64url(version ‖ nonce ‖ AEAD(state))`, the version byte also bound as
//! associated data. The state is the opening token's key id (the binding to it stays:
//! another token gets 404), the client's `initialize` parameters (protocol version,
//! capabilities, client info: what it takes to rebuild the session), issue and expiry times.
//! The nonce is random per id; the key is derived from the secret with HKDF-SHA256, so the
//! secret itself is never used as a key nor kept after startup. Ids are opened with the
//! current secret, then each previous one (rotation); new ids are always sealed with the
//! current one. A secret file (`NEXUS_MCP_SESSION_SECRET_FILE`) holds the current secret on
//! its first line and earlier ones on the next; it is re-read when the bus says the secret
//! was rotated and every few seconds, so every replica moves to a new secret together,
//! without a restart. Anything that does not open (tampered, truncated, foreign secret, expired,
//! revoked, oversized) is simply "no such session": callers answer it exactly as an unknown
//! id. Neither the secret nor a session's sealed contents are ever logged.
//!
//! How a replica rebuilds a session it does not hold is in [`manager`]. The lifetime is
//! absolute (`NEXUS_MCP_SESSION_LIFETIME`); the idle timeout only frees a replica's memory,
//! the next request restores the session. DELETE revokes an id on the replica that
//! received it (kept until the id expires); other replicas keep accepting it until then.

pub(crate) mod manager;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Shortest secret accepted, in bytes (after decoding).
pub const MIN_SECRET_BYTES: usize = 32;
/// Format version of a sealed id (its first byte).
const VERSION: u8 = 1;
/// The associated data of every id: purpose and version.
const AAD: [u8; 18] = *b"nexus-mcp-session\x01";
const TAG_LEN: usize = 16;
/// Largest sealed state: its id (~4/3 of it) stays well within proxies' header limits.
const MAX_STATE_BYTES: usize = 2048;
/// Longest id worth trying to open (anything longer was never issued).
const MAX_ID_CHARS: usize = (1 + NONCE_LEN + MAX_STATE_BYTES + TAG_LEN) * 4 / 3 + 4;
/// The longest a session may live (an absolute lifetime beyond this is refused).
pub const MAX_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// A session secret: at least 32 random bytes. Its `Debug` never shows it.
#[derive(Clone)]
pub struct SessionSecret(Arc<SecretSlice<u8>>);

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret([redacted])")
    }
}

impl SessionSecret {
    /// Parses a secret written as hex (64 or more digits) or base64 (standard or URL-safe,
    /// padded or not) of at least 32 bytes. The error never repeats the input.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let bytes = if t.len() >= 2 * MIN_SECRET_BYTES
            && t.len().is_multiple_of(2)
            && t.bytes().all(|b| b.is_ascii_hexdigit())
        {
            hex::decode(t).ok()
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|e| e.decode(t).ok())
        };
        match bytes {
            Some(b) if b.len() >= MIN_SECRET_BYTES => Ok(Self::from_bytes(b)),
            Some(b) => Err(format!(
                "the session secret has {} bytes; at least {MIN_SECRET_BYTES} are needed (e.g. `openssl rand -hex 32`)",
                b.len()
            )),
            None => Err(
                "the session secret is neither hex nor base64 (e.g. `openssl rand -hex 32`)".into(),
            ),
        }
    }

    fn from_bytes(b: Vec<u8>) -> Self {
        Self(Arc::new(SecretSlice::from(b)))
    }

    /// 32 fresh random bytes.
    pub fn generate() -> Result<Self, String> {
        let mut b = vec![0u8; MIN_SECRET_BYTES];
        SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| "no randomness for a session secret".to_owned())?;
        Ok(Self::from_bytes(b))
    }

    /// Reads the current secret of a secret file (see [`SecretFile::read`]).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        SecretFile::read(path).map(|f| f.current)
    }

    /// What the secret file's text holds: this secret on the first line, then `earlier`.
    pub fn file_text(&self, earlier: &[SessionSecret]) -> String {
        std::iter::once(self)
            .chain(earlier)
            .map(|s| hex::encode(s.0.expose_secret()) + "\n")
            .collect()
    }

    /// Whether two secrets are the same, in constant time.
    fn same(&self, other: &SessionSecret) -> bool {
        let (a, b) = (self.0.expose_secret(), other.0.expose_secret());
        bool::from(subtle::ConstantTimeEq::ct_eq(a, b))
    }

    /// The secret kept in `path`, created (32 random bytes, hex, mode 0600) on first use; an
    /// existing file readable by others is refused.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        if path.exists() {
            return Self::from_file(path);
        }
        let secret = Self::generate()?;
        let text = hex::encode(secret.0.expose_secret());
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                f.sync_all()
            });
        match created {
            Ok(()) => Ok(secret),
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::from_file(path),
            Err(e) => Err(format!("cannot create {}: {e}", path.display())),
        }
    }

    /// The AEAD key of this secret (HKDF-SHA256; salt and info name the purpose).
    fn key(&self) -> LessSafeKey {
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"nexus-mcp-session")
            .extract(self.0.expose_secret());
        let okm = prk
            .expand(&[b"session id sealing key v1"], &CHACHA20_POLY1305)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        LessSafeKey::new(UnboundKey::from(okm))
    }
}

/// The secrets of a secret file: the current one on the first line, earlier ones (still
/// accepted, never used to seal) on the lines after. Blank lines and `#` comments are skipped.
#[derive(Debug, Clone)]
pub struct SecretFile {
    pub current: SessionSecret,
    pub earlier: Vec<SessionSecret>,
}

/// The most secrets a secret file may hold (each is one more key to try on every id).
pub const MAX_FILE_SECRETS: usize = 8;

impl SecretFile {
    /// Reads a secret file that only its owner may read (mode 0600 or narrower). Errors name
    /// the file and the line, never a secret.
    pub fn read(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{shown} is readable by others (mode {mode:o}); chmod 600 it"
            ));
        }
        if meta.len() > 64 * 1024 {
            return Err(format!("{shown} is too large for a secret file"));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let mut secrets = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            secrets.push(
                SessionSecret::parse(line).map_err(|e| format!("{shown} line {}: {e}", n + 1))?,
            );
        }
        if secrets.len() > MAX_FILE_SECRETS {
            return Err(format!(
                "{shown} holds {} secrets; at most {MAX_FILE_SECRETS}",
                secrets.len()
            ));
        }
        let mut secrets = secrets.into_iter();
        let current = secrets
            .next()
            .ok_or_else(|| format!("{shown} holds no secret (e.g. `openssl rand -hex 32`)"))?;
        Ok(Self {
            current,
            earlier: secrets.collect(),
        })
    }

    /// Writes `self` to `path` in place of what it held, atomically (a private temporary
    /// file renamed over it), mode 0600.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let shown = path.display();
        let mut tag = [0u8; 8];
        SystemRandom::new()
            .fill(&mut tag)
            .map_err(|_| "no randomness for a temporary file name".to_owned())?;
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{}.tmp", hex::encode(tag)));
        let tmp = std::path::PathBuf::from(name);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(self.current.file_text(&self.earlier).as_bytes())?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("cannot write {shown}: {e}"));
        }
        Ok(())
    }
}

/// How session ids are sealed (`FrontendConfig::sessions`).
#[derive(Debug, Clone)]
pub struct SessionSealing {
    /// The secret new ids are sealed with; `None`: a random one per process (or the
    /// file's, with `file`).
    pub secret: Option<SessionSecret>,
    /// Earlier secrets whose ids are still accepted (rotation), beside the file's.
    pub previous: Vec<SessionSecret>,
    /// The secret file: when set, the current and earlier secrets are read from it at start
    /// and again on each reload (it wins over `secret`).
    pub file: Option<std::path::PathBuf>,
    /// How often `file` is re-read.
    pub reload_every: Duration,
    /// Absolute lifetime of a session id.
    pub lifetime: Duration,
}

impl Default for SessionSealing {
    fn default() -> Self {
        Self {
            secret: None,
            previous: Vec::new(),
            file: None,
            reload_every: DEFAULT_RELOAD,
            lifetime: DEFAULT_LIFETIME,
        }
    }
}

impl SessionSealing {
    /// The sealing of the frontend's flags: the secret from `secret` or `file` (not both),
    /// earlier secrets from `previous`. Errors name the setting, never a secret.
    pub fn resolve(
        secret: Option<&secrecy::SecretString>,
        file: Option<&Path>,
        previous: &[secrecy::SecretString],
        lifetime: Duration,
    ) -> anyhow::Result<Self> {
        // An empty value (a compose file's `${VAR:-}`) is no secret.
        let secret = secret.filter(|s| !s.expose_secret().trim().is_empty());
        let secret = match (secret, file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "set NEXUS_MCP_SESSION_SECRET or NEXUS_MCP_SESSION_SECRET_FILE, not both"
            ),
            (Some(s), None) => Some(
                SessionSecret::parse(s.expose_secret())
                    .map_err(|e| anyhow::anyhow!("NEXUS_MCP_SESSION_SECRET: {e}"))?,
            ),
            // Read once here, so that a bad file stops the start with its reason.
            (None, Some(p)) => Some(SecretFile::read(p).map_err(anyhow::Error::msg)?.current),
            (None, None) => None,
        };
        let previous = previous
            .iter()
            .filter(|s| !s.expose_secret().trim().is_empty())
            .map(|s| SessionSecret::parse(s.expose_secret()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("NEXUS_MCP_SESSION_SECRET_PREVIOUS: {e}"))?;
        if secret.is_none() && !previous.is_empty() {
            anyhow::bail!(
                "NEXUS_MCP_SESSION_SECRET_PREVIOUS needs a current NEXUS_MCP_SESSION_SECRET"
            );
        }
        Ok(Self {
            secret,
            previous,
            file: file.map(Path::to_path_buf),
            reload_every: DEFAULT_RELOAD,
            lifetime,
        })
    }
}

/// See [`SessionSealing::reload_every`].
pub const DEFAULT_RELOAD: Duration = Duration::from_secs(30);

/// See [`SessionSealing::lifetime`].
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Parses a session lifetime: `24h`, `30m`, `90s`, `7d` (1 s to 30 days).
pub fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("expected a lifetime such as 24h, 30m or 7d (1s to 30d), got {s:?}");
    if t.is_empty() || t.len() > 32 {
        return Err(bad());
    }
    let d = humantime::parse_duration(t).map_err(|_| bad())?;
    if d < Duration::from_secs(1) || d > MAX_LIFETIME {
        return Err(bad());
    }
    Ok(d)
}

/// The state sealed into an id. Short names: it travels in every request's header.
#[derive(Serialize, Deserialize)]
struct State {
    /// Format version (also the id's first byte).
    v: u8,
    /// Key id of the token that opened the session; `None` when it was opened without one.
    k: Option<String>,
    /// Issued at and expires at, in Unix milliseconds.
    iat: u64,
    exp: u64,
    /// The client's `initialize` parameters.
    init: Value,
}

/// What an id that opened says.
#[derive(Debug)]
pub(crate) struct Opened {
    pub key_id: Option<String>,
    /// Unix milliseconds after which the id is refused.
    pub expires_ms: u64,
    /// The client's `initialize` parameters.
    pub init: Value,
}

/// Why a session could not be sealed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SealError {
    /// The `initialize` parameters are too large to travel in a session id.
    TooLarge,
    /// No randomness for the nonce.
    Random,
}

/// Wall-clock time in Unix milliseconds (expiry is shared by replicas, so it is wall time).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The keys ids are sealed and opened with, swapped whole on a reload.
struct Keys {
    current: LessSafeKey,
    previous: Vec<LessSafeKey>,
    /// The secrets the keys came from (current first), to tell whether a reload changed any.
    secrets: Vec<SessionSecret>,
}

impl Keys {
    fn new(current: &SessionSecret, previous: &[SessionSecret]) -> Self {
        Self {
            current: current.key(),
            previous: previous.iter().map(SessionSecret::key).collect(),
            secrets: std::iter::once(current).chain(previous).cloned().collect(),
        }
    }

    fn same_secrets(&self, other: &Keys) -> bool {
        self.secrets.len() == other.secrets.len()
            && self
                .secrets
                .iter()
                .zip(&other.secrets)
                .all(|(a, b)| a.same(b))
    }
}

/// What [`Sealer::reload`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reloaded {
    /// The file holds other secrets now: new ids are sealed with its first.
    Changed,
    /// The file holds the secrets already in use.
    Unchanged,
    /// No secret file is configured: nothing to re-read.
    NoFile,
}

impl Reloaded {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Changed => "changed",
            Self::Unchanged => "unchanged",
            Self::NoFile => "no_file",
        }
    }
}

/// Seals and opens session ids; remembers the ids DELETEd here until they expire.
pub(crate) struct Sealer {
    keys: arc_swap::ArcSwap<Keys>,
    /// The secret file re-read by [`Sealer::reload`], and the secrets always accepted
    /// beside it (`NEXUS_MCP_SESSION_SECRET_PREVIOUS`).
    file: Option<std::path::PathBuf>,
    fixed_previous: Vec<SessionSecret>,
    lifetime_ms: u64,
    rng: SystemRandom,
    /// Nonce of each revoked id → its expiry (Unix ms); at most `revoked_cap` entries.
    revoked: Mutex<HashMap<[u8; NONCE_LEN], u64>>,
    revoked_cap: usize,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("previous", &self.keys.load().previous.len())
            .field("file", &self.file)
            .field("lifetime_ms", &self.lifetime_ms)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for `cfg`; without a secret, one made up for this process (logged: its
    /// sessions then live only here). `revoked_cap` bounds the DELETEd ids remembered.
    pub fn new(cfg: &SessionSealing, revoked_cap: usize) -> anyhow::Result<Self> {
        if let Some(path) = &cfg.file {
            let file = SecretFile::read(path).map_err(anyhow::Error::msg)?;
            let previous: Vec<SessionSecret> =
                file.earlier.iter().chain(&cfg.previous).cloned().collect();
            return Ok(Self::with_keys(
                Keys::new(&file.current, &previous),
                cfg,
                revoked_cap,
            ));
        }
        let secret = match &cfg.secret {
            Some(s) => s.clone(),
            None => {
                tracing::info!(
                    "NEXUS_MCP_SESSION_SECRET is not set: MCP sessions are sealed with a random per-process secret and are local to this process (set the same secret on every frontend replica to let any of them serve any session)"
                );
                SessionSecret::generate().map_err(anyhow::Error::msg)?
            }
        };
        Ok(Self::with_keys(
            Keys::new(&secret, &cfg.previous),
            cfg,
            revoked_cap,
        ))
    }

    fn with_keys(keys: Keys, cfg: &SessionSealing, revoked_cap: usize) -> Self {
        Self {
            keys: arc_swap::ArcSwap::from_pointee(keys),
            file: cfg.file.clone(),
            fixed_previous: cfg.previous.clone(),
            lifetime_ms: cfg.lifetime.as_millis().min(u64::MAX as u128) as u64,
            rng: SystemRandom::new(),
            revoked: Mutex::default(),
            revoked_cap: revoked_cap.max(1),
        }
    }

    /// Whether there is a secret file to re-read.
    pub fn has_file(&self) -> bool {
        self.file.is_some()
    }

    /// Re-reads the secret file. A file that cannot be read or parsed changes nothing (the
    /// secrets in use stay; the error names the file, never a secret).
    pub fn reload(&self) -> Result<Reloaded, String> {
        let Some(path) = &self.file else {
            return Ok(Reloaded::NoFile);
        };
        let file = SecretFile::read(path)?;
        let previous: Vec<SessionSecret> = file
            .earlier
            .iter()
            .chain(&self.fixed_previous)
            .cloned()
            .collect();
        let keys = Keys::new(&file.current, &previous);
        if keys.same_secrets(&self.keys.load()) {
            return Ok(Reloaded::Unchanged);
        }
        self.keys.store(Arc::new(keys));
        Ok(Reloaded::Changed)
    }

    /// A new session id for a session opened by `key_id` with `initialize` parameters `init`.
    pub fn seal(&self, key_id: Option<&str>, init: &Value) -> Result<String, SealError> {
        let iat = now_ms();
        let state = |init: Value| State {
            v: VERSION,
            k: key_id.map(str::to_owned),
            iat,
            exp: iat.saturating_add(self.lifetime_ms),
            init,
        };
        let mut plain =
            serde_json::to_vec(&state(compact(init, false))).map_err(|_| SealError::TooLarge)?;
        if plain.len() > MAX_STATE_BYTES {
            // What the session needs of a client that says much about itself.
            plain =
                serde_json::to_vec(&state(compact(init, true))).map_err(|_| SealError::TooLarge)?;
        }
        if plain.len() > MAX_STATE_BYTES {
            return Err(SealError::TooLarge);
        }
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        self.keys
            .load()
            .current
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut plain,
            )
            .map_err(|_| SealError::TooLarge)?;
        let mut raw = Vec::with_capacity(1 + NONCE_LEN + plain.len());
        raw.push(VERSION);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&plain);
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// The state of `id` when it opens under a known secret, has not expired and was not
    /// revoked here; `None` for anything else (never a reason: it is just not a session).
    pub fn open(&self, id: &str) -> Option<Opened> {
        if id.len() > MAX_ID_CHARS {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(id).ok()?;
        if raw.len() < 1 + NONCE_LEN + TAG_LEN || raw[0] != VERSION {
            return None;
        }
        let nonce: [u8; NONCE_LEN] = raw[1..1 + NONCE_LEN].try_into().ok()?;
        let sealed = &raw[1 + NONCE_LEN..];
        let mut buf = Vec::new();
        let keys = self.keys.load();
        let plain = std::iter::once(&keys.current)
            .chain(&keys.previous)
            .find_map(|key| {
                buf.clear();
                buf.extend_from_slice(sealed);
                key.open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(AAD),
                    &mut buf,
                )
                .ok()
                .map(|p| p.len())
            })?;
        let state: State = serde_json::from_slice(&buf[..plain]).ok()?;
        if state.v != VERSION || now_ms() >= state.exp {
            return None;
        }
        if self.lock_revoked().contains_key(&nonce) {
            return None;
        }
        Some(Opened {
            key_id: state.k,
            expires_ms: state.exp,
            init: state.init,
        })
    }

    /// Refuses `id` on this replica from now until it expires (a DELETE).
    pub fn revoke(&self, id: &str) {
        let Some(opened) = self.open(id) else {
            return;
        };
        let Some(nonce) = URL_SAFE_NO_PAD
            .decode(id)
            .ok()
            .and_then(|raw| raw.get(1..1 + NONCE_LEN)?.try_into().ok())
        else {
            return;
        };
        let mut revoked = self.lock_revoked();
        if revoked.len() >= self.revoked_cap {
            let now = now_ms();
            revoked.retain(|_, exp| *exp > now);
        }
        if revoked.len() >= self.revoked_cap {
            // Full of live entries: the one expiring first makes room (it is the one whose
            // revocation matters least).
            if let Some(first) = revoked.iter().min_by_key(|(_, e)| **e).map(|(n, _)| *n) {
                revoked.remove(&first);
            }
        }
        revoked.insert(nonce, opened.expires_ms);
    }

    fn lock_revoked(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; NONCE_LEN], u64>> {
        self.revoked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `initialize` parameters worth sealing: `_meta` never (it belongs to that one
/// request); when `minimal`, only the protocol version, the standard capabilities and the
/// client's name, title and version.
fn compact(init: &Value, minimal: bool) -> Value {
    let mut v = init.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("_meta");
        if minimal {
            o.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "protocolVersion" | "capabilities" | "clientInfo"
                )
            });
            if let Some(c) = o.get_mut("capabilities").and_then(Value::as_object_mut) {
                c.retain(|k, _| matches!(k.as_str(), "roots" | "sampling" | "elicitation"));
            }
            if let Some(c) = o.get_mut("clientInfo").and_then(Value::as_object_mut) {
                c.retain(|k, _| matches!(k.as_str(), "name" | "title" | "version"));
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(byte: u8) -> SessionSecret {
        SessionSecret::from_bytes(vec![byte; 32])
    }

    fn sealer(current: u8, previous: &[u8], lifetime: Duration) -> Sealer {
        let cfg = SessionSealing {
            secret: Some(secret(current)),
            previous: previous.iter().map(|b| secret(*b)).collect(),
            file: None,
            reload_every: DEFAULT_RELOAD,
            lifetime,
        };
        Sealer::new(&cfg, 4).expect("sealer")
    }

    fn init() -> Value {
        json!({"protocolVersion": "2025-11-25", "capabilities": {"roots": {}},
               "clientInfo": {"name": "t", "version": "1"}, "_meta": {"x": 1}})
    }

    #[test]
    fn an_id_opens_to_what_was_sealed_and_is_url_safe() {
        let s = sealer(1, &[], DEFAULT_LIFETIME);
        let id = s.seal(Some("key-1"), &init()).expect("seal");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let o = s.open(&id).expect("opens");
        assert_eq!(o.key_id.as_deref(), Some("key-1"));
        assert_eq!(o.init["clientInfo"]["name"], "t");
        assert!(o.init.get("_meta").is_none(), "{}", o.init);
        // Random nonce: the same state never gives the same id.
        assert_ne!(id, s.seal(Some("key-1"), &init()).expect("seal"));
    }

    #[test]
    fn tampered_truncated_foreign_and_expired_ids_do_not_open() {
        let s = sealer(1, &[], DEFAULT_LIFETIME);
        let id = s.seal(Some("k"), &init()).expect("seal");
        let mut raw = URL_SAFE_NO_PAD.decode(&id).expect("b64");
        for i in [0, 5, raw.len() / 2, raw.len() - 1] {
            raw[i] ^= 0x01;
            assert!(s.open(&URL_SAFE_NO_PAD.encode(&raw)).is_none(), "flip {i}");
            raw[i] ^= 0x01;
        }
        assert!(s.open(&id[..id.len() - 3]).is_none());
        assert!(s.open("").is_none());
        assert!(s.open("not base64 at all!").is_none());
        assert!(s.open(&"A".repeat(MAX_ID_CHARS + 1)).is_none());
        assert!(sealer(2, &[], DEFAULT_LIFETIME).open(&id).is_none());
        let short = sealer(1, &[], Duration::from_millis(1));
        let old = short.seal(Some("k"), &init()).expect("seal");
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.open(&old).is_none());
    }

    #[test]
    fn rotation_opens_previous_ids_and_seals_with_the_current_secret() {
        let old = sealer(1, &[], DEFAULT_LIFETIME);
        let id = old.seal(Some("k"), &init()).expect("seal");
        let rotated = sealer(2, &[1], DEFAULT_LIFETIME);
        assert!(rotated.open(&id).is_some());
        let new_id = rotated.seal(Some("k"), &init()).expect("seal");
        assert!(old.open(&new_id).is_none());
        assert!(sealer(2, &[], DEFAULT_LIFETIME).open(&new_id).is_some());
    }

    #[test]
    fn a_reloaded_secret_file_seals_with_its_first_line_and_keeps_the_rest_open() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("secret");
        let write = |current: u8, earlier: &[u8]| {
            SecretFile {
                current: secret(current),
                earlier: earlier.iter().map(|b| secret(*b)).collect(),
            }
            .write(&p)
            .expect("write");
        };
        write(1, &[]);
        let cfg = SessionSealing {
            file: Some(p.clone()),
            previous: vec![secret(9)],
            ..SessionSealing::default()
        };
        let s = Sealer::new(&cfg, 4).expect("sealer");
        let first = s.seal(Some("k"), &init()).expect("seal");
        assert_eq!(s.reload(), Ok(Reloaded::Unchanged));

        write(2, &[1]);
        assert_eq!(s.reload(), Ok(Reloaded::Changed));
        assert!(s.open(&first).is_some(), "the replaced secret is kept");
        let second = s.seal(Some("k"), &init()).expect("seal");
        assert!(sealer(1, &[], DEFAULT_LIFETIME).open(&second).is_none());
        assert!(sealer(2, &[], DEFAULT_LIFETIME).open(&second).is_some());
        assert!(
            sealer(9, &[], DEFAULT_LIFETIME).open(&second).is_none(),
            "fixed earlier secrets never seal"
        );
        let fixed = sealer(9, &[], DEFAULT_LIFETIME)
            .seal(None, &init())
            .expect("seal");
        assert!(
            s.open(&fixed).is_some(),
            "fixed earlier secrets stay accepted"
        );

        // A file that went bad changes nothing; one others may read neither.
        std::fs::write(&p, "not a secret").expect("write");
        assert!(s.reload().expect_err("bad file").contains("line 1"));
        assert!(s.open(&second).is_some() && s.open(&first).is_some());
        write(3, &[]);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(s.reload().expect_err("open file").contains("chmod 600"));
        assert!(s.open(&first).is_some());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(s.reload(), Ok(Reloaded::Changed));
        assert!(s.open(&first).is_none() && s.open(&second).is_none());
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn revoked_ids_stay_refused_and_the_list_is_bounded() {
        let s = sealer(1, &[], DEFAULT_LIFETIME);
        let ids: Vec<String> = (0..6)
            .map(|_| s.seal(None, &init()).expect("seal"))
            .collect();
        s.revoke(&ids[0]);
        assert!(s.open(&ids[0]).is_none());
        assert!(s.open(&ids[1]).is_some());
        for id in &ids {
            s.revoke(id);
        }
        assert!(s.lock_revoked().len() <= 4);
        assert!(s.open(&ids[5]).is_none());
    }

    #[test]
    fn large_client_info_is_trimmed_and_huge_parameters_refused() {
        let s = sealer(1, &[], DEFAULT_LIFETIME);
        let mut big = init();
        big["clientInfo"]["description"] = json!("d".repeat(4000));
        big["capabilities"]["experimental"] = json!({"x": "e".repeat(4000)});
        let id = s.seal(Some("k"), &big).expect("trimmed");
        let o = s.open(&id).expect("opens");
        assert_eq!(o.init["clientInfo"], json!({"name": "t", "version": "1"}));
        assert_eq!(o.init["capabilities"], json!({"roots": {}}));
        let mut huge = init();
        huge["clientInfo"]["name"] = json!("n".repeat(4000));
        assert_eq!(s.seal(Some("k"), &huge), Err(SealError::TooLarge));
    }

    #[test]
    fn secrets_parse_from_hex_or_base64_and_never_show() {
        let hex = "ab".repeat(32);
        assert!(SessionSecret::parse(&hex).is_ok());
        assert!(SessionSecret::parse(&STANDARD.encode([7u8; 32])).is_ok());
        assert!(SessionSecret::parse(&URL_SAFE_NO_PAD.encode([7u8; 40])).is_ok());
        let short = SessionSecret::parse(&STANDARD.encode([7u8; 31])).expect_err("too short");
        assert!(short.contains("31 bytes"), "{short}");
        let junk = "zz!".repeat(30);
        assert!(
            !SessionSecret::parse(&junk)
                .expect_err("not a secret")
                .contains(&junk)
        );
        assert_eq!(format!("{:?}", secret(9)), "SessionSecret([redacted])");
    }

    #[test]
    fn the_data_dir_secret_is_created_private_and_reused() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("mcp-session.secret");
        let a = SessionSecret::load_or_create(&p).expect("create");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = SessionSecret::load_or_create(&p).expect("reuse");
        assert_eq!(a.0.expose_secret(), b.0.expose_secret());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(
            SessionSecret::load_or_create(&p)
                .expect_err("a file others may read")
                .contains("chmod 600")
        );
    }

    #[test]
    fn lifetimes_parse_within_bounds() {
        assert_eq!(parse_lifetime("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_lifetime("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_lifetime("0s").is_err());
        assert!(parse_lifetime("31d").is_err());
        assert!(parse_lifetime("soon").is_err());
    }
}
