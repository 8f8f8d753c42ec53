//! Differential test: `nexus_authz::check` against OpenFGA's own engine on `authz/model.fga`.
//!
//! Random universes (users, agents, services and tokens, some sharing an id across types;
//! groups nested at random, cycles and self-membership included; two zones whose names are
//! string prefixes of each other; folders up to depth 3; tuples on all of them, some expiring
//! before, at or after `now`) are decided by our evaluator for every (subject, relation,
//! object) of the universe, and OpenFGA must confirm every answer. The oracle also gets the
//! `parent` and `zone` tuples that our evaluator derives from the path. The hot path (each
//! subject's closure and compiled grants, and the listing rule built on them) must give the
//! same answers, and every explanation must be enough on its own to allow.
//!
//! `PROPTEST_CASES` sets the number of universes (64 by default, the CI run); a failure is
//! minimised and printed with its tuples and the checks that disagree. Without `fga` the test
//! fails and says how to install it.

mod oracle;

use chrono::{DateTime, Duration, TimeZone, Utc};
use nexus_authz::model::{ObjectRef, Relation, SubjectRef, Tuple};
use nexus_authz::{Grants, Op, SubjectSet, ZoneRole};
use oracle::{FgaCheck, FgaTuple};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const DEFAULT_CASES: u32 = 64;

// Ids share text across types (user, agent and service `alice`; group and zone `eng`) so a
// type confusion shows. Zone `eng` is a string prefix of zone `eng-ops`, folder `a` of `ab`.
const USERS: [&str; 3] = ["alice", "bob", "c.d@acme.io"];
const AGENTS: [&str; 2] = ["bot-1", "alice"];
const SERVICES: [&str; 1] = ["alice"];
const TOKENS: [&str; 2] = [
    "0b6f3a52-5d1e-4c8e-9a4f-2f0d6f1b7c11",
    "e3c1f9a0-77b2-4f5d-8c3e-9d2a1b0c4e22",
];
const GROUPS: [&str; 4] = ["eng", "all", "ops", "eng-ops"];
const ZONES: [&str; 2] = ["eng", "eng-ops"];
const NAMES: [&str; 3] = ["a", "ab", "b"];

/// A subject of the universe, by kind and index into the name tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Subj {
    User(usize),
    Agent(usize),
    Service(usize),
    Token(usize),
    Group(usize),
}

impl Subj {
    fn fga(self) -> String {
        match self {
            Subj::User(i) => format!("user:{}", USERS[i]),
            Subj::Agent(i) => format!("agent:{}", AGENTS[i]),
            Subj::Service(i) => format!("service:{}", SERVICES[i]),
            Subj::Token(i) => format!("token:{}", TOKENS[i]),
            Subj::Group(i) => format!("group:{}#member", GROUPS[i]),
        }
    }

    fn ours(self) -> SubjectRef {
        match self {
            Subj::User(i) => SubjectRef::User(USERS[i].to_owned()),
            Subj::Agent(i) => SubjectRef::Agent(AGENTS[i].to_owned()),
            Subj::Service(i) => SubjectRef::Service(SERVICES[i].to_owned()),
            Subj::Token(i) => SubjectRef::Token(TOKENS[i].to_owned()),
            Subj::Group(i) => SubjectRef::GroupMember(GROUPS[i].to_owned()),
        }
    }
}

/// An object of the universe; `File` with an empty path is the zone's root folder.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Obj {
    Group(usize),
    Zone(usize),
    Namespace,
    File(usize, Vec<&'static str>),
}

impl Obj {
    fn fga(&self) -> String {
        match self {
            Obj::Group(i) => format!("group:{}", GROUPS[*i]),
            Obj::Zone(i) => format!("zone:{}", ZONES[*i]),
            Obj::Namespace => "namespace:default".to_owned(),
            Obj::File(z, path) => {
                let mut s = format!("file:/zone/{}", ZONES[*z]);
                for p in path {
                    s.push('/');
                    s.push_str(p);
                }
                s
            }
        }
    }

    fn ours(&self) -> ObjectRef {
        match self {
            Obj::Group(i) => ObjectRef::Group(GROUPS[*i].to_owned()),
            Obj::Zone(i) => ObjectRef::Zone(ZONES[*i].to_owned()),
            Obj::Namespace => ObjectRef::Namespace("default".to_owned()),
            Obj::File(z, path) => ObjectRef::File {
                zone: ZONES[*z].to_owned(),
                path: path.iter().map(|p| (*p).to_owned()).collect(),
            },
        }
    }

    /// The relations the model defines on this object (other than the oracle-only ones).
    fn relations(&self) -> &'static [Relation] {
        match self {
            Obj::Group(_) => &[Relation::Member],
            Obj::Zone(_) => &[Relation::Reader, Relation::Writer, Relation::Admin],
            Obj::Namespace => &[Relation::Admin],
            Obj::File(..) => &[Relation::CanRead, Relation::CanWrite],
        }
    }
}

fn rel_name(r: Relation) -> &'static str {
    match r {
        Relation::Member => "member",
        Relation::Reader => "reader",
        Relation::Writer => "writer",
        Relation::Admin => "admin",
        Relation::CanRead => "can_read",
        Relation::CanWrite => "can_write",
    }
}

/// Expiry relative to `now`; `At` is the boundary (`current_time < expires_at` is false).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Expiry {
    Never,
    Past,
    At,
    JustAfter,
    Future,
}

impl Expiry {
    fn at(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Expiry::Never => None,
            Expiry::Past => Some(now - Duration::hours(1)),
            Expiry::At => Some(now),
            Expiry::JustAfter => Some(now + Duration::seconds(1)),
            Expiry::Future => Some(now + Duration::days(7)),
        }
    }
}

/// A generated tuple before it is bound to the universe (indices wrap around its sizes).
#[derive(Clone, Debug)]
enum Spec {
    Member(Index, Index),
    ZoneRole(Index, usize, u8),
    Path(Index, Index, bool),
    NamespaceAdmin(Index),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Tup {
    subject: Subj,
    relation: Relation,
    object: Obj,
    expiry: Expiry,
}

/// One generated case: its subjects, objects and tuples (each (subject, relation, object)
/// at most once, as the store keeps it).
#[derive(Clone, Debug)]
struct Universe {
    subjects: Vec<Subj>,
    objects: Vec<Obj>,
    tuples: Vec<Tup>,
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        4 => (any::<Index>(), any::<Index>()).prop_map(|(s, g)| Spec::Member(s, g)),
        2 => (any::<Index>(), 0..ZONES.len(), 0u8..3).prop_map(|(s, z, r)| Spec::ZoneRole(s, z, r)),
        4 => (any::<Index>(), any::<Index>(), any::<bool>()).prop_map(|(s, f, w)| Spec::Path(s, f, w)),
        1 => any::<Index>().prop_map(Spec::NamespaceAdmin),
    ]
}

fn expiry() -> impl Strategy<Value = Expiry> {
    prop_oneof![
        6 => Just(Expiry::Never),
        1 => Just(Expiry::Past),
        1 => Just(Expiry::At),
        1 => Just(Expiry::JustAfter),
        1 => Just(Expiry::Future),
    ]
}

fn folder() -> impl Strategy<Value = Vec<&'static str>> {
    vec(prop::sample::select(NAMES.to_vec()), 1..=3)
}

fn universe() -> impl Strategy<Value = Universe> {
    (
        (1..=USERS.len(), 0..=AGENTS.len(), 0..=SERVICES.len()),
        (0..=TOKENS.len(), 1..=GROUPS.len()),
        vec(folder(), 0..=5),
        vec(folder(), 0..=5),
        vec((spec(), expiry()), 0..=24),
    )
        .prop_map(|((u, a, s), (t, g), f0, f1, specs)| build(u, a, s, t, g, [f0, f1], specs))
}

fn build(
    users: usize,
    agents: usize,
    services: usize,
    tokens: usize,
    groups: usize,
    folders: [Vec<Vec<&'static str>>; 2],
    specs: Vec<(Spec, Expiry)>,
) -> Universe {
    let mut subjects: Vec<Subj> = (0..users).map(Subj::User).collect();
    subjects.extend((0..agents).map(Subj::Agent));
    subjects.extend((0..services).map(Subj::Service));
    subjects.extend((0..tokens).map(Subj::Token));
    subjects.extend((0..groups).map(Subj::Group));

    // Every folder comes with its ancestors and the zone roots, so the oracle's `parent`
    // chain is complete.
    let mut files: BTreeSet<(usize, Vec<&'static str>)> = BTreeSet::new();
    for (z, fs) in folders.iter().enumerate() {
        files.insert((z, Vec::new()));
        for f in fs {
            for n in 1..=f.len() {
                files.insert((z, f[..n].to_vec()));
            }
        }
    }
    let files: Vec<Obj> = files.into_iter().map(|(z, p)| Obj::File(z, p)).collect();

    let mut objects: Vec<Obj> = (0..groups).map(Obj::Group).collect();
    objects.extend((0..ZONES.len()).map(Obj::Zone));
    objects.push(Obj::Namespace);
    objects.extend(files.iter().cloned());

    let mut seen = BTreeSet::new();
    let mut tuples = Vec::new();
    for (spec, expiry) in specs {
        let (subject, relation, object) = match spec {
            Spec::Member(s, g) => (
                *s.get(&subjects),
                Relation::Member,
                Obj::Group(g.index(groups)),
            ),
            Spec::ZoneRole(s, z, r) => (
                *s.get(&subjects),
                [Relation::Reader, Relation::Writer, Relation::Admin][usize::from(r) % 3],
                Obj::Zone(z),
            ),
            Spec::Path(s, f, write) => (
                *s.get(&subjects),
                if write {
                    Relation::CanWrite
                } else {
                    Relation::CanRead
                },
                f.get(&files).clone(),
            ),
            Spec::NamespaceAdmin(s) => (*s.get(&subjects), Relation::Admin, Obj::Namespace),
        };
        if seen.insert((subject, relation, object.clone())) {
            tuples.push(Tup {
                subject,
                relation,
                object,
                expiry,
            });
        }
    }
    Universe {
        subjects,
        objects,
        tuples,
    }
}

fn ours(t: &Tup, now: DateTime<Utc>) -> Tuple {
    Tuple {
        subject: t.subject.ours(),
        relation: t.relation,
        object: t.object.ours(),
        expires_at: t.expiry.at(now),
    }
}

fn fga_tuple(t: &Tup, now: DateTime<Utc>) -> FgaTuple {
    FgaTuple {
        user: t.subject.fga(),
        relation: rel_name(t.relation).to_owned(),
        object: t.object.fga(),
        expires_at: t.expiry.at(now).map(rfc3339),
    }
}

/// The structure our evaluator reads from paths, written out for the oracle: each folder's
/// `parent`, and the `zone` of each zone root and top folder.
fn structure_tuples(objects: &[Obj]) -> Vec<FgaTuple> {
    let mut out = Vec::new();
    for o in objects {
        let Obj::File(z, path) = o else { continue };
        let zone = Obj::Zone(*z).fga();
        let rel = |user: String, relation: &str| FgaTuple {
            user,
            relation: relation.to_owned(),
            object: o.fga(),
            expires_at: None,
        };
        if path.len() <= 1 {
            out.push(rel(zone, "zone"));
        }
        if let Some((_, parent)) = path.split_last() {
            out.push(rel(Obj::File(*z, parent.to_vec()).fga(), "parent"));
        }
    }
    out
}

fn owned(path: &[&str]) -> Vec<String> {
    path.iter().map(|p| (*p).to_owned()).collect()
}

/// One subject's closure and compiled grants: what the server caches per identity.
struct Compiled {
    set: SubjectSet,
    grants: Grants,
}

fn compile(subject: SubjectRef, tuples: &[Tuple], now: DateTime<Utc>) -> Result<Compiled, String> {
    let set = SubjectSet::build(&[subject], tuples, now).map_err(|e| format!("closure: {e}"))?;
    let grants = Grants::compile(&set, tuples, now);
    Ok(Compiled { set, grants })
}

impl Compiled {
    /// The compiled answer for `relation` on `object`, with its explanation when it has one.
    fn answer(&self, object: &Obj, relation: Relation) -> (bool, Option<Vec<Tuple>>) {
        match object {
            Obj::Group(g) => (
                self.set
                    .contains(&SubjectRef::GroupMember(GROUPS[*g].to_owned())),
                None,
            ),
            Obj::Zone(z) => {
                let wanted = match relation {
                    Relation::Reader => ZoneRole::Reader,
                    Relation::Writer => ZoneRole::Writer,
                    _ => ZoneRole::Admin,
                };
                (self.grants.zone_role(ZONES[*z]) >= wanted, None)
            }
            Obj::Namespace => {
                let because = self.grants.namespace_admin();
                (because.is_some(), because)
            }
            Obj::File(z, path) => {
                let op = if relation == Relation::CanWrite {
                    Op::Write
                } else {
                    Op::Read
                };
                let d = self.grants.check(ZONES[*z], &owned(path), op);
                (d.allowed, Some(d.because))
            }
        }
    }
}

fn is_self_membership(t: &Tup) -> bool {
    matches!((t.subject, &t.object), (Subj::Group(s), Obj::Group(g)) if s == *g)
}

/// Counters for the summary line (shrinking runs included).
static CASES: AtomicUsize = AtomicUsize::new(0);
static CHECKS: AtomicUsize = AtomicUsize::new(0);
static ALLOWED: AtomicUsize = AtomicUsize::new(0);
static ORACLE_MS: AtomicUsize = AtomicUsize::new(0);

/// Decides every check of the universe ourselves, has fga confirm them, and fails with a
/// readable report on any disagreement.
fn run_case(u: &Universe) -> Result<(), TestCaseError> {
    let now = now();
    let tuples: Vec<Tuple> = u.tuples.iter().map(|t| ours(t, now)).collect();
    for t in &tuples {
        t.validate()
            .map_err(|e| TestCaseError::fail(format!("generated tuple {t:?} is invalid: {e}")))?;
    }
    let mut checks = Vec::new();
    // Problems found on our side alone: the compiled grants (the hot path) answering
    // differently from `check`, or an explanation that does not hold up.
    let mut ours_failures = Vec::new();
    // `rebac expand`: who has each (relation, object).
    let expanded: Vec<Vec<(SubjectRef, Vec<Tuple>)>> = u
        .objects
        .iter()
        .flat_map(|o| o.relations().iter().map(move |&r| (r, o)))
        .map(|(r, o)| nexus_authz::expand(&tuples, r, &o.ours(), now))
        .collect();
    // The names the CLI takes and prints are the oracle's.
    for s in &u.subjects {
        if s.ours().to_string() != s.fga() || SubjectRef::parse(&s.fga()).ok() != Some(s.ours()) {
            ours_failures.push(format!("{} does not round-trip: {:?}", s.fga(), s.ours()));
        }
    }
    for o in &u.objects {
        if o.ours().to_string() != o.fga() || ObjectRef::parse(&o.fga()).ok() != Some(o.ours()) {
            ours_failures.push(format!("{} does not round-trip: {:?}", o.fga(), o.ours()));
        }
    }
    for s in &u.subjects {
        let compiled = compile(s.ours(), &tuples, now).map_err(TestCaseError::fail)?;
        let mut expanded = expanded.iter();
        let mut readable: Vec<(usize, &[&str])> = Vec::new();
        for o in &u.objects {
            for &r in o.relations() {
                let d = nexus_authz::check(&tuples, &s.ours(), r, &o.ours(), now);
                let label = || format!("{} {} {}", s.fga(), rel_name(r), o.fga());
                if d.allowed {
                    // The explanation alone must be enough for the same answer.
                    let again = nexus_authz::check(&d.because, &s.ours(), r, &o.ours(), now);
                    if !again.allowed || d.because.iter().any(|b| !tuples.contains(b)) {
                        ours_failures.push(format!(
                            "{}: check explains with {:?}",
                            label(),
                            d.because
                        ));
                    }
                }
                let (hot, because) = compiled.answer(o, r);
                if hot != d.allowed {
                    ours_failures.push(format!(
                        "{}: check says {}, the compiled grants {hot}",
                        label(),
                        d.allowed
                    ));
                } else if let Some(because) = because.filter(|_| hot) {
                    let again = nexus_authz::check(&because, &s.ours(), r, &o.ours(), now);
                    if !again.allowed {
                        ours_failures.push(format!(
                            "{}: the compiled grants explain with {because:?}",
                            label()
                        ));
                    }
                }
                let listed = expanded
                    .next()
                    .and_then(|e| e.iter().find(|(who, _)| *who == s.ours()));
                // A group's own userset is where expand starts, not one of its answers.
                let own_userset = matches!((s, o), (Subj::Group(a), Obj::Group(b)) if a == b);
                match listed {
                    Some((_, chain)) => {
                        let again = nexus_authz::check(chain, &s.ours(), r, &o.ours(), now);
                        if !d.allowed || !again.allowed {
                            ours_failures.push(format!(
                                "{}: check says {}, expand lists it with {chain:?}",
                                label(),
                                d.allowed
                            ));
                        }
                    }
                    None if d.allowed && !own_userset => {
                        ours_failures.push(format!("{}: allowed, but expand omits it", label()));
                    }
                    None => {}
                }
                if let (Obj::File(z, path), Relation::CanRead, true) = (o, r, d.allowed) {
                    readable.push((*z, path));
                }
                checks.push(FgaCheck {
                    user: s.fga(),
                    relation: rel_name(r).to_owned(),
                    object: o.fga(),
                    expected: d.allowed,
                });
            }
        }
        // A cache keeps the compiled grants until they say they may change: until then they
        // must still be right.
        let later = compiled
            .grants
            .valid_until()
            .map_or(now + Duration::days(30), |t| t - Duration::seconds(1));
        if later > now {
            if !compiled.grants.is_fresh(later) {
                ours_failures.push(format!(
                    "{}: compiled grants stale before their expiry",
                    s.fga()
                ));
            }
            for o in &u.objects {
                for &r in o.relations() {
                    let (hot, _) = compiled.answer(o, r);
                    let then = nexus_authz::check(&tuples, &s.ours(), r, &o.ours(), later).allowed;
                    if hot != then {
                        ours_failures.push(format!(
                            "{} {} {}: the grants compiled at {} (valid until {:?}) say {hot}, \
                             check at {} says {then}",
                            s.fga(),
                            rel_name(r),
                            o.fga(),
                            rfc3339(now),
                            compiled.grants.valid_until().map(rfc3339),
                            rfc3339(later)
                        ));
                    }
                }
            }
        }
        // The listing rule, from the model's answers (confirmed by the oracle below): a folder
        // is shown if it is readable or on the way to a readable folder.
        for o in &u.objects {
            let Obj::File(z, path) = o else { continue };
            if path.is_empty() {
                continue;
            }
            let want = readable
                .iter()
                .any(|(rz, rp)| rz == z && rp.starts_with(path));
            let got = compiled.grants.visible(ZONES[*z], &owned(path));
            if got != want {
                ours_failures.push(format!(
                    "{} sees {} in a listing: {got}, the model's answers say {want}",
                    s.fga(),
                    o.fga()
                ));
            }
        }
    }
    // OpenFGA refuses to store `group:g#member member group:g` ("implicit": it holds anyway),
    // so self-membership goes to our evaluator only.
    let fga_tuples: Vec<FgaTuple> = u
        .tuples
        .iter()
        .filter(|t| !is_self_membership(t))
        .map(|t| fga_tuple(t, now))
        .collect();
    let structure = structure_tuples(&u.objects);

    CASES.fetch_add(1, Ordering::Relaxed);
    CHECKS.fetch_add(checks.len(), Ordering::Relaxed);
    ALLOWED.fetch_add(
        checks.iter().filter(|c| c.expected).count(),
        Ordering::Relaxed,
    );

    let all: Vec<FgaTuple> = fga_tuples.iter().chain(&structure).cloned().collect();
    let started = Instant::now();
    let verdict = oracle::run(&all, &checks, &rfc3339(now)).map_err(TestCaseError::fail)?;
    ORACLE_MS.fetch_add(
        usize::try_from(started.elapsed().as_millis()).unwrap_or(usize::MAX),
        Ordering::Relaxed,
    );
    if verdict.disagreements.is_empty()
        && verdict.evaluated == checks.len()
        && ours_failures.is_empty()
    {
        return Ok(());
    }
    let mut msg = String::new();
    let _ = writeln!(msg, "now = {}", rfc3339(now));
    let _ = writeln!(msg, "tuples ({}):", u.tuples.len());
    for t in &u.tuples {
        let _ = writeln!(msg, "  {}", fga_tuple(t, now));
    }
    let _ = writeln!(
        msg,
        "and for the oracle only, the folder structure ({} parent/zone tuples)",
        structure.len()
    );
    if verdict.evaluated != checks.len() {
        let _ = writeln!(
            msg,
            "fga evaluated {} checks of {}",
            verdict.evaluated,
            checks.len()
        );
    }
    if !verdict.disagreements.is_empty() {
        let _ = writeln!(msg, "disagreements ({}):", verdict.disagreements.len());
        for d in &verdict.disagreements {
            let _ = writeln!(msg, "  {d}");
        }
    }
    if !ours_failures.is_empty() {
        let _ = writeln!(msg, "our evaluator disagrees with itself:");
        for e in &ours_failures {
            let _ = writeln!(msg, "  {e}");
        }
    }
    let _ = writeln!(msg, "fga test file: {}", verdict.yaml.display());
    Err(TestCaseError::fail(msg))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_CASES)
}

#[test]
fn evaluator_agrees_with_openfga() {
    if let Err(e) = oracle::fga_binary() {
        panic!("{e}");
    }
    let cases = cases();
    let mut runner = TestRunner::new(Config {
        cases,
        // Each shrinking step is one fga run; bounded so a failure is reported in minutes.
        max_shrink_iters: 128,
        max_shrink_time: 60_000,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&universe(), |u| run_case(&u));
    let (n, checks, allowed) = (
        CASES.load(Ordering::Relaxed),
        CHECKS.load(Ordering::Relaxed),
        ALLOWED.load(Ordering::Relaxed),
    );
    println!(
        "differential: {n} cases ({cases} requested), {checks} checks ({allowed} allowed), \
         {} ms in fga, against {}",
        ORACLE_MS.load(Ordering::Relaxed),
        oracle::fga_version()
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, minimal)) => panic!(
            "our evaluator and OpenFGA disagree; minimal case: subjects {:?}\n{reason}",
            minimal.subjects.iter().map(|s| s.fga()).collect::<Vec<_>>()
        ),
        Err(TestError::Abort(reason)) => panic!("aborted: {reason}"),
    }
    // A generator that never allows anything would agree trivially (a short run may be
    // too small to say).
    assert!(
        checks < 2_000 || (allowed * 20 > checks && allowed * 2 < checks),
        "the universes are degenerate: {allowed} of {checks} checks allowed"
    );
}

/// The oracle is not vacuous: a wrong answer in the file makes fga name that check.
#[test]
fn oracle_flags_a_wrong_answer() {
    if let Err(e) = oracle::fga_binary() {
        panic!("{e}");
    }
    let tuples = vec![FgaTuple {
        user: "user:alice".to_owned(),
        relation: "can_read".to_owned(),
        object: "file:/zone/eng".to_owned(),
        expires_at: None,
    }];
    let check = |relation: &str, expected| FgaCheck {
        user: "user:alice".to_owned(),
        relation: relation.to_owned(),
        object: "file:/zone/eng".to_owned(),
        expected,
    };
    let v = oracle::run(
        &tuples,
        &[check("can_read", true), check("can_write", true)],
        "2026-06-01T12:00:00Z",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.evaluated, 2);
    assert_eq!(v.disagreements.len(), 1, "{:?}", v.disagreements);
    assert_eq!(v.disagreements[0].relation, "can_write");
    assert_eq!(v.disagreements[0].oracle, Some(false));
}

/// The documented example (alice and the engineering group, in zone `eng`) as a fixed case:
/// the answers written here, our evaluator and OpenFGA all agree.
#[test]
fn seed_example_alice_engineering() {
    if let Err(e) = oracle::fga_binary() {
        panic!("{e}");
    }
    let now = now();
    let alice = || SubjectRef::User("alice".to_owned());
    let eng = || SubjectRef::GroupMember("engineering".to_owned());
    let bot = || SubjectRef::Agent("bot-analyzer".to_owned());
    let file = |zone: &str, p: &str| ObjectRef::File {
        zone: zone.to_owned(),
        path: p
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    let tuple = |subject, relation, object| Tuple {
        subject,
        relation,
        object,
        expires_at: None,
    };
    let tuples = vec![
        tuple(alice(), Relation::CanRead, file("eng", "workspace")),
        tuple(
            alice(),
            Relation::CanWrite,
            file("eng", "workspace/alice-files"),
        ),
        tuple(
            alice(),
            Relation::Admin,
            ObjectRef::Namespace("default".to_owned()),
        ),
        tuple(
            alice(),
            Relation::Member,
            ObjectRef::Group("engineering".to_owned()),
        ),
        tuple(eng(), Relation::CanRead, file("eng", "shared/engineering")),
        tuple(eng(), Relation::CanWrite, file("eng", "shared/engineering")),
    ];
    use Relation::{Admin, CanRead, CanWrite, Member, Reader};
    let expected: Vec<(SubjectRef, Relation, ObjectRef, bool)> = vec![
        (alice(), CanRead, file("eng", "workspace"), true),
        (alice(), CanWrite, file("eng", "workspace"), false),
        (alice(), CanRead, file("eng", "workspace/alice-files"), true),
        (
            alice(),
            CanWrite,
            file("eng", "workspace/alice-files"),
            true,
        ),
        (
            alice(),
            CanWrite,
            file("eng", "workspace/alice-files/notes.md"),
            true,
        ),
        (alice(), CanRead, file("eng", "workspace/other"), true),
        (alice(), CanWrite, file("eng", "workspace/other"), false),
        (
            alice(),
            CanRead,
            file("eng", "shared/engineering/docs"),
            true,
        ),
        (
            alice(),
            CanWrite,
            file("eng", "shared/engineering/docs"),
            true,
        ),
        (alice(), CanRead, file("eng", "shared"), false),
        (
            alice(),
            CanRead,
            file("eng", "shared/engineering-old"),
            false,
        ),
        (alice(), CanRead, file("eng", ""), false),
        (alice(), CanRead, file("other", "workspace"), false),
        (
            alice(),
            Member,
            ObjectRef::Group("engineering".to_owned()),
            true,
        ),
        (
            alice(),
            Admin,
            ObjectRef::Namespace("default".to_owned()),
            true,
        ),
        (alice(), Reader, ObjectRef::Zone("eng".to_owned()), false),
        (eng(), CanRead, file("eng", "shared/engineering"), true),
        (eng(), CanRead, file("eng", "workspace"), false),
        (bot(), CanRead, file("eng", "workspace"), false),
        (
            bot(),
            Member,
            ObjectRef::Group("engineering".to_owned()),
            false,
        ),
    ];
    let mut wrong = Vec::new();
    let mut checks = Vec::new();
    for (s, r, o, want) in &expected {
        let got = nexus_authz::check(&tuples, s, *r, o, now).allowed;
        if got != *want {
            wrong.push(format!(
                "{s} {} {o}: ours {got}, expected {want}",
                rel_name(*r)
            ));
        }
        checks.push(FgaCheck {
            user: s.to_string(),
            relation: rel_name(*r).to_owned(),
            object: o.to_string(),
            expected: *want,
        });
    }
    assert!(wrong.is_empty(), "our evaluator: {wrong:#?}");

    let mut fga_tuples: Vec<FgaTuple> = tuples
        .iter()
        .map(|t| FgaTuple {
            user: t.subject.to_string(),
            relation: rel_name(t.relation).to_owned(),
            object: t.object.to_string(),
            expires_at: None,
        })
        .collect();
    // Every folder named above, with its ancestors, for the oracle's structure tuples.
    let mut folders = BTreeSet::new();
    for o in tuples
        .iter()
        .map(|t| &t.object)
        .chain(expected.iter().map(|e| &e.2))
    {
        if let ObjectRef::File { zone, path } = o {
            for n in 0..=path.len() {
                folders.insert((zone.clone(), path[..n].to_vec()));
            }
        }
    }
    for (zone, path) in &folders {
        let object = file(zone, &path.join("/")).to_string();
        let structural = |user: String, relation: &str| FgaTuple {
            user,
            relation: relation.to_owned(),
            object: object.clone(),
            expires_at: None,
        };
        if path.len() <= 1 {
            fga_tuples.push(structural(format!("zone:{zone}"), "zone"));
        }
        if let Some((_, parent)) = path.split_last() {
            fga_tuples.push(structural(
                file(zone, &parent.join("/")).to_string(),
                "parent",
            ));
        }
    }
    let v = oracle::run(&fga_tuples, &checks, &rfc3339(now)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.evaluated, checks.len());
    assert!(
        v.disagreements.is_empty(),
        "OpenFGA disagrees: {:#?}\n(file {})",
        v.disagreements,
        v.yaml.display()
    );
}

/// A long membership chain closed into a cycle, with the grant at its far end; then the same
/// chain broken by an expired link. Our evaluator and OpenFGA agree on every member of the
/// chain. (12 groups: OpenFGA resolves at most 25 levels, and a cycle through a longer chain
/// costs it seconds.)
#[test]
fn long_group_chain_agrees() {
    if let Err(e) = oracle::fga_binary() {
        panic!("{e}");
    }
    const LEN: usize = 12;
    let now = now();
    let group = |i: usize| format!("g{i}");
    let object = ObjectRef::File {
        zone: "eng".to_owned(),
        path: vec!["deep".to_owned()],
    };
    for broken_at in [None, Some(LEN / 2)] {
        let mut tuples = vec![Tuple::new(
            SubjectRef::User("alice".to_owned()),
            Relation::Member,
            ObjectRef::Group(group(0)),
        )];
        for i in 1..LEN {
            let mut t = Tuple::new(
                SubjectRef::GroupMember(group(i - 1)),
                Relation::Member,
                ObjectRef::Group(group(i)),
            );
            if broken_at == Some(i) {
                t.expires_at = Some(now - Duration::minutes(1));
            }
            tuples.push(t);
        }
        // The last group back into the first: a cycle through the whole chain.
        tuples.push(Tuple::new(
            SubjectRef::GroupMember(group(LEN - 1)),
            Relation::Member,
            ObjectRef::Group(group(0)),
        ));
        tuples.push(Tuple::new(
            SubjectRef::GroupMember(group(LEN - 1)),
            Relation::CanRead,
            object.clone(),
        ));
        let mut subjects = vec![SubjectRef::User("alice".to_owned())];
        subjects.extend((0..LEN).map(|i| SubjectRef::GroupMember(group(i))));
        let mut checks = Vec::new();
        for s in &subjects {
            for (relation, o) in [
                (Relation::CanRead, object.clone()),
                (Relation::CanWrite, object.clone()),
                (Relation::Member, ObjectRef::Group(group(LEN - 1))),
                (Relation::Member, ObjectRef::Group(group(0))),
            ] {
                checks.push(FgaCheck {
                    user: s.to_string(),
                    relation: rel_name(relation).to_owned(),
                    object: o.to_string(),
                    expected: nexus_authz::check(&tuples, s, relation, &o, now).allowed,
                });
            }
        }
        // The cycle runs the same way as the chain, so an expired link cuts alice off.
        assert_eq!(
            checks[0].expected,
            broken_at.is_none(),
            "alice reads through {LEN} groups unless a link expired"
        );
        let mut all: Vec<FgaTuple> = tuples
            .iter()
            .map(|t| FgaTuple {
                user: t.subject.to_string(),
                relation: rel_name(t.relation).to_owned(),
                object: t.object.to_string(),
                expires_at: t.expires_at.map(rfc3339),
            })
            .collect();
        all.push(FgaTuple {
            user: "zone:eng".to_owned(),
            relation: "zone".to_owned(),
            object: object.to_string(),
            expires_at: None,
        });
        let v = oracle::run(&all, &checks, &rfc3339(now)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.evaluated, checks.len());
        assert!(
            v.disagreements.is_empty(),
            "broken at {broken_at:?}: OpenFGA disagrees: {:#?}\n(file {})",
            v.disagreements,
            v.yaml.display()
        );
    }
}
