//! `NEXUS_STORAGE_URL`: where blobs live. `file:///dir` or
//! `s3://bucket[/prefix][?endpoint=URL&region=R&allow_http=true]`. Credentials never go in
//! the URL (it is printed by `storage status` and logged at startup): S3 takes them from the
//! usual `AWS_*` variables.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    File(PathBuf),
    S3(S3Url),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    /// Key prefix without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
    /// An S3-compatible server (SeaweedFS, MinIO, R2…); AWS when absent.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Plain `http://` to the endpoint (test servers, a sidecar on loopback).
    pub allow_http: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid storage URL: {0}")]
pub struct UrlError(String);

fn err(msg: impl Into<String>) -> UrlError {
    UrlError(msg.into())
}

impl StoreUrl {
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let u = url::Url::parse(raw.trim()).map_err(|e| err(format!("{e}")))?;
        if !u.username().is_empty() || u.password().is_some() {
            return Err(err(
                "credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
        match u.scheme() {
            "file" => {
                if u.host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(err("file:// URLs name a local directory (file:///path)"));
                }
                if u.query().is_some() {
                    return Err(err("file:// URLs take no parameters"));
                }
                let path = u
                    .to_file_path()
                    .map_err(|()| err("file:// needs an absolute path"))?;
                Ok(Self::File(path))
            }
            "s3" => {
                let bucket = u.host_str().unwrap_or_default().to_owned();
                if bucket.is_empty() {
                    return Err(err("s3:// needs a bucket: s3://bucket/prefix"));
                }
                let prefix = u.path().trim_matches('/').to_owned();
                if prefix.split('/').any(|c| c == ".." || c == ".") {
                    return Err(err("the key prefix may not contain '.' or '..'"));
                }
                let mut s3 = S3Url {
                    bucket,
                    prefix,
                    endpoint: None,
                    region: None,
                    allow_http: false,
                };
                for (k, v) in u.query_pairs() {
                    match &*k {
                        "endpoint" => {
                            let e =
                                url::Url::parse(&v).map_err(|e| err(format!("endpoint: {e}")))?;
                            if !matches!(e.scheme(), "http" | "https") {
                                return Err(err("endpoint must be http:// or https://"));
                            }
                            if !e.username().is_empty() || e.password().is_some() {
                                return Err(err("credentials do not belong in the endpoint"));
                            }
                            s3.allow_http |= e.scheme() == "http";
                            s3.endpoint = Some(v.trim_end_matches('/').to_owned());
                        }
                        "region" => s3.region = Some(v.into_owned()),
                        "allow_http" => {
                            s3.allow_http = match &*v {
                                "true" | "1" => true,
                                "false" | "0" => false,
                                _ => return Err(err("allow_http is true or false")),
                            }
                        }
                        other => return Err(err(format!("unknown parameter {other:?}"))),
                    }
                }
                Ok(Self::S3(s3))
            }
            other => Err(err(format!(
                "unsupported scheme {other:?}: use file:///dir or s3://bucket/prefix"
            ))),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "file://{}", p.display()),
            Self::S3(s) => {
                write!(f, "s3://{}", s.bucket)?;
                if !s.prefix.is_empty() {
                    write!(f, "/{}", s.prefix)?;
                }
                let mut sep = '?';
                if let Some(e) = &s.endpoint {
                    write!(f, "{sep}endpoint={e}")?;
                    sep = '&';
                }
                if let Some(r) = &s.region {
                    write!(f, "{sep}region={r}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::str::FromStr for StoreUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_and_s3() {
        assert_eq!(
            StoreUrl::parse("file:///var/lib/nexus/blobs").ok(),
            Some(StoreUrl::File("/var/lib/nexus/blobs".into()))
        );
        let s = StoreUrl::parse(
            "s3://nexus/hub/blobs/?endpoint=http://127.0.0.1:8333&region=us-east-1",
        )
        .expect("valid");
        let StoreUrl::S3(s3) = &s else { panic!("s3") };
        assert_eq!(s3.bucket, "nexus");
        assert_eq!(s3.prefix, "hub/blobs");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert!(s3.allow_http);
        assert_eq!(
            s.to_string(),
            "s3://nexus/hub/blobs?endpoint=http://127.0.0.1:8333&region=us-east-1"
        );
    }

    #[test]
    fn refuses_credentials_and_nonsense() {
        for bad in [
            "s3://AKIA:secret@bucket/x",
            "s3:///x",
            "s3://b/x?endpoint=ftp://h",
            "s3://b/x?what=1",
            "file://host/x",
            "file:///x?y=1",
            "gs://b",
            "relative/dir",
        ] {
            let e = StoreUrl::parse(bad).expect_err(bad);
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }
}
