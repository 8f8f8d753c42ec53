//! Resource subscriptions (SPEC §14): `resources/subscribe` of a legacy session, and the
//! 2026-07-28 `subscriptions/listen` stream. A subscription is taken only for a file the
//! caller may read (checked by the rpc-server's `stat` with the caller's token, which also
//! names the zone and the path below its root); it is then matched against the
//! `file_changed` announcements every rpc node makes after a committed change, read from
//! the cluster bus (or, in the embedded hub, from the rpc-server in this process). A
//! notification carries only the URI the subscriber gave.
//!
//! The frontend keeps no token, so it cannot ask again at notification time whether the
//! subscriber may still read the file. It fails closed instead: a revoked or changed token
//! (`token`) loses its subscriptions, as does a deleted zone (`zone`); a change that may
//! narrow anyone's reading (`rebac`, `subject`, `all`, or a gap in what was read) suspends
//! every subscription. A suspended legacy subscription is checked again with the token of
//! its session's next request and resumes or ends; a listen stream ends (its final result),
//! and the client listens again with its token. Subscriptions live on the replica that
//! took them (where the session's stream is).

use nexus_wire::bus::{Invalidation, KeyId};
use nexus_wire::methods::StatResult;
use rmcp::RoleServer;
use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::Peer;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

/// Subscriptions one session or listen stream may hold.
pub(crate) const MAX_PER_OWNER: usize = 100;
/// Subscriptions this replica holds in all.
const MAX_TOTAL: usize = 20_000;
/// Notifications a listen stream may have waiting before it is ended as too slow.
const LISTEN_BACKLOG: usize = 256;

/// Where the announcements come from.
#[derive(Clone)]
pub(crate) enum Source {
    /// No bus and no rpc-server in this process: nothing is ever announced.
    None,
    Bus(nexus_bus::Bus),
    /// The embedded hub: the rpc-server of this process hands them over.
    Local(Arc<dyn Fn() -> broadcast::Receiver<Invalidation> + Send + Sync>),
}

/// What a listen stream is told.
#[derive(Debug)]
pub(crate) enum Event {
    Updated(String),
    /// Access may have changed: the stream ends and the client listens again.
    End,
}

/// Who hears of a change.
enum Owner {
    /// A legacy session: notified on its own stream.
    Session { id: String, peer: Peer<RoleServer> },
    /// One `subscriptions/listen` request.
    Listen { id: u64, tx: mpsc::Sender<Event> },
}

struct Sub {
    owner: Owner,
    uri: String,
    zone: String,
    /// Below the zone root, `a/b.txt`.
    path: String,
    key_id: Option<KeyId>,
    suspended: bool,
}

impl Sub {
    fn owned_by_session(&self, session: &str) -> bool {
        matches!(&self.owner, Owner::Session { id, .. } if id == session)
    }
    fn owned_by_listen(&self, listen: u64) -> bool {
        matches!(&self.owner, Owner::Listen { id, .. } if *id == listen)
    }
    /// A change at `path` of `zone` concerns this subscription: the file itself, or a
    /// directory above it (removed or moved), or the zone root.
    fn concerns(&self, zone: &str, path: &str) -> bool {
        self.zone == zone
            && (path.is_empty()
                || self.path == path
                || (self.path.len() > path.len()
                    && self.path.starts_with(path)
                    && self.path.as_bytes()[path.len()] == b'/'))
    }
}

/// Why a subscription was not taken.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The caller may not read it.
    NotReadable(String),
    Full(&'static str),
}

/// This replica's subscriptions.
pub(crate) struct Subscriptions {
    subs: Mutex<HashMap<u64, Sub>>,
    next: AtomicUsize,
    /// Any subscription suspended (so requests need not look when none is).
    any_suspended: AtomicBool,
    source: Source,
    reading: AtomicBool,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriptions").finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<HashMap<u64, Sub>>) -> std::sync::MutexGuard<'_, HashMap<u64, Sub>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Subscriptions {
    pub(crate) fn new(source: Source) -> Arc<Self> {
        Arc::new(Self {
            subs: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(1),
            any_suspended: AtomicBool::new(false),
            source,
            reading: AtomicBool::new(false),
        })
    }

    /// Whether changes can be announced at all (the capability is advertised only then).
    pub(crate) fn available(&self) -> bool {
        !matches!(self.source, Source::None)
    }

    /// Adds a subscription of a legacy session (again: nothing changes).
    pub(crate) fn add_session(
        self: &Arc<Self>,
        session: &str,
        peer: Peer<RoleServer>,
        uri: &str,
        stat: &StatResult,
        key_id: Option<KeyId>,
    ) -> Result<(), Refused> {
        let owner = Owner::Session {
            id: session.to_owned(),
            peer,
        };
        self.add(owner, |s| s.owned_by_session(session), uri, stat, key_id)
    }

    /// Adds a subscription of a listen stream.
    pub(crate) fn add_listen(
        self: &Arc<Self>,
        listen: u64,
        tx: mpsc::Sender<Event>,
        uri: &str,
        stat: &StatResult,
        key_id: Option<KeyId>,
    ) -> Result<(), Refused> {
        let owner = Owner::Listen { id: listen, tx };
        self.add(owner, |s| s.owned_by_listen(listen), uri, stat, key_id)
    }

    fn add(
        self: &Arc<Self>,
        owner: Owner,
        same_owner: impl Fn(&Sub) -> bool,
        uri: &str,
        stat: &StatResult,
        key_id: Option<KeyId>,
    ) -> Result<(), Refused> {
        let (Some(zone), Some(path)) = (&stat.zone, &stat.zone_path) else {
            return Err(Refused::NotReadable(stat.path.clone()));
        };
        {
            let mut subs = lock(&self.subs);
            let mine: Vec<u64> = subs
                .iter()
                .filter(|(_, s)| same_owner(s))
                .map(|(k, _)| *k)
                .collect();
            if let Some(k) = mine.iter().find(|k| subs[*k].uri == uri) {
                // Checked just now with the caller's token: a suspended one resumes.
                let s = subs.get_mut(k).expect("present");
                s.suspended = false;
                s.key_id = key_id;
                return Ok(());
            }
            if mine.len() >= MAX_PER_OWNER {
                return Err(Refused::Full(
                    "this session holds the most subscriptions it may (100)",
                ));
            }
            if subs.len() >= MAX_TOTAL {
                // Sessions that ended without unsubscribing leave theirs behind.
                subs.retain(|_, s| match &s.owner {
                    Owner::Session { peer, .. } => !peer.is_transport_closed(),
                    Owner::Listen { tx, .. } => !tx.is_closed(),
                });
            }
            if subs.len() >= MAX_TOTAL {
                return Err(Refused::Full(
                    "this hub holds the most subscriptions it may; try later",
                ));
            }
            let id = self.next.fetch_add(1, Ordering::Relaxed) as u64;
            subs.insert(
                id,
                Sub {
                    owner,
                    uri: uri.to_owned(),
                    zone: zone.clone(),
                    path: path.clone(),
                    key_id,
                    suspended: false,
                },
            );
        }
        self.start_reading();
        Ok(())
    }

    /// Ends a legacy session's subscription to `uri`.
    pub(crate) fn remove_session(&self, session: &str, uri: &str) {
        lock(&self.subs).retain(|_, s| !(s.owned_by_session(session) && s.uri == uri));
    }

    /// Ends every subscription of a listen stream (it closed).
    fn remove_listen(&self, listen: u64) {
        lock(&self.subs).retain(|_, s| !s.owned_by_listen(listen));
    }

    /// The suspended subscriptions of a session, to check again with its token.
    pub(crate) fn suspended_of(&self, session: &str) -> Vec<String> {
        if !self.any_suspended.load(Ordering::Acquire) {
            return Vec::new();
        }
        lock(&self.subs)
            .values()
            .filter(|s| s.suspended && s.owned_by_session(session))
            .map(|s| s.uri.clone())
            .collect()
    }

    /// Reads the announcements, once, from the first subscription on.
    fn start_reading(self: &Arc<Self>) {
        if self.reading.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = Arc::downgrade(self);
        match &self.source {
            Source::None => {}
            Source::Bus(bus) => {
                let mut rx = bus.subscribe();
                tokio::spawn(async move {
                    // The first gap is the start of reading: every subscription was
                    // checked just before, nothing is stale yet.
                    let mut started = false;
                    while let Some(d) = rx.recv().await {
                        let Some(me) = me.upgrade() else { return };
                        match d {
                            nexus_bus::Delivery::Message(m) => me.apply(&m.what),
                            nexus_bus::Delivery::Gap(_) if started => me.suspend_all(),
                            nexus_bus::Delivery::Gap(_) => {}
                        }
                        started = true;
                    }
                });
            }
            Source::Local(open) => {
                let mut rx = open();
                tokio::spawn(async move {
                    loop {
                        let what = rx.recv().await;
                        let Some(me) = me.upgrade() else { return };
                        match what {
                            Ok(w) => me.apply(&w),
                            Err(broadcast::error::RecvError::Lagged(_)) => me.suspend_all(),
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    }
                });
            }
        }
    }

    /// Acts on one announcement.
    pub(crate) fn apply(&self, what: &Invalidation) {
        match what {
            Invalidation::FileChanged { zone_id, path } => self.notify(zone_id, path),
            Invalidation::Token { key_id } => self.end(|_, s| s.key_id.as_ref() == Some(key_id)),
            Invalidation::Zone { zone_id } => self.end(|_, s| &s.zone == zone_id),
            Invalidation::Rebac | Invalidation::Subject { .. } | Invalidation::All => {
                self.suspend_all()
            }
            Invalidation::SessionSecret => {}
        }
    }

    fn notify(&self, zone: &str, path: &str) {
        let mut gone = Vec::new();
        {
            let subs = lock(&self.subs);
            for (k, s) in subs.iter() {
                if s.suspended || !s.concerns(zone, path) {
                    continue;
                }
                match &s.owner {
                    Owner::Session { peer, .. } => {
                        if peer.is_transport_closed() {
                            gone.push(*k);
                            continue;
                        }
                        let (peer, uri) = (peer.clone(), s.uri.clone());
                        tokio::spawn(async move {
                            let _ = peer
                                .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                                .await;
                        });
                    }
                    Owner::Listen { tx, .. } => {
                        if tx.try_send(Event::Updated(s.uri.clone())).is_err() {
                            gone.push(*k);
                        }
                    }
                }
            }
        }
        if !gone.is_empty() {
            self.end(|k, _| gone.contains(&k));
        }
    }

    /// Ends the subscriptions `which` selects; their listen streams end.
    fn end(&self, which: impl Fn(u64, &Sub) -> bool) {
        let mut subs = lock(&self.subs);
        let mut ended_listens = Vec::new();
        subs.retain(|k, s| {
            if !which(*k, s) {
                return true;
            }
            if let Owner::Listen { id, tx } = &s.owner
                && !ended_listens.contains(id)
            {
                ended_listens.push(*id);
                let _ = tx.try_send(Event::End);
            }
            false
        });
        // A listen stream is one unit: what it holds beside the ended ones ends too.
        subs.retain(
            |_, s| !matches!(&s.owner, Owner::Listen { id, .. } if ended_listens.contains(id)),
        );
    }

    fn suspend_all(&self) {
        let mut subs = lock(&self.subs);
        let mut ended = Vec::new();
        for s in subs.values_mut() {
            s.suspended = true;
            if let Owner::Listen { id, tx } = &s.owner
                && !ended.contains(id)
            {
                ended.push(*id);
                let _ = tx.try_send(Event::End);
            }
        }
        subs.retain(|_, s| !matches!(&s.owner, Owner::Listen { .. }));
        let any = !subs.is_empty();
        drop(subs);
        self.any_suspended.store(any, Ordering::Release);
    }

    /// The outcome of checking a suspended subscription again.
    pub(crate) fn resume(
        &self,
        session: &str,
        uri: &str,
        ok: Option<(&StatResult, Option<KeyId>)>,
    ) {
        let mut subs = lock(&self.subs);
        match ok {
            Some((stat, key_id)) => {
                for s in subs.values_mut() {
                    if s.owned_by_session(session) && s.uri == uri {
                        s.suspended = false;
                        s.key_id = key_id;
                        if let (Some(z), Some(p)) = (&stat.zone, &stat.zone_path) {
                            s.zone = z.clone();
                            s.path = p.clone();
                        }
                    }
                }
            }
            None => subs.retain(|_, s| !(s.owned_by_session(session) && s.uri == uri)),
        }
        let any = subs.values().any(|s| s.suspended);
        drop(subs);
        self.any_suspended.store(any, Ordering::Release);
    }
}

/// The subscriptions of one `subscriptions/listen` request, taken before rmcp answers it;
/// they end when the last holder drops it (the stream ended, or rmcp never ran it).
pub(crate) struct PendingListen {
    id: u64,
    rx: Mutex<Option<mpsc::Receiver<Event>>>,
    subs: Arc<Subscriptions>,
}

impl std::fmt::Debug for PendingListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingListen")
            .field("id", &self.id)
            .finish()
    }
}

impl PendingListen {
    pub(crate) fn new(subs: &Arc<Subscriptions>) -> (Arc<Self>, mpsc::Sender<Event>) {
        let (tx, rx) = mpsc::channel(LISTEN_BACKLOG);
        let me = Arc::new(Self {
            id: subs.next.fetch_add(1, Ordering::Relaxed) as u64,
            rx: Mutex::new(Some(rx)),
            subs: subs.clone(),
        });
        (me, tx)
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The stream's events, once.
    pub(crate) fn take(&self) -> Option<mpsc::Receiver<Event>> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Drop for PendingListen {
    fn drop(&mut self) {
        self.subs.remove_listen(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(zone: &str, path: &str) -> StatResult {
        StatResult {
            path: format!("/{path}"),
            exists: true,
            is_dir: false,
            size: 0,
            modified: None,
            content_id: None,
            zone: Some(zone.into()),
            zone_path: Some(path.into()),
        }
    }

    fn changed(zone: &str, path: &str) -> Invalidation {
        Invalidation::FileChanged {
            zone_id: zone.into(),
            path: path.into(),
        }
    }

    fn updated(rx: &mut mpsc::Receiver<Event>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            match ev {
                Event::Updated(u) => out.push(u),
                Event::End => out.push("END".into()),
            }
        }
        out.sort();
        out
    }

    #[test]
    fn a_change_concerns_the_file_and_what_lies_below_a_changed_directory_only() {
        let subs = Subscriptions::new(Source::None);
        let (pending, tx) = PendingListen::new(&subs);
        let key = KeyId::from_bytes([7; 16]);
        subs.add_listen(
            pending.id(),
            tx.clone(),
            "u:a",
            &stat("eng", "notes/a.md"),
            Some(key),
        )
        .expect("subscribe");
        subs.add_listen(
            pending.id(),
            tx,
            "u:b",
            &stat("eng", "notes2/b.md"),
            Some(key),
        )
        .expect("subscribe");
        let mut rx = pending.take().expect("receiver");
        for (what, told) in [
            (changed("eng", "notes/a.md"), vec!["u:a"]),
            (changed("ops", "notes/a.md"), vec![]),
            (changed("eng", "notes/a.m"), vec![]),
            (changed("eng", "notes"), vec!["u:a"]),
            (changed("eng", "note"), vec![]),
            (changed("eng", ""), vec!["u:a", "u:b"]),
        ] {
            subs.apply(&what);
            assert_eq!(updated(&mut rx), told, "{what:?}");
        }
    }

    #[test]
    fn revocations_end_and_wider_changes_end_listen_streams() {
        let subs = Subscriptions::new(Source::None);
        let open = |zone: &str, key: u8| {
            let (p, tx) = PendingListen::new(&subs);
            subs.add_listen(
                p.id(),
                tx,
                "u",
                &stat(zone, "f"),
                Some(KeyId::from_bytes([key; 16])),
            )
            .expect("subscribe");
            let rx = p.take().expect("receiver");
            (p, rx)
        };
        let (_a, mut a) = open("eng", 1);
        let (_b, mut b) = open("ops", 2);
        let (_c, mut c) = open("eng", 3);
        // Another key's revocation, another zone's deletion: nothing.
        subs.apply(&Invalidation::Token {
            key_id: KeyId::from_bytes([9; 16]),
        });
        subs.apply(&Invalidation::Zone {
            zone_id: "hr".into(),
        });
        assert!(updated(&mut a).is_empty() && updated(&mut b).is_empty());
        subs.apply(&Invalidation::Token {
            key_id: KeyId::from_bytes([1; 16]),
        });
        assert_eq!(updated(&mut a), vec!["END"]);
        subs.apply(&Invalidation::Zone {
            zone_id: "ops".into(),
        });
        assert_eq!(updated(&mut b), vec!["END"]);
        // Ended ones are told nothing more; a tuple change ends the rest.
        subs.apply(&changed("eng", "f"));
        assert_eq!(updated(&mut a), Vec::<String>::new());
        assert_eq!(updated(&mut c), vec!["u"]);
        subs.apply(&Invalidation::Rebac);
        assert_eq!(updated(&mut c), vec!["END"]);
        subs.apply(&changed("eng", "f"));
        assert!(updated(&mut c).is_empty());
        assert!(lock(&subs.subs).is_empty());
    }

    #[test]
    fn a_stream_that_ends_takes_its_subscriptions_with_it() {
        let subs = Subscriptions::new(Source::None);
        let (p, tx) = PendingListen::new(&subs);
        subs.add_listen(p.id(), tx, "u", &stat("eng", "f"), None)
            .expect("subscribe");
        assert_eq!(lock(&subs.subs).len(), 1);
        drop(p);
        assert!(lock(&subs.subs).is_empty());
    }
}
