//! NATS operator-mode credentials for a Nexus Hub cluster, minted without `nsc`
//! (SPEC §13, `nexus hub cluster …`).
//!
//! The shape is the one NATS operators expect (an operator, a system account, an account
//! with a signing key, one credential per node):
//! - [`init`]: the operator key and JWT (`system_account` = `SYS`), the account `HUB` with a
//!   separate signing key, the system account `SYS` with a signing key and a `sys` user
//!   whose creds push account JWTs to running servers, and `cluster.json`;
//! - [`add_node`]: `DIR/<name>.creds` for a user signed by `HUB`'s signing key (never the
//!   account's identity key), with the subject permissions of its [`Role`] from
//!   [`permissions`];
//! - [`revoke_node`]: the user's key goes into `HUB`'s revocations, the operator re-signs
//!   the account JWT and it is pushed to running servers (`$SYS.REQ.CLAIMS.UPDATE`), which
//!   close the node's connections at once;
//! - [`nats_config`]: the nats-server configuration of one clustered node, JetStream on,
//!   accounts from the `full` resolver preloaded with `HUB` and `SYS`.
//!
//! Seeds are written to files (0600, in a 0700 directory) and nowhere else: no value this
//! crate returns, displays or logs contains one.

mod config;
mod jwt;
mod push;
mod store;

pub use config::{NatsConfig, nats_config};
/// The subjects each role may use: defined once, by the bus that uses them.
pub use nexus_bus::{Permissions, permissions};
pub use push::{PushOutcome, ServerAnswer};

use chrono::{DateTime, SubsecRound, Utc};
use jwt::{AccountLimits, AccountNats, Claims, OperatorNats, SubjectList, UserNats};
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use store::{CLUSTER_JSON, KEYS_DIR, LOCK, Layout, OPERATOR_JWT, SYS_CREDS};

/// The directory `nexus hub cluster` uses when `--dir` is not given.
pub const DEFAULT_DIR: &str = "./nexus-cluster";
/// The account the nodes' users live in.
pub const HUB_ACCOUNT: &str = "HUB";
/// The system account (server events, `$SYS.REQ.…`).
pub const SYS_ACCOUNT: &str = "SYS";
/// The system account's user; its creds file is `DIR/sys.creds`, so no node may be named so.
pub const SYS_USER: &str = "sys";
/// The operator's name in its JWT.
pub const OPERATOR_NAME: &str = "nexus";

const FORMAT: u32 = 1;

/// What a node does, which decides its subject permissions (the bus's own definition).
pub use nexus_bus::Role;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Bad input (a name, a role, a URL, a port): nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with what exists (a cluster, a node, a revoked name).
    #[error("{0}")]
    Conflict(String),
    /// The node named is not in the cluster.
    #[error("{0}")]
    UnknownNode(String),
    #[error(
        "no cluster in {0}: run `nexus hub cluster init --dir {0}` first, or pass the --dir of an existing one"
    )]
    NoCluster(PathBuf),
    /// A file of the cluster directory is not what this crate wrote.
    #[error("{0}")]
    Corrupt(String),
    #[error("cannot sign: {0}")]
    Key(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// A name and public key (an operator, a user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    pub name: String,
    pub public_key: String,
}

/// An account: its identity key and the signing key that signs its users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    pub name: String,
    pub public_key: String,
    pub signing_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub role: Role,
    /// The user's public key (`U…`), the subject of its JWT.
    pub public_key: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedNode {
    pub name: String,
    pub role: Role,
    pub public_key: String,
    pub created_at: DateTime<Utc>,
    /// User JWTs of this key issued at or before this second are refused.
    pub revoked_at: DateTime<Utc>,
}

/// `cluster.json`: what exists, without a single seed. The account JWTs are rebuilt from
/// it, so it is the record of truth for nodes and revocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub format: u32,
    pub created_at: DateTime<Utc>,
    pub operator: Entity,
    pub system_account: AccountInfo,
    pub system_user: Entity,
    pub account: AccountInfo,
    pub nodes: Vec<NodeInfo>,
    pub revoked: Vec<RevokedNode>,
}

/// What `init` made.
#[derive(Debug, Clone)]
pub struct InitSummary {
    pub dir: PathBuf,
    pub info: ClusterInfo,
}

impl fmt::Display for InitSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.info;
        writeln!(f, "created cluster in {}", self.dir.display())?;
        writeln!(
            f,
            "operator:        {} {}",
            i.operator.name, i.operator.public_key
        )?;
        writeln!(
            f,
            "account:         {} {} (signing key {})",
            i.account.name, i.account.public_key, i.account.signing_key
        )?;
        writeln!(
            f,
            "system account:  {} {} (user {}: {})",
            i.system_account.name,
            i.system_account.public_key,
            i.system_user.name,
            self.dir.join(SYS_CREDS).display()
        )?;
        write!(
            f,
            "keys are in {} (0600); keep this directory private and backed up",
            self.dir.join(KEYS_DIR).display()
        )
    }
}

/// What `add_node` made.
#[derive(Debug, Clone)]
pub struct NodeSummary {
    pub node: NodeInfo,
    pub creds: PathBuf,
    /// The key that signed the user JWT (`HUB`'s signing key).
    pub signed_by: String,
}

impl fmt::Display for NodeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "added node {} (role {}, user {}, signed by {})\ncredentials: {} (0600): give it to the node as NEXUS_NATS_CREDS",
            self.node.name,
            self.node.role,
            self.node.public_key,
            self.signed_by,
            self.creds.display()
        )
    }
}

/// What `revoke_node` did, and what the servers said.
#[derive(Debug, Clone)]
pub struct RevokeReport {
    pub node: RevokedNode,
    /// False when the node was revoked by an earlier command and this one only pushed.
    pub newly_revoked: bool,
    pub dir: PathBuf,
    pub push: PushOutcome,
}

impl RevokeReport {
    /// True when every server that answered accepted the account JWT (and at least one did).
    pub fn confirmed(&self) -> bool {
        matches!(&self.push, PushOutcome::Pushed(a) if !a.is_empty() && a.iter().all(|s| s.ok))
    }
}

impl fmt::Display for RevokeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.node;
        if self.newly_revoked {
            writeln!(
                f,
                "revoked node {} (role {}, user {}) at {}; {} is deleted",
                n.name,
                n.role,
                n.public_key,
                n.revoked_at.to_rfc3339(),
                self.dir.join(format!("{}.creds", n.name)).display()
            )?;
        } else {
            writeln!(
                f,
                "node {} was already revoked at {}; pushing the account JWT again",
                n.name,
                n.revoked_at.to_rfc3339()
            )?;
        }
        let jwt = self.dir.join(format!("{HUB_ACCOUNT}.jwt"));
        match &self.push {
            PushOutcome::Pushed(answers) if !answers.is_empty() => {
                for a in answers {
                    writeln!(
                        f,
                        "server {}: {}{}",
                        a.server,
                        if a.ok { "" } else { "REFUSED: " },
                        a.message
                    )?;
                }
            }
            PushOutcome::Pushed(_) => {
                writeln!(f, "no server answered the account JWT update")?;
            }
            PushOutcome::Failed(why) => {
                writeln!(f, "could not push the account JWT: {why}")?;
            }
            PushOutcome::NotRequested => {}
        }
        if !self.confirmed() {
            write!(
                f,
                "running servers still accept the node until they learn the new account JWT ({}). Either push it:\n  \
                 nexus hub cluster revoke-node {} --dir {} --server nats://<server>:4222\n\
                 or regenerate each server's config (`nexus hub cluster nats-config …`, which preloads the new JWT) and restart the servers one by one",
                jwt.display(),
                n.name,
                self.dir.display()
            )?;
        } else {
            write!(
                f,
                "the servers closed the node's connections and refuse its credentials"
            )?;
        }
        Ok(())
    }
}

/// Node names: lowercase letters, digits and `-`, 1–63 characters (a DNS label without the
/// rules on the ends; they become file names and subject tokens). `sys` is taken.
pub fn validate_name(name: &str) -> Result<(), ClusterError> {
    if name.is_empty() || name.len() > 63 {
        return Err(ClusterError::Invalid(format!(
            "node name {name:?} must be 1 to 63 characters"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(ClusterError::Invalid(format!(
            "node name {name:?} has {c:?}: use lowercase letters, digits and -"
        )));
    }
    if name == SYS_USER {
        return Err(ClusterError::Invalid(format!(
            "node name {SYS_USER:?} is the system account's user: choose another"
        )));
    }
    Ok(())
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

fn key_pair_seed(kp: &KeyPair) -> Result<String, ClusterError> {
    kp.seed().map_err(|e| ClusterError::Key(e.to_string()))
}

fn operator_jwt(info: &ClusterInfo, operator: &KeyPair, iat: i64) -> Result<String, ClusterError> {
    jwt::encode(
        Claims {
            jti: String::new(),
            iat,
            iss: String::new(),
            name: info.operator.name.clone(),
            sub: info.operator.public_key.clone(),
            nats: OperatorNats {
                system_account: info.system_account.public_key.clone(),
                kind: "operator".into(),
                version: 2,
            },
        },
        operator,
        iat,
    )
}

/// The account JWT of `HUB` or `SYS` as `info` describes it, signed by the operator. The
/// account's signing key is listed in the account JWT: that is where servers look when a
/// user JWT names `issuer_account` and is signed by another key.
fn account_jwt(
    info: &ClusterInfo,
    account: &AccountInfo,
    operator: &KeyPair,
    iat: i64,
) -> Result<String, ClusterError> {
    let is_hub = account.public_key == info.account.public_key;
    let revocations = if is_hub {
        info.revoked
            .iter()
            .map(|r| (r.public_key.clone(), r.revoked_at.timestamp()))
            .collect()
    } else {
        Default::default()
    };
    jwt::encode(
        Claims {
            jti: String::new(),
            iat,
            iss: String::new(),
            name: account.name.clone(),
            sub: account.public_key.clone(),
            nats: AccountNats {
                // JetStream for HUB (the bus streams and KV); none for SYS.
                limits: AccountLimits::unlimited(is_hub),
                signing_keys: vec![account.signing_key.clone()],
                revocations,
                kind: "account".into(),
                version: 2,
            },
        },
        operator,
        iat,
    )
}

fn user_jwt(
    name: &str,
    user_public: &str,
    account: &AccountInfo,
    signing_key: &KeyPair,
    perms: Option<(Role, Permissions)>,
    iat: i64,
) -> Result<String, ClusterError> {
    let (publish, subscribe, tags) = match perms {
        Some((role, p)) => (
            SubjectList {
                allow: p.publish,
                deny: vec![],
            },
            SubjectList {
                allow: p.subscribe,
                deny: vec![],
            },
            vec![format!("nexus-role:{role}")],
        ),
        // The system user: no limits within SYS (it pushes claims and reads server events).
        None => Default::default(),
    };
    jwt::encode(
        Claims {
            jti: String::new(),
            iat,
            iss: String::new(),
            name: name.to_owned(),
            sub: user_public.to_owned(),
            nats: UserNats {
                publish,
                subscribe,
                subs: -1,
                data: -1,
                payload: -1,
                issuer_account: account.public_key.clone(),
                tags,
                kind: "user".into(),
                version: 2,
            },
        },
        signing_key,
        iat,
    )
}

fn read_info(layout: &Layout) -> Result<ClusterInfo, ClusterError> {
    let path = layout.file(CLUSTER_JSON);
    let text = layout.read_text(&path)?;
    let info: ClusterInfo = serde_json::from_str(&text)
        .map_err(|e| ClusterError::Corrupt(format!("{}: {e}", path.display())))?;
    if info.format != FORMAT {
        return Err(ClusterError::Corrupt(format!(
            "{}: format {} is not {FORMAT}",
            path.display(),
            info.format
        )));
    }
    Ok(info)
}

fn info_bytes(info: &ClusterInfo) -> Result<Vec<u8>, ClusterError> {
    let mut v = serde_json::to_vec_pretty(info)
        .map_err(|e| ClusterError::Corrupt(format!("cannot encode cluster.json: {e}")))?;
    v.push(b'\n');
    Ok(v)
}

/// Reads `DIR/cluster.json`.
pub fn read(dir: &Path) -> Result<ClusterInfo, ClusterError> {
    read_info(&Layout::existing(dir)?)
}

/// Refuses a target that holds anything: an existing cluster is never overwritten.
fn check_init_target(dir: &Path) -> Result<bool, ClusterError> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(store::io_error(dir, e)),
        Ok(m) if !m.is_dir() => Err(ClusterError::Conflict(format!(
            "{} exists and is not a directory",
            dir.display()
        ))),
        Ok(_) => {
            if dir.join(CLUSTER_JSON).exists() {
                return Err(ClusterError::Conflict(format!(
                    "a cluster already exists in {}: refusing to overwrite it (its keys sign every node's credentials)",
                    dir.display()
                )));
            }
            let mut entries = fs::read_dir(dir).map_err(|e| store::io_error(dir, e))?;
            if entries.next().is_some() {
                return Err(ClusterError::Conflict(format!(
                    "{} is not empty: give a new or empty directory",
                    dir.display()
                )));
            }
            Ok(true)
        }
    }
}

/// Creates a cluster in `dir` (new, or empty): keys, JWTs, `sys.creds`, `cluster.json`.
pub fn init(dir: &Path) -> Result<InitSummary, ClusterError> {
    let existed = check_init_target(dir)?;
    if !existed {
        // Creating missing parents would hide a mistyped --dir; say so instead.
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !parent.is_dir() {
            return Err(ClusterError::Invalid(format!(
                "{} does not exist: create it first",
                parent.display()
            )));
        }
    }
    let operator = KeyPair::new_operator();
    let hub = KeyPair::new_account();
    let hub_signing = KeyPair::new_account();
    let sys = KeyPair::new_account();
    let sys_signing = KeyPair::new_account();
    let sys_user = KeyPair::new_user();
    let created = now();
    let iat = created.timestamp();
    let info = ClusterInfo {
        format: FORMAT,
        created_at: created,
        operator: Entity {
            name: OPERATOR_NAME.into(),
            public_key: operator.public_key(),
        },
        system_account: AccountInfo {
            name: SYS_ACCOUNT.into(),
            public_key: sys.public_key(),
            signing_key: sys_signing.public_key(),
        },
        system_user: Entity {
            name: SYS_USER.into(),
            public_key: sys_user.public_key(),
        },
        account: AccountInfo {
            name: HUB_ACCOUNT.into(),
            public_key: hub.public_key(),
            signing_key: hub_signing.public_key(),
        },
        nodes: vec![],
        revoked: vec![],
    };
    // Everything is signed before the first byte is written.
    let files: Vec<(PathBuf, Vec<u8>)> = {
        let layout = Layout::new(dir);
        let sys_creds = jwt::creds_file(
            &user_jwt(
                SYS_USER,
                &info.system_user.public_key,
                &info.system_account,
                &sys_signing,
                None,
                iat,
            )?,
            &key_pair_seed(&sys_user)?,
        );
        let mut files = vec![
            (
                layout.file(OPERATOR_JWT),
                operator_jwt(&info, &operator, iat)?.into_bytes(),
            ),
            (
                layout.account_jwt(HUB_ACCOUNT),
                account_jwt(&info, &info.account, &operator, iat)?.into_bytes(),
            ),
            (
                layout.account_jwt(SYS_ACCOUNT),
                account_jwt(&info, &info.system_account, &operator, iat)?.into_bytes(),
            ),
            (layout.file(SYS_CREDS), sys_creds.into_bytes()),
        ];
        for (name, kp) in [
            ("operator", &operator),
            (HUB_ACCOUNT, &hub),
            ("HUB.signing", &hub_signing),
            (SYS_ACCOUNT, &sys),
            ("SYS.signing", &sys_signing),
        ] {
            let mut seed = key_pair_seed(kp)?.into_bytes();
            seed.push(b'\n');
            files.push((layout.key(name), seed));
        }
        files.push((layout.file(LOCK), vec![]));
        // cluster.json last: a directory without it is not a cluster yet.
        files.push((layout.file(CLUSTER_JSON), info_bytes(&info)?));
        files
    };
    let written = write_cluster(dir, existed, &files);
    if let Err(e) = written {
        // Leave the target as it was: gone if it did not exist, empty if it did.
        if existed {
            for (path, _) in &files {
                let _ = fs::remove_file(path);
            }
            let _ = fs::remove_dir(dir.join(KEYS_DIR));
        } else {
            let _ = fs::remove_dir_all(dir);
        }
        return Err(e);
    }
    Ok(InitSummary {
        dir: dir.to_path_buf(),
        info,
    })
}

fn write_cluster(
    dir: &Path,
    existed: bool,
    files: &[(PathBuf, Vec<u8>)],
) -> Result<(), ClusterError> {
    if existed {
        store::make_private(dir)?;
    } else {
        store::create_private_dir(dir)?;
    }
    store::create_private_dir(&dir.join(KEYS_DIR))?;
    for (path, bytes) in files {
        store::write_new(path, bytes)?;
    }
    Ok(())
}

/// Mints `DIR/<name>.creds` for a new node with `role`.
pub fn add_node(dir: &Path, name: &str, role: Role) -> Result<NodeSummary, ClusterError> {
    validate_name(name)?;
    let layout = Layout::existing(dir)?;
    let _lock = layout.lock()?;
    let mut info = read_info(&layout)?;
    if let Some(r) = info.revoked.iter().find(|r| r.name == name) {
        return Err(ClusterError::Conflict(format!(
            "node {name} was revoked at {}: a revoked name is never reused (its subjects and history stay tied to the old key); choose another name",
            r.revoked_at.to_rfc3339()
        )));
    }
    if let Some(n) = info.nodes.iter().find(|n| n.name == name) {
        return Err(ClusterError::Conflict(format!(
            "node {name} already exists (role {}, {}); revoke it first or choose another name",
            n.role,
            layout.creds(name).display()
        )));
    }
    let creds_path = layout.creds(name);
    if creds_path.exists() {
        return Err(ClusterError::Conflict(format!(
            "{} exists but cluster.json has no node {name}: move it away first",
            creds_path.display()
        )));
    }
    let signing = layout.read_key("HUB.signing", &info.account.signing_key)?;
    let user = KeyPair::new_user();
    let created = now();
    let jwt = user_jwt(
        name,
        &user.public_key(),
        &info.account,
        &signing,
        Some((role, permissions(role, name))),
        created.timestamp(),
    )?;
    let creds = jwt::creds_file(&jwt, &key_pair_seed(&user)?);
    let node = NodeInfo {
        name: name.to_owned(),
        role,
        public_key: user.public_key(),
        created_at: created,
    };
    info.nodes.push(node.clone());
    let bytes = info_bytes(&info)?;
    store::write_new(&creds_path, creds.as_bytes())?;
    if let Err(e) = store::replace(&layout.file(CLUSTER_JSON), &bytes) {
        let _ = fs::remove_file(&creds_path);
        return Err(e);
    }
    Ok(NodeSummary {
        node,
        creds: creds_path,
        signed_by: info.account.signing_key.clone(),
    })
}

/// The file half of a revocation: the new `HUB.jwt` and `cluster.json`, the creds deleted.
/// Returns the revoked node, whether this call revoked it, and the account JWT to push.
fn revoke_files(
    layout: &Layout,
    name: &str,
    pushing: bool,
) -> Result<(RevokedNode, bool, String), ClusterError> {
    let _lock = layout.lock()?;
    let mut info = read_info(layout)?;
    let hub_path = layout.account_jwt(HUB_ACCOUNT);
    let current = layout.read_text(&hub_path)?;
    if let Some(r) = info.revoked.iter().find(|r| r.name == name) {
        if !pushing {
            return Err(ClusterError::Conflict(format!(
                "node {name} was already revoked at {}; to push the account JWT to running servers again, add --server URL",
                r.revoked_at.to_rfc3339()
            )));
        }
        return Ok((r.clone(), false, current.trim().to_owned()));
    }
    let Some(pos) = info.nodes.iter().position(|n| n.name == name) else {
        let known: Vec<&str> = info.nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(ClusterError::UnknownNode(format!(
            "no node named {name} in {} (nodes: {})",
            layout.dir.display(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    };
    let operator = layout.read_key("operator", &info.operator.public_key)?;
    // A server keeps the account JWT it has when the new one was issued earlier: never go
    // back in time, even if the clock did.
    let previous: Claims<AccountNats> = jwt::decode(&current)?;
    if previous.iss != info.operator.public_key || previous.sub != info.account.public_key {
        return Err(ClusterError::Corrupt(format!(
            "{} is not the {HUB_ACCOUNT} account JWT signed by this operator",
            hub_path.display()
        )));
    }
    let revoked_at = now();
    let iat = revoked_at.timestamp().max(previous.iat);
    let node = info.nodes.remove(pos);
    let revoked = RevokedNode {
        name: node.name,
        role: node.role,
        public_key: node.public_key,
        created_at: node.created_at,
        revoked_at,
    };
    info.revoked.push(revoked.clone());
    let new_jwt = account_jwt(&info, &info.account, &operator, iat)?;
    let bytes = info_bytes(&info)?;
    store::replace(&hub_path, new_jwt.as_bytes())?;
    if let Err(e) = store::replace(&layout.file(CLUSTER_JSON), &bytes) {
        let _ = store::replace(&hub_path, current.as_bytes());
        return Err(e);
    }
    let creds = layout.creds(name);
    match fs::remove_file(&creds) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(store::io_error(&creds, e)),
    }
    Ok((revoked, true, new_jwt))
}

/// Revokes node `name`: its user key joins `HUB`'s revocations, the operator re-signs the
/// account JWT, `cluster.json` records it and `<name>.creds` is deleted. Then, when `push`
/// names servers (`nats://host:4222`, any of the cluster), the new account JWT is sent with
/// the `sys` creds on `$SYS.REQ.CLAIMS.UPDATE` and every server's answer is collected: a
/// server that accepts it closes the node's connections at once.
///
/// Pushing is best effort: the files are the record, so a failed push is reported in
/// [`RevokeReport::push`], not as an error. Revoking a node revoked before only pushes again.
pub async fn revoke_node(
    dir: &Path,
    name: &str,
    push: &[String],
) -> Result<RevokeReport, ClusterError> {
    validate_name(name)?;
    let servers = push::parse_servers(push)?;
    let layout = Layout::existing(dir)?;
    let (node, newly_revoked, account_jwt) = revoke_files(&layout, name, !servers.is_empty())?;
    let outcome = if servers.is_empty() {
        PushOutcome::NotRequested
    } else {
        push::push_account_jwt(&layout.file(SYS_CREDS), servers, &account_jwt).await
    };
    Ok(RevokeReport {
        node,
        newly_revoked,
        dir: dir.to_path_buf(),
        push: outcome,
    })
}

#[cfg(test)]
mod tests;
