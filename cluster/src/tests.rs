//! Unit tests: names, refusals, and that the JWTs say what was asked.

use super::*;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

/// Every file under `dir` with its mode and bytes: "nothing changed" compares two of these.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = fs::metadata(&d).expect("stat");
        out.insert(d.clone(), (meta.permissions().mode(), vec![]));
        for e in fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            let m = fs::metadata(&p).expect("stat");
            if m.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.clone(),
                    (m.permissions().mode(), fs::read(&p).expect("read")),
                );
            }
        }
    }
    out
}

/// An operator, account or user seed (58 characters, `SO…`, `SA…`, `SU…`) anywhere in `text`.
fn has_seed(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
        w.len() == 58 && (w.starts_with("SO") || w.starts_with("SA") || w.starts_with("SU"))
    })
}

fn new_cluster() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    init(&dir).expect("init");
    (tmp, dir)
}

fn creds_jwt(path: &Path) -> Claims<UserNats> {
    let text = fs::read_to_string(path).expect("creds");
    jwt::decode(jwt::jwt_of_creds(&text).expect("jwt block")).expect("decodes")
}

#[test]
fn names() {
    for ok in ["a", "node-1", "0", "rpc-eu-west-3", &"x".repeat(63)] {
        validate_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "",
        "A",
        "node_1",
        "node.1",
        "nöde",
        "a b",
        "a/b",
        "..",
        "sys",
        &"x".repeat(64),
    ] {
        assert!(
            matches!(validate_name(bad), Err(ClusterError::Invalid(_))),
            "{bad:?}"
        );
    }
    assert_eq!("rpc".parse::<Role>().ok(), Some(Role::Rpc));
    assert_eq!("frontend".parse::<Role>().ok(), Some(Role::Frontend));
    assert!("admin".parse::<Role>().is_err());
}

#[test]
fn init_refuses_to_overwrite() {
    let (tmp, dir) = new_cluster();
    let before = snapshot(&dir);
    let e = init(&dir).expect_err("second init");
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(snapshot(&dir), before);
    // A non-empty directory that is not a cluster, and a file, are refused too.
    let other = tmp.path().join("other");
    fs::create_dir(&other).expect("mkdir");
    fs::write(other.join("notes.txt"), "x").expect("write");
    assert!(
        init(&other)
            .expect_err("non-empty")
            .to_string()
            .contains("not empty")
    );
    assert!(init(&other.join("notes.txt")).is_err());
    // A missing parent is an error, not a silent mkdir -p.
    assert!(init(&tmp.path().join("a/b/c")).is_err());
    assert!(!tmp.path().join("a").exists());
    // An empty directory is fine, and becomes 0700.
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    fs::set_permissions(&empty, fs::Permissions::from_mode(0o755)).expect("chmod");
    init(&empty).expect("empty dir");
    assert_eq!(
        fs::metadata(&empty).expect("stat").permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn files_are_private_and_hold_no_seed_outside_keys_and_creds() {
    let (_tmp, dir) = new_cluster();
    add_node(&dir, "n1", Role::Rpc).expect("add");
    for (path, (mode, bytes)) in snapshot(&dir) {
        let perm = mode & 0o777;
        if path.is_dir() {
            assert_eq!(perm, 0o700, "{}", path.display());
            continue;
        }
        assert_eq!(perm, 0o600, "{}", path.display());
        let text = String::from_utf8(bytes).expect("utf-8");
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let secret =
            path.parent().is_some_and(|p| p.ends_with(KEYS_DIR)) || name.ends_with(".creds");
        assert_eq!(has_seed(&text), secret, "{}", path.display());
    }
}

#[test]
fn claims_say_what_was_asked() {
    let (_tmp, dir) = new_cluster();
    let info = read(&dir).expect("read");
    // Operator: self-signed, names the system account.
    let op: Claims<OperatorNats> =
        jwt::decode(&fs::read_to_string(dir.join(OPERATOR_JWT)).expect("read")).expect("decode");
    assert_eq!(op.iss, info.operator.public_key);
    assert_eq!(op.sub, info.operator.public_key);
    assert!(op.iss.starts_with('O'));
    assert_eq!(op.nats.system_account, info.system_account.public_key);
    assert_eq!(op.nats.kind, "operator");
    // Accounts: signed by the operator, each listing its own signing key; JetStream for HUB only.
    for (account, js) in [(&info.account, true), (&info.system_account, false)] {
        let a: Claims<AccountNats> = jwt::decode(
            &fs::read_to_string(dir.join(format!("{}.jwt", account.name))).expect("read"),
        )
        .expect("decode");
        assert_eq!(a.iss, info.operator.public_key);
        assert_eq!(a.sub, account.public_key);
        assert_eq!(a.nats.signing_keys, vec![account.signing_key.clone()]);
        assert_ne!(account.signing_key, account.public_key);
        assert_eq!(a.nats.limits.disk_storage != 0, js);
        assert!(a.nats.revocations.is_empty());
    }
    // The system user: signed by SYS's signing key on behalf of SYS.
    let sys = creds_jwt(&dir.join(SYS_CREDS));
    assert_eq!(sys.iss, info.system_account.signing_key);
    assert_eq!(sys.nats.issuer_account, info.system_account.public_key);
    assert_eq!(sys.sub, info.system_user.public_key);

    // Nodes: signed by HUB's signing key, never its identity key; the role's permissions.
    for (name, role) in [("rpc-1", Role::Rpc), ("fe-1", Role::Frontend)] {
        let s = add_node(&dir, name, role).expect("add");
        let u = creds_jwt(&s.creds);
        assert_eq!(u.iss, info.account.signing_key);
        assert_ne!(u.iss, info.account.public_key);
        assert_eq!(u.nats.issuer_account, info.account.public_key);
        assert_eq!(u.sub, s.node.public_key);
        assert!(u.sub.starts_with('U'));
        assert_eq!(u.name, name);
        let p = permissions(role, name);
        assert_eq!(u.nats.publish.allow, p.publish);
        assert_eq!(u.nats.subscribe.allow, vec![format!("_INBOX_{name}.>")]);
        assert!(
            u.nats
                .publish
                .allow
                .contains(&format!("$KV.nexus_nodes.{name}"))
        );
        assert_eq!(
            u.nats.publish.allow.iter().any(|s| s == "nexus.inval.>"),
            role == Role::Rpc
        );
        assert_eq!(
            u.nats.publish.allow.iter().any(|s| s == "nexus.audit.mcp"),
            role == Role::Frontend
        );
    }
}

#[test]
fn duplicates_and_revoked_names_are_refused() {
    let (_tmp, dir) = new_cluster();
    add_node(&dir, "n1", Role::Rpc).expect("add");
    let before = snapshot(&dir);
    let e = add_node(&dir, "n1", Role::Frontend).expect_err("duplicate");
    assert!(e.to_string().contains("already exists"), "{e}");
    assert!(add_node(&dir, "N1", Role::Rpc).is_err());
    assert!(add_node(&dir, "sys", Role::Rpc).is_err());
    assert_eq!(snapshot(&dir), before);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let r = rt.block_on(revoke_node(&dir, "n1", &[])).expect("revoke");
    assert!(r.newly_revoked);
    assert!(!r.confirmed());
    assert!(r.to_string().contains("--server"), "{r}");
    assert!(!dir.join("n1.creds").exists());
    let before = snapshot(&dir);
    let e = add_node(&dir, "n1", Role::Rpc).expect_err("revoked name");
    assert!(e.to_string().contains("was revoked"), "{e}");
    // Revoking again without a server to push to is an error; nothing changes.
    let e = rt
        .block_on(revoke_node(&dir, "n1", &[]))
        .expect_err("again");
    assert!(e.to_string().contains("already revoked"), "{e}");
    assert_eq!(snapshot(&dir), before);
}

#[tokio::test]
async fn revoking_an_unknown_node_changes_nothing() {
    let (_tmp, dir) = new_cluster();
    add_node(&dir, "n1", Role::Frontend).expect("add");
    let before = snapshot(&dir);
    let e = revoke_node(&dir, "ghost", &[]).await.expect_err("unknown");
    assert!(matches!(e, ClusterError::UnknownNode(_)), "{e}");
    assert!(e.to_string().contains("n1"), "{e}");
    let e = revoke_node(&dir, "n1", &["http://[bad".into()])
        .await
        .expect_err("bad url");
    assert!(matches!(e, ClusterError::Invalid(_)), "{e}");
    assert!(revoke_node(&dir, "Bad_Name", &[]).await.is_err());
    assert_eq!(snapshot(&dir), before);
    let missing = dir.join("nope");
    assert!(matches!(
        revoke_node(&missing, "n1", &[]).await,
        Err(ClusterError::NoCluster(_))
    ));
    assert!(matches!(
        add_node(&missing, "n1", Role::Rpc),
        Err(ClusterError::NoCluster(_))
    ));
}

#[tokio::test]
async fn revocations_accumulate_in_the_account_jwt() {
    let (_tmp, dir) = new_cluster();
    let a = add_node(&dir, "a", Role::Rpc).expect("add");
    let b = add_node(&dir, "b", Role::Frontend).expect("add");
    let c = add_node(&dir, "c", Role::Rpc).expect("add");
    let first_jwt = fs::read_to_string(dir.join("HUB.jwt")).expect("read");
    revoke_node(&dir, "a", &[]).await.expect("revoke a");
    let mid_jwt = fs::read_to_string(dir.join("HUB.jwt")).expect("read");
    revoke_node(&dir, "b", &[]).await.expect("revoke b");
    let info = read(&dir).expect("read");
    assert_eq!(info.nodes.len(), 1);
    assert_eq!(info.nodes[0].public_key, c.node.public_key);
    assert_eq!(info.revoked.len(), 2);
    let hub: Claims<AccountNats> =
        jwt::decode(&fs::read_to_string(dir.join("HUB.jwt")).expect("read")).expect("decode");
    assert_eq!(hub.iss, info.operator.public_key);
    assert_eq!(
        hub.nats.signing_keys,
        vec![info.account.signing_key.clone()]
    );
    let revoked: Vec<&String> = hub.nats.revocations.keys().collect();
    let mut want = vec![&a.node.public_key, &b.node.public_key];
    want.sort();
    assert_eq!(revoked, want);
    // Each revocation covers the user's JWT (issued at or before it).
    let a_iat = a.node.created_at.timestamp();
    assert!(hub.nats.revocations[&a.node.public_key] >= a_iat);
    // Every re-signed account JWT is distinct and never older than the one before.
    let first: Claims<AccountNats> = jwt::decode(&first_jwt).expect("decode");
    let mid: Claims<AccountNats> = jwt::decode(&mid_jwt).expect("decode");
    assert_ne!(first.jti, mid.jti);
    assert_ne!(mid.jti, hub.jti);
    assert!(first.iat <= mid.iat && mid.iat <= hub.iat);
    // cluster.json holds no seed.
    let json = fs::read_to_string(dir.join(CLUSTER_JSON)).expect("read");
    assert!(!has_seed(&json), "{json}");
}

#[test]
fn config_needs_a_cluster_and_valid_input() {
    let (tmp, dir) = new_cluster();
    let c = NatsConfig::new("n1", vec!["nats://n1:6222,nats://n2:6222".into()]);
    let text = nats_config(&dir, &c).expect("config");
    let info = read(&dir).expect("read");
    assert!(text.contains("server_name: \"n1\""));
    assert!(text.contains(&format!(
        "system_account: \"{}\"",
        info.system_account.public_key
    )));
    assert!(text.contains("type: full"));
    assert!(text.contains("dir: \"/var/lib/nats/jwt\""));
    assert!(text.contains(&format!("  {}: \"", info.account.public_key)));
    assert!(text.contains(&format!("  {}: \"", info.system_account.public_key)));
    assert!(text.contains("store_dir: \"/var/lib/nats\""));
    assert!(text.contains("\"nats://n2:6222\""));
    assert!(text.contains("listen: \"0.0.0.0:6222\""));
    assert!(text.contains("SECURITY"));
    assert!(nats_config(&tmp.path().join("none"), &c).is_err());
    let mut bad = c.clone();
    bad.routes = vec!["n2:6222".into()];
    assert!(matches!(
        nats_config(&dir, &bad),
        Err(ClusterError::Invalid(_))
    ));
}
