//! Users, agents and services: `admin_create_user`, `admin_list_users`,
//! `admin_delete_user`, `admin_set_user_state`, `admin_create_agent_key`.

use super::{Caller, Control, ControlError, expires_at, invalid, ts};
use crate::auth::{Invalidation, PlainToken};
use crate::db::{NewSubject, NewToken, StoreError, SubjectRecord};
use chrono::{DateTime, Utc};
use nexus_wire::methods::*;
use nexus_wire::spec::{SubjectType, ZoneGrant, parse_zone_spec};
use uuid::Uuid;

/// Longest display name kept.
const MAX_DISPLAY_NAME: usize = 256;

pub(crate) fn user_info(r: &SubjectRecord) -> UserInfo {
    UserInfo {
        subject_id: r.subject_id.clone(),
        subject_type: r.subject_type,
        display_name: r.display_name.clone(),
        tenant_id: r.tenant_id.clone().unwrap_or_else(|| "default".into()),
        owner_id: r.owner_id.clone(),
        created_at: ts(r.created_at),
        disabled_at: r.disabled_at.map(ts),
        status: if r.disabled_at.is_some() {
            "disabled"
        } else {
            "active"
        }
        .into(),
        tokens: r.tokens.max(0) as u64,
    }
}

fn check_id(kind: &'static str, id: &str) -> Result<(), ControlError> {
    nexus_authz::model::validate_subject_id(kind, id).map_err(invalid)
}

fn check_display_name(name: &str) -> Result<(), ControlError> {
    if name.chars().count() > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
        return Err(ControlError::Invalid(format!(
            "display name must be at most {MAX_DISPLAY_NAME} printable characters"
        )));
    }
    Ok(())
}

fn subject_error(id: &str, e: StoreError) -> ControlError {
    match e {
        StoreError::SubjectExists(_) => ControlError::Conflict(format!(
            "a subject named {id:?} already exists (list them with: nexus admin list-users)"
        )),
        StoreError::NotFound => ControlError::NotFound(format!("no subject named {id:?}")),
        e => e.into(),
    }
}

/// What a new subject and its optional key look like once checked.
struct Plan {
    subject: NewSubject,
    zones: Vec<ZoneGrant>,
    expires_at: Option<DateTime<Utc>>,
    mint: bool,
}

impl Control {
    /// `admin_create_user`: a subject and, unless `no_key`, its first token.
    pub async fn create_user(
        &self,
        caller: &Caller,
        p: AdminCreateUserParams,
    ) -> Result<UserCreated, ControlError> {
        let subject_type = p.subject_type.unwrap_or(SubjectType::User);
        if p.owner.is_some() && subject_type != SubjectType::Agent {
            return Err(ControlError::Invalid(
                "only an agent has an owner (use --subject-type agent)".into(),
            ));
        }
        if p.no_key && (p.zones.is_some() || p.expires.is_some()) {
            return Err(ControlError::Invalid(
                "--zones and --expires describe the key: drop them with --no-key".into(),
            ));
        }
        let plan = self.plan(
            &p.subject_id,
            subject_type,
            p.name,
            p.tenant_id,
            p.owner,
            p.zones,
            p.expires,
            !p.no_key,
        )?;
        let created = self.register(plan, false).await?;
        self.audit(
            "admin.user.create",
            caller,
            serde_json::json!({
                "subject_id": created.user.subject_id,
                "subject_type": created.user.subject_type,
                "key_id": created.key.as_ref().map(|k| &k.key_id),
            }),
        );
        Ok(created)
    }

    /// `admin_create_agent_key`: a token for an agent, registering the agent when new. A
    /// further key for an existing agent keeps the agent as it is.
    pub async fn create_agent_key(
        &self,
        caller: &Caller,
        p: AdminCreateAgentKeyParams,
    ) -> Result<UserCreated, ControlError> {
        let plan = self.plan(
            &p.agent_id,
            SubjectType::Agent,
            p.name,
            p.tenant_id,
            p.owner,
            p.zones,
            p.expires,
            true,
        )?;
        let created = self.register(plan, true).await?;
        self.audit(
            "admin.agent_key.create",
            caller,
            serde_json::json!({
                "subject_id": created.user.subject_id,
                "owner_id": created.user.owner_id,
                "key_id": created.key.as_ref().map(|k| &k.key_id),
            }),
        );
        Ok(created)
    }

    #[allow(clippy::too_many_arguments)]
    fn plan(
        &self,
        id: &str,
        subject_type: SubjectType,
        name: Option<String>,
        tenant_id: Option<String>,
        owner: Option<String>,
        zones: Option<String>,
        expires: Option<String>,
        mint: bool,
    ) -> Result<Plan, ControlError> {
        check_id("subject id", id)?;
        let display_name = name.unwrap_or_default();
        check_display_name(&display_name)?;
        if let Some(t) = &tenant_id {
            check_id("tenant id", t)?;
        }
        if let Some(o) = &owner {
            check_id("owner", o)?;
            if o == id {
                return Err(ControlError::Invalid("an agent cannot own itself".into()));
            }
        }
        let mut zones = match &zones {
            Some(s) => parse_zone_spec(s)?,
            None => Vec::new(),
        };
        zones.sort_by(|a, b| a.zone_id.cmp(&b.zone_id));
        let now = Utc::now();
        let expires_at = expires_at(now, expires.as_deref())?;
        if mint && self.hasher.is_none() {
            return Err(ControlError::Invalid(
                "NEXUS_API_KEY_SECRET is not set: it is needed to mint keys (or use --no-key)"
                    .into(),
            ));
        }
        Ok(Plan {
            subject: NewSubject {
                subject_id: id.to_owned(),
                subject_type,
                display_name,
                tenant_id,
                owner_id: owner,
                created_at: now,
            },
            zones,
            expires_at,
            mint,
        })
    }

    async fn register(&self, plan: Plan, existing_ok: bool) -> Result<UserCreated, ControlError> {
        let s = &plan.subject;
        let now = s.created_at;
        let mut minted: Option<(PlainToken, NewToken)> = None;
        if plan.mint {
            let Some(hasher) = &self.hasher else {
                return Err(ControlError::Invalid(
                    "NEXUS_API_KEY_SECRET is not set: it is needed to mint keys".into(),
                ));
            };
            let key_id = Uuid::new_v4();
            // The first key is named after the subject; later ones get the key id's prefix.
            let taken = self
                .store
                .list_tokens(false)
                .await?
                .iter()
                .any(|t| t.name == s.subject_id);
            let name = if taken {
                format!("{}-{}", s.subject_id, &key_id.simple().to_string()[..8])
            } else {
                s.subject_id.clone()
            };
            let token = PlainToken::generate();
            let new = NewToken {
                key_id,
                digest: hasher.digest(token.expose()).0,
                name,
                user_id: s.subject_id.clone(),
                subject_type: s.subject_type,
                is_admin: false,
                rate_limit: None,
                created_at: now,
                expires_at: plan.expires_at,
                zones: plan.zones.clone(),
                permissions: None,
                oauth: None,
            };
            minted = Some((token, new));
        }
        self.store
            .create_subject(s, minted.as_ref().map(|(_, t)| t), existing_ok)
            .await
            .map_err(|e| subject_error(&s.subject_id, e))?;
        self.bus.publish(Invalidation::Subject {
            subject_id: s.subject_id.clone(),
        });
        let rec = self
            .store
            .get_subject(&s.subject_id)
            .await?
            .ok_or_else(|| {
                ControlError::NotFound(format!("no subject named {:?}", s.subject_id))
            })?;
        let key = minted.map(|(token, t)| TokenCreated {
            key_id: t.key_id.to_string(),
            token: token.expose().to_owned(),
            name: t.name,
            admin: false,
            zones: t.zones,
            user_id: t.user_id,
            subject_type: t.subject_type,
            created_at: ts(t.created_at),
            expires_at: t.expires_at.map(ts),
            rate_limit: None,
        });
        Ok(UserCreated {
            user: user_info(&rec),
            key,
        })
    }

    pub async fn list_users(
        &self,
        subject_type: Option<SubjectType>,
    ) -> Result<Vec<UserInfo>, ControlError> {
        Ok(self
            .store
            .list_subjects(subject_type)
            .await?
            .iter()
            .map(user_info)
            .collect())
    }

    /// Deletes a subject: its tokens are revoked and the tuples naming it removed, at once.
    pub async fn delete_user(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<UserDeleted, ControlError> {
        check_id("subject id", id)?;
        let rec = self
            .store
            .get_subject(id)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("no subject named {id:?}")))?;
        let gone = self
            .store
            .delete_subject(id, Utc::now())
            .await
            .map_err(|e| subject_error(id, e))?;
        for key_id in &gone.revoked {
            self.bus.publish(Invalidation::Token { key_id: *key_id });
        }
        self.bus.publish(Invalidation::Subject {
            subject_id: id.to_owned(),
        });
        self.bus.publish(Invalidation::Rebac);
        self.audit(
            "admin.user.delete",
            caller,
            serde_json::json!({
                "subject_id": id,
                "revoked_key_ids": gone.revoked.iter().map(Uuid::to_string).collect::<Vec<_>>(),
                "tuples_removed": gone.tuples_removed,
            }),
        );
        let mut user = user_info(&rec);
        user.tokens = 0;
        Ok(UserDeleted {
            user,
            tokens_revoked: gone.revoked.len() as u64,
            tuples_removed: gone.tuples_removed,
        })
    }

    /// Disables or enables a subject. Its tokens are refused while it is disabled.
    pub async fn set_user_state(
        &self,
        caller: &Caller,
        id: &str,
        disabled: bool,
    ) -> Result<UserInfo, ControlError> {
        check_id("subject id", id)?;
        let rec = self
            .store
            .set_subject_disabled(id, disabled.then(Utc::now))
            .await
            .map_err(|e| subject_error(id, e))?;
        self.bus.publish(Invalidation::Subject {
            subject_id: id.to_owned(),
        });
        self.audit(
            if disabled {
                "admin.user.disable"
            } else {
                "admin.user.enable"
            },
            caller,
            serde_json::json!({ "subject_id": id }),
        );
        Ok(user_info(&rec))
    }
}
