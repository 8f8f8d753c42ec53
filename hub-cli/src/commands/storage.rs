//! `nexus hub storage status|gc|migrate`: the file storage seen from the hub host, beside
//! the running servers (the database and the blob store are shared; nothing here needs a
//! server to be up).

use super::hub::{connect, db_url};
use crate::cli::{StorageArgs, StorageCommand};
use crate::error::CliError;
use crate::output;
use nexus_blobs::StoreUrl;
use rpc_server::files::maintenance;
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;

/// The blob store the servers use: the given URL, or for an embedded hub (SQLite) the
/// `blobs/` directory beside its database, as `nexus hub up` sets it.
fn store_url(given: Option<&str>, db: &SecretString) -> Result<StoreUrl, CliError> {
    if let Some(u) = given.map(str::trim).filter(|u| !u.is_empty()) {
        return u
            .parse()
            .map_err(|e| CliError::new(format!("NEXUS_STORAGE_URL: {e}")));
    }
    let db = db.expose_secret();
    let file = db
        .strip_prefix("sqlite://")
        .or_else(|| db.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| p.starts_with('/'));
    match file.and_then(|f| std::path::Path::new(f).parent()) {
        Some(dir) => Ok(StoreUrl::File(dir.join("blobs"))),
        None => Err(CliError::new(
            "NEXUS_STORAGE_URL is not set: give the servers' blob store (file:///dir or s3://bucket/prefix?endpoint=…)",
        )),
    }
}

async fn open(url: &StoreUrl) -> Result<std::sync::Arc<dyn nexus_blobs::BlobStore>, CliError> {
    nexus_blobs::open(url)
        .await
        .map_err(|e| CliError::new(format!("cannot open the blob store {url}: {e}")))
}

fn failed(what: &str) -> impl Fn(anyhow::Error) -> CliError + '_ {
    move |e| CliError::new(format!("{what}: {e}"))
}

pub(crate) async fn run(
    db: Option<&SecretString>,
    a: StorageArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let db = db_url(db)?;
    let url = store_url(a.storage_url.as_deref(), db)?;
    let store = connect(db).await?;
    let backing = open(&url).await?;
    match a.command {
        StorageCommand::Status { json } => {
            let s = maintenance::status(&store, backing.as_ref())
                .await
                .map_err(failed("storage status"))?;
            if json {
                return output::json(out, &s);
            }
            let st = &s.stats;
            for line in [
                format!("database:     {}", s.database),
                format!("blob store:   {} ({})", s.store, s.store_health),
                format!(
                    "files:        {} in {} zones, {} directories, {} bytes",
                    st.files, st.zones, st.directories, st.logical_bytes
                ),
                format!(
                    "blobs:        {} ({} bytes; {} inline in the database)",
                    st.blobs, st.blob_bytes, st.inline_blobs
                ),
                format!("grep index:   {} blobs of text", st.text_indexed),
                format!(
                    "unreferenced: {} (collected after their grace period)",
                    st.unreferenced
                ),
            ] {
                output::line(out, &line)?;
            }
            if s.store_health != "ok" {
                return Err(CliError::with_code("the blob store does not answer", 2));
            }
            Ok(())
        }
        StorageCommand::Gc { grace, json } => {
            let c = maintenance::collect(&store, backing, grace)
                .await
                .map_err(failed("storage gc"))?;
            if json {
                return output::json(out, &c);
            }
            if c.skipped {
                return output::line(out, "another node is collecting now; nothing done");
            }
            output::line(
                out,
                &format!(
                    "removed {} unreferenced blobs ({} bytes){}",
                    c.removed,
                    c.bytes,
                    if c.failed > 0 {
                        format!(
                            "; {} could not be removed and stay for the next round",
                            c.failed
                        )
                    } else {
                        String::new()
                    }
                ),
            )
        }
        StorageCommand::Migrate { to, json } => {
            let to_url: StoreUrl = to
                .parse()
                .map_err(|e| CliError::new(format!("--to: {e}")))?;
            let dest = open(&to_url).await?;
            let m = maintenance::migrate(&store, backing.as_ref(), dest.as_ref(), |_| {})
                .await
                .map_err(failed("storage migrate"))?;
            if json {
                return output::json(out, &m);
            }
            output::line(
                out,
                &format!(
                    "copied {} blobs ({} bytes) to {}; {} were there already; {} missing from the source",
                    m.copied, m.bytes, to_url, m.present, m.missing
                ),
            )?;
            output::line(
                out,
                &format!(
                    "next: restart every nexusd with NEXUS_STORAGE_URL={to_url} and NEXUS_STORAGE_PREVIOUS_URL={url} (a blob not copied yet is read from the previous store and copied on the way), run this command once more, then drop NEXUS_STORAGE_PREVIOUS_URL"
                ),
            )
        }
    }
}
