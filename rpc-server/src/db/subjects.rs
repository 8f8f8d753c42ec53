//! Subjects: the users, agents and services behind tokens. A token whose `user_id` names a
//! subject is bound to it. Every write bumps the ReBAC revision in its transaction; deleting
//! a subject revokes its tokens and drops the tuples naming it in that same transaction, so
//! a subject re-created under the same name inherits nothing.

use super::BeginWrite as _;
use super::tokens::insert_token_in;
use super::tuples::BUMP;
use super::{NewToken, Store, StoreError, with_pool};
use chrono::{DateTime, Utc};
use nexus_wire::spec::SubjectType;
use uuid::Uuid;

/// A subject to insert.
#[derive(Debug, Clone)]
pub struct NewSubject {
    pub subject_id: String,
    pub subject_type: SubjectType,
    pub display_name: String,
    pub tenant_id: Option<String>,
    /// An agent's owning user.
    pub owner_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A subject as stored, with how many unrevoked tokens are bound to it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectRecord {
    pub subject_id: String,
    pub subject_type: SubjectType,
    pub display_name: String,
    pub tenant_id: Option<String>,
    pub owner_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub tokens: i64,
}

/// What deleting a subject took with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectDeleted {
    pub subject_type: SubjectType,
    /// Tokens revoked by the deletion.
    pub revoked: Vec<Uuid>,
    /// Tuples naming the subject, removed.
    pub tuples_removed: u64,
}

#[derive(sqlx::FromRow)]
struct SubjectRow {
    subject_id: String,
    subject_type: String,
    display_name: String,
    tenant_id: Option<String>,
    owner_id: Option<String>,
    created_at: DateTime<Utc>,
    disabled_at: Option<DateTime<Utc>>,
    tokens: i64,
}

impl SubjectRow {
    fn into_record(self) -> Result<SubjectRecord, StoreError> {
        Ok(SubjectRecord {
            subject_type: self.subject_type.parse().map_err(|_| {
                StoreError::Db(sqlx::Error::Decode(
                    "corrupt subject_type in subjects".into(),
                ))
            })?,
            subject_id: self.subject_id,
            display_name: self.display_name,
            tenant_id: self.tenant_id,
            owner_id: self.owner_id,
            created_at: self.created_at,
            disabled_at: self.disabled_at,
            tokens: self.tokens,
        })
    }
}

const SELECT: &str = "SELECT s.subject_id, s.subject_type, s.display_name, s.tenant_id, \
     s.owner_id, s.created_at, s.disabled_at, \
     (SELECT COUNT(*) FROM api_tokens t WHERE t.user_id = s.subject_id AND t.revoked_at IS NULL) \
       AS tokens FROM subjects s";

impl Store {
    /// Registers a subject and, when given, mints its token, in one transaction: either both
    /// exist afterwards or neither. With `existing_ok`, a subject of the same type that
    /// already exists is kept (and only the token is added): how a further agent key is
    /// minted. An owner must be a registered user.
    pub async fn create_subject(
        &self,
        s: &NewSubject,
        token: Option<&NewToken>,
        existing_ok: bool,
    ) -> Result<(), StoreError> {
        const OWNER: &str = "SELECT subject_type FROM subjects WHERE subject_id = $1";
        const INSERT: &str = "INSERT INTO subjects (subject_id, subject_type, display_name, \
             tenant_id, owner_id, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (subject_id) DO NOTHING RETURNING subject_id";
        with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            sqlx::query_scalar::<_, i64>(BUMP).fetch_one(&mut *tx).await?;
            if let Some(owner) = &s.owner_id {
                let found: Option<(String,)> =
                    sqlx::query_as(OWNER).bind(owner).fetch_optional(&mut *tx).await?;
                match found {
                    Some((ty,)) if ty == "user" => {}
                    Some((ty,)) => return Err(StoreError::Invalid(format!(
                        "owner {owner:?} is a {ty}; an agent's owner must be a user"
                    ))),
                    None => return Err(StoreError::Invalid(format!(
                        "owner {owner:?} is not a registered user"
                    ))),
                }
            }
            let inserted: Option<(String,)> = sqlx::query_as(INSERT)
                .bind(&s.subject_id)
                .bind(s.subject_type.as_str())
                .bind(&s.display_name)
                .bind(&s.tenant_id)
                .bind(&s.owner_id)
                .bind(s.created_at)
                .fetch_optional(&mut *tx)
                .await?;
            if inserted.is_none() {
                let found: Option<(String,)> =
                    sqlx::query_as(OWNER).bind(&s.subject_id).fetch_optional(&mut *tx).await?;
                let same_type = found.is_some_and(|(ty,)| ty == s.subject_type.as_str());
                if !(existing_ok && same_type) {
                    return Err(StoreError::SubjectExists(s.subject_id.clone()));
                }
            }
            if let Some(t) = token {
                insert_token_in!(tx, t);
            }
            tx.commit().await?;
            Ok(())
        }.await)
    }

    /// All subjects (of one type when asked), by id.
    pub async fn list_subjects(
        &self,
        subject_type: Option<SubjectType>,
    ) -> Result<Vec<SubjectRecord>, StoreError> {
        let sql = format!(
            "{SELECT} WHERE ($1 IS NULL OR s.subject_type = $1) ORDER BY s.subject_id LIMIT {}",
            super::tuples::MAX_LISTED
        );
        let ty = subject_type.map(SubjectType::as_str);
        let rows: Vec<SubjectRow> = with_pool!(self, p => {
            sqlx::query_as(&sql).bind(ty).fetch_all(p).await
        })?;
        rows.into_iter().map(SubjectRow::into_record).collect()
    }

    pub async fn get_subject(&self, subject_id: &str) -> Result<Option<SubjectRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE s.subject_id = $1");
        let row: Option<SubjectRow> = with_pool!(self, p => {
            sqlx::query_as(&sql).bind(subject_id).fetch_optional(p).await
        })?;
        row.map(SubjectRow::into_record).transpose()
    }

    /// Disables (`Some(time)`) or enables (`None`) a subject. Its tokens stay as they are:
    /// a disabled subject's tokens are refused at identity load, and work again once it is
    /// enabled. [`StoreError::NotFound`] when no such subject.
    pub async fn set_subject_disabled(
        &self,
        subject_id: &str,
        disabled_at: Option<DateTime<Utc>>,
    ) -> Result<SubjectRecord, StoreError> {
        // Keeps the first disable time when disabling twice.
        const SQL: &str = "UPDATE subjects SET disabled_at = CASE WHEN $2 IS NULL THEN NULL \
             ELSE COALESCE(disabled_at, $2) END WHERE subject_id = $1";
        let n = with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            sqlx::query_scalar::<_, i64>(BUMP).fetch_one(&mut *tx).await?;
            let n = sqlx::query(SQL)
                .bind(subject_id)
                .bind(disabled_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(n)
        }.await)?;
        if n != 1 {
            return Err(StoreError::NotFound);
        }
        self.get_subject(subject_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Deletes a subject: revokes every token bound to it and removes every tuple naming it
    /// as subject, in one transaction. Agents it owned lose their owner.
    pub async fn delete_subject(
        &self,
        subject_id: &str,
        now: DateTime<Utc>,
    ) -> Result<SubjectDeleted, StoreError> {
        const FIND: &str = "SELECT subject_type FROM subjects WHERE subject_id = $1";
        const REVOKE: &str = "UPDATE api_tokens SET revoked_at = $2 \
             WHERE user_id = $1 AND revoked_at IS NULL RETURNING key_id";
        const TUPLES: &str = "DELETE FROM rebac_tuples WHERE subject_type = $1 AND subject_id = $2 \
             AND subject_relation = ''";
        const DELETE: &str = "DELETE FROM subjects WHERE subject_id = $1";
        with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            sqlx::query_scalar::<_, i64>(BUMP).fetch_one(&mut *tx).await?;
            let found: Option<(String,)> =
                sqlx::query_as(FIND).bind(subject_id).fetch_optional(&mut *tx).await?;
            let Some((ty,)) = found else {
                return Err(StoreError::NotFound);
            };
            let revoked: Vec<(Uuid,)> = sqlx::query_as(REVOKE)
                .bind(subject_id)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
            let mut tuples_removed = sqlx::query(TUPLES)
                .bind(&ty)
                .bind(subject_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for (key_id,) in &revoked {
                tuples_removed += sqlx::query(TUPLES)
                    .bind("token")
                    .bind(key_id.to_string())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            sqlx::query(DELETE).bind(subject_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(SubjectDeleted {
                subject_type: ty.parse().map_err(|_| {
                    StoreError::Db(sqlx::Error::Decode("corrupt subject_type in subjects".into()))
                })?,
                revoked: revoked.into_iter().map(|r| r.0).collect(),
                tuples_removed,
            })
        }.await)
    }
}
