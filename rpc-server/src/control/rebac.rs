//! Relationship tuples: `rebac_create`, `rebac_delete`, `rebac_check`,
//! `rebac_list_tuples`, `rebac_expand`. Admin tokens may do all of it; a zone admin (a
//! subject with `admin` on `zone:Z`, within the token's zones) only for objects in Z.

use super::{Caller, Control, ControlError, expires_at, invalid, ts};
use crate::auth::Invalidation;
use crate::db::{MAX_LISTED, StoreError, TupleFilter};
use chrono::{DateTime, Utc};
use nexus_authz::closure::SubjectSet;
use nexus_authz::grants::{Grants, ZoneRole};
use nexus_authz::model::{ObjectRef, Relation, SubjectRef, Tuple};
use nexus_wire::methods::*;

/// `group:eng` as a subject means its members, as the seed writes it.
pub fn parse_subject(s: &str) -> Result<SubjectRef, ControlError> {
    let s = s.trim();
    if let Some(g) = s.strip_prefix("group:")
        && !g.contains('#')
    {
        return SubjectRef::parse(&format!("{s}#member")).map_err(invalid);
    }
    SubjectRef::parse(s).map_err(invalid)
}

pub fn parse_relation(r: &str) -> Result<Relation, ControlError> {
    r.trim().parse::<Relation>().map_err(invalid)
}

pub fn parse_object(o: &str, zone: Option<&str>) -> Result<ObjectRef, ControlError> {
    let o = o.trim();
    match zone {
        Some(z) => ObjectRef::parse_in_zone(o, z),
        None => ObjectRef::parse(o),
    }
    .map_err(invalid)
}

pub(crate) fn tuple_info(t: &Tuple, now: DateTime<Utc>) -> TupleInfo {
    TupleInfo {
        subject: t.subject.to_string(),
        relation: t.relation.to_string(),
        object: t.object.to_string(),
        expires_at: t.expires_at.map(ts),
        created_at: None,
        created_by: None,
        expired: !t.is_live(now),
    }
}

fn reason_word(r: &nexus_authz::Reason) -> String {
    // The Debug form is the variant name: AdminToken → admin_token.
    let name = format!("{r:?}");
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            break;
        }
    }
    out
}

impl Control {
    /// The caller's grants, compiled fresh from the store (management calls are rare and
    /// must not act on a stale view of who administers what).
    async fn caller_grants(&self, caller: &Caller) -> Result<Grants, ControlError> {
        let now = Utc::now();
        let edges = self.store.closure_edges(&caller.base, now).await?;
        let set = SubjectSet::build(&caller.base, &edges, now)
            .map_err(|e| ControlError::PermissionDenied(format!("permission denied: {e}")))?;
        let mut subjects = caller.base.clone();
        subjects.extend(set.groups().map(|g| SubjectRef::GroupMember(g.to_owned())));
        let tuples = self.store.tuples_for(&subjects, now).await?;
        Ok(Grants::compile(&set, &tuples, now))
    }

    /// Admin tokens pass. Otherwise the object must be in a zone the token lists (or the
    /// token lists none) and the caller must administer that zone — or be a namespace admin
    /// holding a zoneless token. A change (`write`) also needs the token's grant on that zone
    /// to allow writing: a read-only key stays read-only, whatever its subject administers.
    async fn authorize(
        &self,
        caller: &Caller,
        zone: Option<&str>,
        what: &str,
        write: bool,
    ) -> Result<(), ControlError> {
        if caller.is_admin {
            return Ok(());
        }
        let denied = || {
            ControlError::PermissionDenied(match zone {
                Some(z) => format!(
                    "permission denied: {what} in zone {z:?} needs an admin token or admin on zone:{z}"
                ),
                None => format!("permission denied: {what} needs an admin token"),
            })
        };
        if caller.base.is_empty() {
            return Err(denied());
        }
        let grants = self.caller_grants(caller).await?;
        if grants.is_namespace_admin() && caller.zones.is_empty() {
            return Ok(());
        }
        let Some(z) = zone else {
            return Err(denied());
        };
        let within = caller.zones.is_empty()
            || caller
                .zones
                .iter()
                .any(|g| g.zone_id == z && (!write || g.permission.can_write()));
        if within && (grants.zone_role(z) == ZoneRole::Admin || grants.is_namespace_admin()) {
            Ok(())
        } else {
            Err(denied())
        }
    }

    fn tuple_error(e: StoreError) -> ControlError {
        match e {
            StoreError::TooManyGroups => ControlError::Invalid(
                "too many groups: the subject's group closure is past its bound".into(),
            ),
            e => e.into(),
        }
    }

    /// `rebac_create`: writes one tuple, optionally expiring.
    pub async fn rebac_create(
        &self,
        caller: &Caller,
        p: RebacTupleParams,
    ) -> Result<TupleInfo, ControlError> {
        let now = Utc::now();
        let mut t = Tuple::new(
            parse_subject(&p.subject)?,
            parse_relation(&p.relation)?,
            parse_object(&p.object, p.zone.as_deref())?,
        );
        t.expires_at = expires_at(now, p.expires.as_deref())?;
        t.validate().map_err(invalid)?;
        self.authorize(caller, t.object.zone(), "rebac_create", true)
            .await?;
        let rec = self
            .store
            .create_tuple(&t, Some(&caller.created_by()), now)
            .await
            .map_err(Self::tuple_error)?;
        self.bus.publish(Invalidation::Rebac);
        self.audit(
            "rebac.create",
            caller,
            serde_json::json!({ "tuple": rec.tuple.to_string() }),
        );
        let mut info = tuple_info(&rec.tuple, now);
        info.created_at = Some(ts(rec.created_at));
        info.created_by = rec.created_by;
        Ok(info)
    }

    /// `rebac_delete`: removes one tuple (whatever its expiry).
    pub async fn rebac_delete(
        &self,
        caller: &Caller,
        p: RebacTupleParams,
    ) -> Result<TupleInfo, ControlError> {
        if p.expires.is_some() {
            return Err(ControlError::Invalid(
                "--expires applies to rebac create only".into(),
            ));
        }
        let subject = parse_subject(&p.subject)?;
        let relation = parse_relation(&p.relation)?;
        let object = parse_object(&p.object, p.zone.as_deref())?;
        self.authorize(caller, object.zone(), "rebac_delete", true)
            .await?;
        let rec = self
            .store
            .delete_tuple(&subject, relation, &object)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    ControlError::NotFound(format!("no tuple {subject} {relation} {object}"))
                }
                e => Self::tuple_error(e),
            })?;
        self.bus.publish(Invalidation::Rebac);
        self.audit(
            "rebac.delete",
            caller,
            serde_json::json!({ "tuple": rec.tuple.to_string() }),
        );
        Ok(tuple_info(&rec.tuple, Utc::now()))
    }

    /// `rebac_check`: whether `subject` has `relation` on `object` by the model, from the
    /// subject's closure and tuples; `explain` returns the tuples that decided.
    pub async fn rebac_check(
        &self,
        caller: &Caller,
        p: RebacCheckParams,
    ) -> Result<RebacCheckResult, ControlError> {
        let subject = parse_subject(&p.subject)?;
        let relation = parse_relation(&p.relation)?;
        let object = parse_object(&p.object, p.zone.as_deref())?;
        nexus_authz::model::check_relation_on(relation, &object).map_err(invalid)?;
        self.authorize(caller, object.zone(), "rebac_check", false)
            .await?;
        let now = Utc::now();
        let base = [subject.clone()];
        let mut tuples = self
            .store
            .closure_edges(&base, now)
            .await
            .map_err(Self::tuple_error)?;
        let set = SubjectSet::build(&base, &tuples, now).map_err(invalid)?;
        let mut subjects = vec![subject.clone()];
        subjects.extend(set.groups().map(|g| SubjectRef::GroupMember(g.to_owned())));
        tuples.extend(
            self.store
                .tuples_for(&subjects, now)
                .await
                .map_err(Self::tuple_error)?,
        );
        let d = nexus_authz::check(&tuples, &subject, relation, &object, now);
        Ok(RebacCheckResult {
            allowed: d.allowed,
            subject: subject.to_string(),
            relation: relation.to_string(),
            object: object.to_string(),
            reason: reason_word(&d.reason),
            because: if p.explain {
                d.because.iter().map(|t| tuple_info(t, now)).collect()
            } else {
                Vec::new()
            },
        })
    }

    /// `rebac_list_tuples`: stored tuples by subject, object, relation or zone. A zone admin
    /// must name a zone (or a zone's object).
    pub async fn rebac_list(
        &self,
        caller: &Caller,
        p: RebacListParams,
    ) -> Result<RebacTuples, ControlError> {
        if let Some(z) = &p.zone {
            nexus_authz::model::validate_zone(z).map_err(invalid)?;
        }
        let filter = TupleFilter {
            subject: p.subject.as_deref().map(parse_subject).transpose()?,
            object: p
                .object
                .as_deref()
                .map(|o| parse_object(o, p.zone.as_deref()))
                .transpose()?,
            relation: p.relation.as_deref().map(parse_relation).transpose()?,
            zone: p.zone.clone(),
        };
        let zone = filter
            .object
            .as_ref()
            .and_then(|o| o.zone().map(str::to_owned))
            .or_else(|| p.zone.clone());
        self.authorize(caller, zone.as_deref(), "rebac_list_tuples", false)
            .await?;
        // A zone admin sees only its zone's tuples, even when filtering by subject.
        let filter = if caller.is_admin {
            filter
        } else {
            TupleFilter { zone, ..filter }
        };
        let now = Utc::now();
        let mut rows = self
            .store
            .list_tuples(&filter)
            .await
            .map_err(Self::tuple_error)?;
        let truncated = rows.len() > MAX_LISTED;
        rows.truncate(MAX_LISTED);
        Ok(RebacTuples {
            truncated,
            tuples: rows
                .iter()
                .map(|r| {
                    let mut i = tuple_info(&r.tuple, now);
                    i.created_at = Some(ts(r.created_at));
                    i.created_by = r.created_by.clone();
                    i
                })
                .collect(),
        })
    }

    /// `rebac_expand`: who has `relation` on `object`, and through which tuples.
    pub async fn rebac_expand(
        &self,
        caller: &Caller,
        p: RebacExpandParams,
    ) -> Result<RebacExpandResult, ControlError> {
        let relation = parse_relation(&p.relation)?;
        let object = parse_object(&p.object, p.zone.as_deref())?;
        nexus_authz::model::check_relation_on(relation, &object).map_err(invalid)?;
        self.authorize(caller, object.zone(), "rebac_expand", false)
            .await?;
        let now = Utc::now();
        let tuples = self
            .store
            .tuples_about(&object, now)
            .await
            .map_err(Self::tuple_error)?;
        let subjects = nexus_authz::expand(&tuples, relation, &object, now)
            .into_iter()
            .map(|(s, because)| ExpandEntry {
                subject: s.to_string(),
                because: because.iter().map(|t| tuple_info(t, now)).collect(),
            })
            .collect();
        Ok(RebacExpandResult {
            relation: relation.to_string(),
            object: object.to_string(),
            subjects,
        })
    }
}
