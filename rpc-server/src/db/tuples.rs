//! Relationship tuples, the subject closure and the ReBAC revision.
//!
//! Evaluation never recurses here on the hot path: an identity's grants are compiled from
//! two queries, [`Store::closure_edges`] (one recursive query over `member` edges, bounded
//! in depth and size, cycle-safe) and [`Store::tuples_for`] (the other tuples of the subject
//! set). Every write bumps `rebac_revision` first in its transaction, which also serialises
//! tuple and subject writers, so a check-then-insert cannot race a delete.

use super::BeginWrite as _;
use super::{Backend, Store, StoreError, is_unique_violation, with_pool};
use chrono::{DateTime, Utc};
use nexus_authz::closure::MAX_GROUP_DEPTH;
use nexus_authz::model::{ObjectRef, Relation, SubjectRef, Tuple};

/// Most `member` edges one closure may reach before it is refused ("too many groups").
pub const MAX_CLOSURE_EDGES: usize = 100_000;
/// Most non-member tuples one identity's grants are compiled from; past it the identity is
/// refused (fail closed) rather than loading an unbounded set.
pub const MAX_TUPLES_PER_IDENTITY: usize = 100_000;
/// Most rows one listing or expand returns.
pub const MAX_LISTED: usize = 10_000;

/// The statement every tuple or subject write starts with.
pub(super) const BUMP: &str = "UPDATE rebac_revision SET rev = rev + 1 WHERE id = 1 RETURNING rev";

/// A stored tuple with its bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct TupleRecord {
    pub tuple_id: i64,
    pub tuple: Tuple,
    pub created_at: DateTime<Utc>,
    /// `key:<key_id>` of the writer, or `local` for the CLI on the database.
    pub created_by: Option<String>,
}

/// Which tuples a listing wants; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct TupleFilter {
    pub subject: Option<SubjectRef>,
    pub object: Option<ObjectRef>,
    pub relation: Option<Relation>,
    /// Only objects in this zone (zone roles and file tuples).
    pub zone: Option<String>,
}

#[derive(sqlx::FromRow)]
struct TupleRow {
    tuple_id: i64,
    object_type: String,
    object_id: String,
    relation: String,
    subject_type: String,
    subject_id: String,
    subject_relation: String,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    created_by: Option<String>,
}

/// A closure edge and how many (edge, depth) steps the walk took in all.
#[derive(sqlx::FromRow)]
struct ClosureRow {
    #[sqlx(flatten)]
    row: TupleRow,
    reached: i64,
}

const COLS: &str = "t.tuple_id, t.object_type, t.object_id, t.relation, t.subject_type, \
     t.subject_id, t.subject_relation, t.expires_at, t.created_at, t.created_by";

/// The same columns unqualified, for `RETURNING` (SQLite takes no alias there).
const RETURNED: &str = "tuple_id, object_type, object_id, relation, subject_type, \
     subject_id, subject_relation, expires_at, created_at, created_by";

fn corrupt(what: &str) -> StoreError {
    StoreError::Db(sqlx::Error::Decode(
        format!("corrupt {what} in rebac_tuples").into(),
    ))
}

impl TupleRow {
    fn into_record(self) -> Result<TupleRecord, StoreError> {
        let subject = if self.subject_relation.is_empty() {
            format!("{}:{}", self.subject_type, self.subject_id)
        } else {
            format!(
                "{}:{}#{}",
                self.subject_type, self.subject_id, self.subject_relation
            )
        };
        let tuple = Tuple {
            subject: SubjectRef::parse(&subject).map_err(|_| corrupt("subject"))?,
            relation: self.relation.parse().map_err(|_| corrupt("relation"))?,
            object: ObjectRef::parse(&format!("{}:{}", self.object_type, self.object_id))
                .map_err(|_| corrupt("object"))?,
            expires_at: self.expires_at,
        };
        Ok(TupleRecord {
            tuple_id: self.tuple_id,
            tuple,
            created_at: self.created_at,
            created_by: self.created_by,
        })
    }
}

/// `(object_type, object_id)` as stored: the id is the text after `<type>:`.
fn object_key(o: &ObjectRef) -> (&'static str, String) {
    let text = o.to_string();
    let id = text
        .split_once(':')
        .map(|(_, id)| id.to_owned())
        .unwrap_or_default();
    (o.type_name(), id)
}

/// `(subject_type, subject_id, subject_relation)` as stored.
fn subject_key(s: &SubjectRef) -> (&'static str, &str, &'static str) {
    let rel = if matches!(s, SubjectRef::GroupMember(_)) {
        "member"
    } else {
        ""
    };
    (s.type_name(), s.id(), rel)
}

/// A set of subjects as five JSON arrays of ids (user, agent, service, token, group), so
/// one bound parameter per kind carries any number of them.
fn subject_arrays(subjects: &[SubjectRef]) -> [String; 5] {
    let mut v: [Vec<&str>; 5] = Default::default();
    for s in subjects {
        let i = match s {
            SubjectRef::User(_) => 0,
            SubjectRef::Agent(_) => 1,
            SubjectRef::Service(_) => 2,
            SubjectRef::Token(_) => 3,
            SubjectRef::GroupMember(_) => 4,
        };
        v[i].push(s.id());
    }
    v.map(|ids| serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()))
}

/// `subj(ty, id, rel)`: the subjects bound as five JSON arrays `$first` … `$first+4`, as
/// rows to join on (an index lookup each, where an `OR` of `IN`s would scan the table).
fn subjects_cte(backend: Backend, first: usize) -> String {
    let kinds = [
        ("user", ""),
        ("agent", ""),
        ("service", ""),
        ("token", ""),
        ("group", "member"),
    ];
    let parts: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(i, (ty, rel))| {
            let n = first + i;
            match backend {
                Backend::Postgres => format!(
                    "SELECT '{ty}'::text AS ty, x AS id, '{rel}'::text AS rel \
                     FROM jsonb_array_elements_text(${n}::jsonb) AS x"
                ),
                Backend::Sqlite => {
                    format!("SELECT '{ty}' AS ty, value AS id, '{rel}' AS rel FROM json_each(${n})")
                }
            }
        })
        .collect();
    format!("subj(ty, id, rel) AS ({})", parts.join(" UNION ALL "))
}

/// `<outer>` joined to `rebac_tuples t` on `on`, as one index lookup per outer row whatever
/// the planner believes about row counts: a CTE or a freshly loaded table is misjudged
/// easily, and a nested loop the wrong way round costs rows × rows. Postgres gets a fenced
/// LATERAL (`OFFSET 0` keeps it from being flattened back into a join); SQLite a CROSS
/// JOIN, which it never reorders.
fn lookup_join(backend: Backend, outer: &str, on: &str) -> String {
    match backend {
        Backend::Postgres => format!(
            "{outer} CROSS JOIN LATERAL (SELECT * FROM rebac_tuples t WHERE {on} OFFSET 0) t"
        ),
        Backend::Sqlite => format!("{outer} CROSS JOIN rebac_tuples t ON {on}"),
    }
}

const ON_SUBJ: &str =
    "t.subject_type = s.ty AND t.subject_id = s.id AND t.subject_relation = s.rel";

const LIVE: &str = "(t.expires_at IS NULL OR t.expires_at > $1)";

impl Store {
    /// The current ReBAC revision.
    pub async fn rebac_revision(&self) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT rev FROM rebac_revision WHERE id = 1";
        Ok(with_pool!(self, p => sqlx::query_scalar::<_, i64>(SQL).fetch_one(p).await)?)
    }

    /// Writes a tuple after validating it: the relation must apply to the object, a zone or
    /// file object's zone must be active, a user/agent/service subject must be a registered
    /// subject of that type and a token subject an unrevoked token. Returns the stored row.
    pub async fn create_tuple(
        &self,
        t: &Tuple,
        created_by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<TupleRecord, StoreError> {
        t.validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        if t.expires_at.is_some_and(|e| e <= now) {
            return Err(StoreError::Invalid(
                "the expiry is in the past: nothing to grant".into(),
            ));
        }
        let (object_type, object_id) = object_key(&t.object);
        let (subject_type, subject_id, subject_relation) = subject_key(&t.subject);
        let zone = t.object.zone().map(str::to_owned);
        const ZONE_OK: &str = "SELECT zone_id FROM zones WHERE zone_id = $1 AND deleted_at IS NULL";
        const SUBJECT: &str = "SELECT subject_type FROM subjects WHERE subject_id = $1";
        const TOKEN: &str =
            "SELECT key_id FROM api_tokens WHERE key_id = $1 AND revoked_at IS NULL";
        const INSERT: &str = "INSERT INTO rebac_tuples (zone_id, object_type, object_id, relation, \
             subject_type, subject_id, subject_relation, expires_at, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING tuple_id";
        let tuple_id: i64 = with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            sqlx::query_scalar::<_, i64>(BUMP).fetch_one(&mut *tx).await?;
            if let Some(z) = &zone {
                let found: Option<(String,)> =
                    sqlx::query_as(ZONE_OK).bind(z).fetch_optional(&mut *tx).await?;
                if found.is_none() {
                    return Err(StoreError::ZoneNotActive(z.clone()));
                }
            }
            match &t.subject {
                SubjectRef::User(id) | SubjectRef::Agent(id) | SubjectRef::Service(id) => {
                    let found: Option<(String,)> =
                        sqlx::query_as(SUBJECT).bind(id).fetch_optional(&mut *tx).await?;
                    match found {
                        None => return Err(StoreError::Invalid(format!(
                            "no subject {} (create it with: nexus admin create-user {id} --subject-type {subject_type})",
                            t.subject
                        ))),
                        Some((ty,)) if ty != subject_type => return Err(StoreError::Invalid(format!(
                            "{id:?} is a registered {ty}, not a {subject_type}: write {ty}:{id}"
                        ))),
                        Some(_) => {}
                    }
                }
                SubjectRef::Token(id) => {
                    let key: uuid::Uuid = id.parse().map_err(|_| {
                        StoreError::Invalid(format!("invalid token key id {id:?}"))
                    })?;
                    let found: Option<(uuid::Uuid,)> =
                        sqlx::query_as(TOKEN).bind(key).fetch_optional(&mut *tx).await?;
                    if found.is_none() {
                        return Err(StoreError::Invalid(format!(
                            "no active token with key id {id}"
                        )));
                    }
                }
                SubjectRef::GroupMember(_) => {}
            }
            let id: i64 = sqlx::query_scalar(INSERT)
                .bind(&zone)
                .bind(object_type)
                .bind(&object_id)
                .bind(t.relation.as_str())
                .bind(subject_type)
                .bind(subject_id)
                .bind(subject_relation)
                .bind(t.expires_at)
                .bind(now)
                .bind(created_by)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::TupleExists(t.to_string())
                    } else {
                        StoreError::Db(e)
                    }
                })?;
            tx.commit().await?;
            Ok(id)
        }.await)?;
        Ok(TupleRecord {
            tuple_id,
            tuple: t.clone(),
            created_at: now,
            created_by: created_by.map(str::to_owned),
        })
    }

    /// Deletes the tuple `subject relation object` (whatever its expiry).
    /// [`StoreError::NotFound`] when there is none; nothing is bumped then.
    pub async fn delete_tuple(
        &self,
        subject: &SubjectRef,
        relation: Relation,
        object: &ObjectRef,
    ) -> Result<TupleRecord, StoreError> {
        let (object_type, object_id) = object_key(object);
        let (subject_type, subject_id, subject_relation) = subject_key(subject);
        let sql = format!(
            "DELETE FROM rebac_tuples WHERE object_type = $1 AND object_id = $2 \
             AND relation = $3 AND subject_type = $4 AND subject_id = $5 \
             AND subject_relation = $6 RETURNING {RETURNED}"
        );
        let row: Option<TupleRow> = with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            sqlx::query_scalar::<_, i64>(BUMP).fetch_one(&mut *tx).await?;
            let row: Option<TupleRow> = sqlx::query_as(&sql)
                .bind(object_type)
                .bind(&object_id)
                .bind(relation.as_str())
                .bind(subject_type)
                .bind(subject_id)
                .bind(subject_relation)
                .fetch_optional(&mut *tx)
                .await?;
            if row.is_some() {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok::<_, sqlx::Error>(row)
        }.await)?;
        row.ok_or(StoreError::NotFound)?.into_record()
    }

    /// Tuples matching `filter`, expired ones included (they show as such), oldest first, at
    /// most [`MAX_LISTED`] + 1: one past the cap tells the caller the list was cut.
    pub async fn list_tuples(&self, filter: &TupleFilter) -> Result<Vec<TupleRecord>, StoreError> {
        let mut conds: Vec<String> = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        let mut bind = |v: String| {
            binds.push(v);
            format!("${}", binds.len())
        };
        if let Some(s) = &filter.subject {
            let (ty, id, rel) = subject_key(s);
            conds.push(format!(
                "t.subject_type = {} AND t.subject_id = {} AND t.subject_relation = {}",
                bind(ty.into()),
                bind(id.into()),
                bind(rel.into())
            ));
        }
        if let Some(o) = &filter.object {
            let (ty, id) = object_key(o);
            conds.push(format!(
                "t.object_type = {} AND t.object_id = {}",
                bind(ty.into()),
                bind(id)
            ));
        }
        if let Some(r) = filter.relation {
            conds.push(format!("t.relation = {}", bind(r.as_str().into())));
        }
        if let Some(z) = &filter.zone {
            conds.push(format!("t.zone_id = {}", bind(z.clone())));
        }
        let cond = if conds.is_empty() {
            "TRUE".to_owned()
        } else {
            conds.join(" AND ")
        };
        let sql = format!(
            "SELECT {COLS} FROM rebac_tuples t WHERE {cond} ORDER BY t.tuple_id LIMIT {}",
            MAX_LISTED + 1
        );
        let rows: Vec<TupleRow> = with_pool!(self, p => {
            let mut q = sqlx::query_as(&sql);
            for b in &binds {
                q = q.bind(b);
            }
            q.fetch_all(p).await
        })?;
        rows.into_iter().map(TupleRow::into_record).collect()
    }

    /// The live `member` edges reachable from `base` (directly, or through groups reached),
    /// in ONE recursive query: depth at most [`MAX_GROUP_DEPTH`] (deeper memberships are not
    /// reached: fail closed), cycle-safe (each edge is walked at most once per depth), and
    /// bounded in size: past [`MAX_CLOSURE_EDGES`] edges it is [`StoreError::TooManyGroups`].
    pub async fn closure_edges(
        &self,
        base: &[SubjectRef],
        now: DateTime<Utc>,
    ) -> Result<Vec<Tuple>, StoreError> {
        let backend = self.backend();
        let depth = i64::try_from(MAX_GROUP_DEPTH).unwrap_or(i64::MAX);
        // The recursion walks edges, not groups, so the result needs no join back to a
        // set of groups (which planners misjudge badly on a fresh table): each edge at most
        // once per depth.
        let pairs = MAX_CLOSURE_EDGES.saturating_mul(4);
        let sql = format!(
            "WITH RECURSIVE {subj}, \
             reach(tuple_id, object_id, depth) AS ( \
               SELECT t.tuple_id, t.object_id, 1 FROM {anchor} \
               WHERE t.object_type = 'group' AND t.relation = 'member' AND {LIVE} \
               UNION \
               SELECT t.tuple_id, t.object_id, r.depth + 1 FROM {step} \
               WHERE r.depth < $2 AND t.object_type = 'group' AND t.relation = 'member' AND {LIVE} \
             ), \
             bounded AS (SELECT tuple_id FROM reach LIMIT {pairs}), \
             hit AS (SELECT DISTINCT tuple_id FROM bounded) \
             SELECT {COLS}, (SELECT COUNT(*) FROM bounded) AS reached FROM {fetch} \
             ORDER BY t.tuple_id LIMIT {limit}",
            subj = subjects_cte(backend, 3),
            anchor = lookup_join(backend, "subj s", ON_SUBJ),
            step = lookup_join(
                backend,
                "reach r",
                "t.subject_type = 'group' AND t.subject_id = r.object_id \
                 AND t.subject_relation = 'member'"
            ),
            fetch = lookup_join(backend, "hit h", "t.tuple_id = h.tuple_id"),
            limit = MAX_CLOSURE_EDGES + 1,
        );
        let arrays = subject_arrays(base);
        let rows: Vec<ClosureRow> = with_pool!(self, p => {
            let mut q = sqlx::query_as(&sql).bind(now).bind(depth);
            for a in &arrays {
                q = q.bind(a);
            }
            q.fetch_all(p).await
        })?;
        let truncated = rows
            .first()
            .is_some_and(|r| usize::try_from(r.reached).unwrap_or(usize::MAX) >= pairs);
        if rows.len() > MAX_CLOSURE_EDGES || truncated {
            return Err(StoreError::TooManyGroups);
        }
        rows.into_iter()
            .map(|r| r.row.into_record().map(|r| r.tuple))
            .collect()
    }

    /// The live tuples other than `member` edges whose subject is one of `subjects` (the
    /// closure: token, subject, groups), in ONE query. Past [`MAX_TUPLES_PER_IDENTITY`] it is
    /// [`StoreError::TooManyTuples`].
    pub async fn tuples_for(
        &self,
        subjects: &[SubjectRef],
        now: DateTime<Utc>,
    ) -> Result<Vec<Tuple>, StoreError> {
        let sql = format!(
            "WITH {} SELECT {COLS} FROM {} \
             WHERE t.relation <> 'member' AND {LIVE} LIMIT {}",
            subjects_cte(self.backend(), 2),
            lookup_join(self.backend(), "subj s", ON_SUBJ),
            MAX_TUPLES_PER_IDENTITY + 1
        );
        let arrays = subject_arrays(subjects);
        let rows: Vec<TupleRow> = with_pool!(self, p => {
            let mut q = sqlx::query_as(&sql).bind(now);
            for a in &arrays {
                q = q.bind(a);
            }
            q.fetch_all(p).await
        })?;
        if rows.len() > MAX_TUPLES_PER_IDENTITY {
            return Err(StoreError::TooManyTuples);
        }
        rows.into_iter()
            .map(|r| r.into_record().map(|r| r.tuple))
            .collect()
    }

    /// Everything that can decide who has a relation on `object`: the tuples on objects of
    /// its zone (or on the namespace / groups for hub-wide objects) and every group
    /// membership. Live tuples only, at most [`MAX_TUPLES_PER_IDENTITY`].
    pub async fn tuples_about(
        &self,
        object: &ObjectRef,
        now: DateTime<Utc>,
    ) -> Result<Vec<Tuple>, StoreError> {
        let sql = format!(
            "SELECT {COLS} FROM rebac_tuples t WHERE {LIVE} AND \
             (t.object_type IN ('group', 'namespace') OR t.zone_id = $2) LIMIT {}",
            MAX_TUPLES_PER_IDENTITY + 1
        );
        let zone = object.zone().map(str::to_owned);
        let rows: Vec<TupleRow> = with_pool!(self, p => {
            sqlx::query_as(&sql).bind(now).bind(&zone).fetch_all(p).await
        })?;
        if rows.len() > MAX_TUPLES_PER_IDENTITY {
            return Err(StoreError::TooManyTuples);
        }
        rows.into_iter()
            .map(|r| r.into_record().map(|r| r.tuple))
            .collect()
    }

    /// Registered subjects and stored tuples, for `hub status`.
    pub async fn rebac_counts(&self) -> Result<(u64, u64), StoreError> {
        const SQL: &str =
            "SELECT (SELECT COUNT(*) FROM subjects), (SELECT COUNT(*) FROM rebac_tuples)";
        let (s, t): (i64, i64) = with_pool!(self, p => sqlx::query_as(SQL).fetch_one(p).await)?;
        Ok((s.max(0) as u64, t.max(0) as u64))
    }
}
