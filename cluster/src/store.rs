//! The cluster directory on disk: where each file lives, owner-only permissions, writes that
//! never leave a half-written file, and the lock that serializes commands.
//!
//! ```text
//! DIR/                 0700
//!   cluster.json       what exists: names, public keys, roles, revoked nodes (no seeds)
//!   operator.jwt       the operator JWT (the servers' root of trust)
//!   HUB.jwt SYS.jwt    the account JWTs (re-signed by the operator on each revocation)
//!   sys.creds          the system account's user: pushes account JWTs to running servers
//!   <node>.creds       one per node: user JWT + seed
//!   keys/              0700: operator.nk, HUB.nk, HUB.signing.nk, SYS.nk, SYS.signing.nk
//!   .lock              held (flock) while a command changes the directory
//! ```
//!
//! Every file is 0600. Seeds are only ever written here, never returned or printed.

use crate::ClusterError;
use nkeys::KeyPair;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub(crate) const CLUSTER_JSON: &str = "cluster.json";
pub(crate) const OPERATOR_JWT: &str = "operator.jwt";
pub(crate) const SYS_CREDS: &str = "sys.creds";
pub(crate) const KEYS_DIR: &str = "keys";
pub(crate) const LOCK: &str = ".lock";

const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// Paths inside one cluster directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn account_jwt(&self, account: &str) -> PathBuf {
        self.dir.join(format!("{account}.jwt"))
    }

    pub(crate) fn creds(&self, user: &str) -> PathBuf {
        self.dir.join(format!("{user}.creds"))
    }

    pub(crate) fn key(&self, name: &str) -> PathBuf {
        self.dir.join(KEYS_DIR).join(format!("{name}.nk"))
    }

    /// Opens an existing cluster: `cluster.json` must be there.
    pub(crate) fn existing(dir: &Path) -> Result<Self, ClusterError> {
        let layout = Self::new(dir);
        match fs::metadata(layout.file(CLUSTER_JSON)) {
            Ok(m) if m.is_file() => Ok(layout),
            Ok(_) => Err(ClusterError::Corrupt(format!(
                "{} is not a file",
                layout.file(CLUSTER_JSON).display()
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ClusterError::NoCluster(dir.to_path_buf()))
            }
            Err(e) => Err(io_error(&layout.file(CLUSTER_JSON), e)),
        }
    }

    /// Takes the directory's lock, or says that another command holds it.
    pub(crate) fn lock(&self) -> Result<DirLock, ClusterError> {
        let path = self.file(LOCK);
        // `init` creates the lock file; create it again only if someone removed it.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(ClusterError::Conflict(format!(
                "another `nexus hub cluster` command is changing {} right now; try again when it has finished",
                self.dir.display()
            ))),
            Err(fs::TryLockError::Error(e)) => Err(io_error(&path, e)),
        }
    }

    pub(crate) fn read_text(&self, path: &Path) -> Result<String, ClusterError> {
        fs::read_to_string(path).map_err(|e| io_error(path, e))
    }

    /// A key pair from `keys/<name>.nk`, checked against the public key `cluster.json`
    /// records for it (a swapped key file would otherwise sign for the wrong identity).
    pub(crate) fn read_key(
        &self,
        name: &str,
        expected_public: &str,
    ) -> Result<KeyPair, ClusterError> {
        let path = self.key(name);
        let seed = self.read_text(&path)?;
        let kp = KeyPair::from_seed(seed.trim()).map_err(|_| {
            ClusterError::Corrupt(format!("{} does not hold an nkey seed", path.display()))
        })?;
        if kp.public_key() != expected_public {
            return Err(ClusterError::Corrupt(format!(
                "{} is not the key cluster.json records ({expected_public})",
                path.display()
            )));
        }
        Ok(kp)
    }
}

/// Held while a command changes the directory; released when dropped (or the process ends).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

pub(crate) fn io_error(path: &Path, e: io::Error) -> ClusterError {
    ClusterError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Creates a directory only its owner can enter (the mode is set at creation, so there is
/// no moment where it is wider).
pub(crate) fn create_private_dir(path: &Path) -> Result<(), ClusterError> {
    fs::DirBuilder::new()
        .mode(DIR_MODE)
        .create(path)
        .map_err(|e| io_error(path, e))?;
    // The umask may have narrowed it further; make it exactly 0700.
    fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE)).map_err(|e| io_error(path, e))
}

pub(crate) fn make_private(path: &Path) -> Result<(), ClusterError> {
    fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE)).map_err(|e| io_error(path, e))
}

/// Writes a file that must not exist yet, 0600 from its creation, flushed to disk.
pub(crate) fn write_new(path: &Path, contents: &[u8]) -> Result<(), ClusterError> {
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path)?;
        f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
        f.write_all(contents)?;
        f.sync_all()
    };
    write().map_err(|e| {
        if e.kind() != io::ErrorKind::AlreadyExists {
            let _ = fs::remove_file(path);
        }
        io_error(path, e)
    })
}

/// Replaces a file atomically: readers see the old or the new contents, never a mix.
pub(crate) fn replace(path: &Path, contents: &[u8]) -> Result<(), ClusterError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, contents)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error(path, e)
    })
}
