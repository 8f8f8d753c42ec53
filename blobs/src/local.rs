//! [`LocalDir`]: blobs as files `<root>/<id[0..2]>/<id>`. A put writes a temporary file
//! beside its target, fsyncs it, renames it into place and fsyncs the directory, so an
//! acknowledged blob survives a crash and a reader sees a whole blob or none. Temporary
//! files are locked while written; ones left by a crashed writer are swept when the store
//! opens.

use super::{BlobError, BlobStore, ContentId, Put};
use bytes::Bytes;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const TEMP_PREFIX: &str = ".tmp-";

#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

fn other(e: io::Error) -> BlobError {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            BlobError::Unavailable("storage full".into())
        }
        _ => BlobError::Other(e.to_string()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Other(format!("blob task failed: {e}")))?
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

impl LocalDir {
    /// Opens (creating it, mode 0700) the directory and sweeps abandoned temporary files.
    pub async fn open(root: &Path) -> Result<Self, BlobError> {
        let root = root.to_owned();
        blocking(move || {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&root)
                .map_err(other)?;
            let store = Self { root };
            store.sweep();
            Ok(store)
        })
        .await
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, id: &ContentId) -> PathBuf {
        self.root.join(id.shard()).join(id.as_str())
    }

    /// Deletes temporary files no writer holds (their writer died before the rename).
    fn sweep(&self) {
        use rustix::fs::{FlockOperation, flock};
        let Ok(shards) = fs::read_dir(&self.root) else {
            return;
        };
        for shard in shards.flatten() {
            let Ok(entries) = fs::read_dir(shard.path()) else {
                continue;
            };
            for e in entries.flatten() {
                if !e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    continue;
                }
                let held = fs::File::open(e.path())
                    .map(|f| flock(&f, FlockOperation::NonBlockingLockExclusive).is_err())
                    .unwrap_or(true);
                if !held {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    fn put_blocking(&self, id: &ContentId, bytes: &[u8]) -> Result<Put, BlobError> {
        let target = self.path(id);
        if target.exists() {
            return Ok(Put::Existed);
        }
        let shard = self.root.join(id.shard());
        match fs::create_dir(&shard) {
            Ok(()) => fsync_dir(&self.root).map_err(other)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(other(e)),
        }
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| BlobError::Other(e.to_string()))?;
        let tmp = shard.join(format!("{TEMP_PREFIX}{}", hex::encode(suffix)));
        let res = (|| -> io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            // Marks the file in flight for a sweep by another process sharing the directory.
            let _ = rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive);
            f.write_all(bytes)?;
            f.sync_all()?;
            // Same name, same bytes: replacing a blob another writer just stored is harmless.
            fs::rename(&tmp, &target)?;
            fsync_dir(&shard)
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(other(e));
        }
        Ok(Put::Created)
    }

    fn list_blocking(
        &self,
        after: Option<&ContentId>,
        limit: usize,
    ) -> Result<Vec<ContentId>, BlobError> {
        let mut shards: Vec<String> = match fs::read_dir(&self.root) {
            Ok(rd) => rd
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(other(e)),
        };
        shards.sort();
        let mut out = Vec::new();
        for shard in shards {
            if after.is_some_and(|a| shard.as_str() < a.shard()) {
                continue;
            }
            let mut ids: Vec<ContentId> = fs::read_dir(self.root.join(&shard))
                .map_err(other)?
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| ContentId::parse(&n).ok())
                .filter(|id| id.shard() == shard && after.is_none_or(|a| id > a))
                .collect();
            ids.sort();
            for id in ids {
                if out.len() == limit {
                    return Ok(out);
                }
                out.push(id);
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl BlobStore for LocalDir {
    async fn put(&self, id: &ContentId, bytes: Bytes) -> Result<Put, BlobError> {
        let (me, id) = (self.clone(), id.clone());
        blocking(move || me.put_blocking(&id, &bytes)).await
    }

    async fn get(&self, id: &ContentId) -> Result<Bytes, BlobError> {
        let (path, id) = (self.path(id), id.clone());
        blocking(move || match fs::read(&path) {
            Ok(bytes) if id.matches(&bytes) => Ok(Bytes::from(bytes)),
            Ok(_) => Err(BlobError::Corrupt(id)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BlobError::NotFound(id)),
            Err(e) => Err(other(e)),
        })
        .await
    }

    async fn delete(&self, id: &ContentId) -> Result<(), BlobError> {
        let (path, shard) = (self.path(id), self.root.join(id.shard()));
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => fsync_dir(&shard).map_err(other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(other(e)),
        })
        .await
    }

    async fn exists(&self, id: &ContentId) -> Result<bool, BlobError> {
        let path = self.path(id);
        blocking(move || match fs::symlink_metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(other(e)),
        })
        .await
    }

    async fn list(
        &self,
        after: Option<&ContentId>,
        limit: usize,
    ) -> Result<Vec<ContentId>, BlobError> {
        let (me, after) = (self.clone(), after.cloned());
        blocking(move || me.list_blocking(after.as_ref(), limit)).await
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}
