//! `nexus admin …` (users, agents, services) and `nexus rebac …` (tuples), locally on the
//! database or `--remote` over the hub's admin MCP tools. Either way the same control-plane
//! call answers, so text and `--json` output do not depend on where the command ran.
//!
//! Exit codes: 0 done (or allowed), 1 failed (or denied), 2 a malformed argument.

use super::hub::{local_control, with_propagation};
use crate::cli::*;
use crate::error::CliError;
use crate::output;
use crate::remote::RemoteAdmin;
use nexus_authz::model::{ObjectRef, Relation, SubjectRef, check_relation_on, validate_subject_id};
use nexus_wire::methods::*;
use nexus_wire::spec::SubjectType;
use rpc_server::control::{Caller, Control, parse_object, parse_relation, parse_subject};
use std::io::Write;

/// Where the command goes.
enum Target {
    Local(Control),
    Remote(RemoteAdmin),
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::with_code(e.to_string(), 2)
}

/// The control plane's own parsers (the `group:eng` shorthand included); a refusal is a
/// usage error.
fn subject(s: &str) -> Result<SubjectRef, CliError> {
    parse_subject(s).map_err(usage)
}

fn relation(r: &str) -> Result<Relation, CliError> {
    parse_relation(r).map_err(usage)
}

fn object(o: &str, zone: Option<&str>) -> Result<ObjectRef, CliError> {
    parse_object(o, zone).map_err(usage)
}

/// Checks a tuple's parts before anything is sent, so a typo is a usage error (exit 2)
/// locally and remotely alike.
fn checked(t: &TupleRef, exact: bool) -> Result<(SubjectRef, Relation, ObjectRef), CliError> {
    let s = subject(&t.subject)?;
    let r = relation(&t.relation)?;
    let o = object(&t.object, t.zone.as_deref())?;
    if exact {
        check_relation_on(r, &o).map_err(usage)?;
    }
    Ok((s, r, o))
}

fn subject_id(kind: &'static str, id: &str) -> Result<(), CliError> {
    validate_subject_id(kind, id).map_err(usage)
}

fn subject_type(s: &str) -> Result<SubjectType, CliError> {
    s.parse()
        .map_err(|e: nexus_wire::spec::SpecError| usage(e.0))
}

fn expiry(e: Option<&str>) -> Result<(), CliError> {
    match e {
        Some(e) => nexus_wire::spec::parse_expiry(e)
            .map(drop)
            .map_err(|e| usage(e.0)),
        None => Ok(()),
    }
}

impl Target {
    async fn open(local: &LocalArgs, remote: &RemoteArgs, bus: Bus) -> Result<Self, CliError> {
        match &remote.remote {
            Some(url) => Ok(Self::Remote(
                RemoteAdmin::connect(url, remote.admin_token.as_ref()).await?,
            )),
            None => {
                let url = local.database_url.as_ref().ok_or_else(|| {
                    CliError::new(
                        "NEXUS_DATABASE_URL is not set: run this on the hub host, `source <data-dir>/admin.env`, pass --database-url, or use --remote",
                    )
                })?;
                Ok(Self::Local(local_control(url, bus).await?))
            }
        }
    }

    async fn close(self) {
        if let Self::Remote(r) = self {
            r.close().await;
        }
    }

    async fn create_user(&self, p: AdminCreateUserParams) -> Result<UserCreated, CliError> {
        match self {
            Self::Local(c) => Ok(c.create_user(&Caller::local(), p).await?),
            Self::Remote(r) => r.tool("nexus_hub_user_create", &p).await,
        }
    }

    async fn create_agent_key(
        &self,
        p: AdminCreateAgentKeyParams,
    ) -> Result<UserCreated, CliError> {
        match self {
            Self::Local(c) => Ok(c.create_agent_key(&Caller::local(), p).await?),
            Self::Remote(r) => r.tool("nexus_hub_user_create_agent_key", &p).await,
        }
    }

    async fn list_users(&self, t: Option<SubjectType>) -> Result<Vec<UserInfo>, CliError> {
        match self {
            Self::Local(c) => Ok(c.list_users(t).await?),
            Self::Remote(r) => {
                let p = AdminListUsersParams { subject_type: t };
                r.tool("nexus_hub_user_list", &p).await
            }
        }
    }

    async fn delete_user(&self, id: &str) -> Result<UserDeleted, CliError> {
        match self {
            Self::Local(c) => Ok(c.delete_user(&Caller::local(), id).await?),
            Self::Remote(r) => {
                let p = AdminUserParams {
                    subject_id: id.to_owned(),
                };
                r.tool("nexus_hub_user_delete", &p).await
            }
        }
    }

    async fn set_user_state(&self, id: &str, disabled: bool) -> Result<UserInfo, CliError> {
        match self {
            Self::Local(c) => Ok(c.set_user_state(&Caller::local(), id, disabled).await?),
            Self::Remote(r) => {
                let p = AdminSetUserStateParams {
                    subject_id: id.to_owned(),
                    disabled,
                };
                r.tool("nexus_hub_user_set_state", &p).await
            }
        }
    }

    async fn rebac_create(&self, p: RebacTupleParams) -> Result<TupleInfo, CliError> {
        match self {
            Self::Local(c) => Ok(c.rebac_create(&Caller::local(), p).await?),
            Self::Remote(r) => r.tool("nexus_rebac_create", &p).await,
        }
    }

    async fn rebac_delete(&self, p: RebacTupleParams) -> Result<TupleInfo, CliError> {
        match self {
            Self::Local(c) => Ok(c.rebac_delete(&Caller::local(), p).await?),
            Self::Remote(r) => r.tool("nexus_rebac_delete", &p).await,
        }
    }

    async fn rebac_check(&self, p: RebacCheckParams) -> Result<RebacCheckResult, CliError> {
        match self {
            Self::Local(c) => Ok(c.rebac_check(&Caller::local(), p).await?),
            Self::Remote(r) => r.tool("nexus_rebac_check", &p).await,
        }
    }

    async fn rebac_list(&self, p: RebacListParams) -> Result<RebacTuples, CliError> {
        match self {
            Self::Local(c) => Ok(c.rebac_list(&Caller::local(), p).await?),
            Self::Remote(r) => r.tool("nexus_rebac_list_tuples", &p).await,
        }
    }

    async fn rebac_expand(&self, p: RebacExpandParams) -> Result<RebacExpandResult, CliError> {
        match self {
            Self::Local(c) => Ok(c.rebac_expand(&Caller::local(), p).await?),
            Self::Remote(r) => r.tool("nexus_rebac_expand", &p).await,
        }
    }
}

type Bus = std::sync::Arc<rpc_server::auth::InvalidationBus>;

fn admin_remote(c: &AdminCommand) -> &RemoteArgs {
    match c {
        AdminCommand::CreateUser(a) => &a.target,
        AdminCommand::CreateAgentKey(a) => &a.target,
        AdminCommand::ListUsers(a) | AdminCommand::ListAgents(a) => &a.target,
        AdminCommand::DeleteUser(a)
        | AdminCommand::DeleteUserById(a)
        | AdminCommand::DisableUser(a)
        | AdminCommand::EnableUser(a) => &a.target,
        AdminCommand::SetPassword(a) => &a.target,
    }
}

fn rebac_remote(c: &RebacCommand) -> &RemoteArgs {
    match c {
        RebacCommand::Create(a) | RebacCommand::Delete(a) => &a.target,
        RebacCommand::Check(a) => &a.target,
        RebacCommand::ListTuples(a) => &a.target,
        RebacCommand::Expand(a) => &a.target,
    }
}

pub async fn run_admin(a: AdminArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let AdminArgs { local, command } = a;
    let a = match command {
        // Not a control-plane call: the local provider's own path (see `login`).
        AdminCommand::SetPassword(p) => return super::login::set_password(&local, p, out).await,
        command => AdminArgs { local, command },
    };
    let remote = admin_remote(&a.command).clone();
    let changes = remote.remote.is_none()
        && !matches!(
            a.command,
            AdminCommand::ListUsers(_) | AdminCommand::ListAgents(_)
        );
    let local = a.local.clone();
    with_propagation(&a.local, changes, |bus, _| async move {
        // Arguments first: a malformed one is refused before any connection.
        let cmd = validate_admin(a.command)?;
        let target = Target::open(&local, &remote, bus).await?;
        let res = admin(&target, cmd, out).await;
        target.close().await;
        res
    })
    .await
}

fn validate_admin(c: AdminCommand) -> Result<AdminCommand, CliError> {
    match &c {
        AdminCommand::CreateUser(a) => {
            subject_id("subject id", &a.subject_id)?;
            subject_type(&a.subject_type)?;
            expiry(a.expires.as_deref())?;
        }
        AdminCommand::CreateAgentKey(a) => {
            subject_id("agent id", &a.agent_id)?;
            if let Some(o) = &a.owner {
                subject_id("owner", o)?;
            }
            expiry(a.expires.as_deref())?;
        }
        AdminCommand::DeleteUser(a)
        | AdminCommand::DeleteUserById(a)
        | AdminCommand::DisableUser(a)
        | AdminCommand::EnableUser(a) => subject_id("subject id", &a.subject_id)?,
        AdminCommand::ListUsers(_) | AdminCommand::ListAgents(_) | AdminCommand::SetPassword(_) => {
        }
    }
    Ok(c)
}

async fn admin(t: &Target, c: AdminCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match c {
        AdminCommand::CreateUser(a) => {
            let p = AdminCreateUserParams {
                subject_id: a.subject_id,
                name: a.name,
                subject_type: Some(subject_type(&a.subject_type)?),
                tenant_id: a.tenant_id,
                owner: None,
                zones: a.zones,
                expires: a.expires,
                no_key: a.no_key,
            };
            output::user_created(out, &t.create_user(p).await?, a.json)
        }
        AdminCommand::CreateAgentKey(a) => {
            let p = AdminCreateAgentKeyParams {
                agent_id: a.agent_id,
                name: a.name,
                owner: a.owner,
                tenant_id: None,
                zones: a.zones,
                expires: a.expires,
            };
            output::agent_key_created(out, &t.create_agent_key(p).await?, a.json)
        }
        AdminCommand::ListUsers(a) => output::user_list(out, &t.list_users(None).await?, a.json),
        AdminCommand::ListAgents(a) => {
            let agents = t.list_users(Some(SubjectType::Agent)).await?;
            output::agent_list(out, &agents, a.json)
        }
        AdminCommand::DeleteUser(a) | AdminCommand::DeleteUserById(a) => {
            output::user_deleted(out, &t.delete_user(&a.subject_id).await?, a.json)
        }
        AdminCommand::DisableUser(a) => {
            output::user_state(out, &t.set_user_state(&a.subject_id, true).await?, a.json)
        }
        AdminCommand::EnableUser(a) => {
            output::user_state(out, &t.set_user_state(&a.subject_id, false).await?, a.json)
        }
        AdminCommand::SetPassword(_) => Err(CliError::new("set-password is not an admin tool")),
    }
}

pub async fn run_rebac(a: RebacArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let remote = rebac_remote(&a.command).clone();
    let changes = remote.remote.is_none()
        && matches!(a.command, RebacCommand::Create(_) | RebacCommand::Delete(_));
    let local = a.local.clone();
    with_propagation(&a.local, changes, |bus, _| async move {
        validate_rebac(&a.command)?;
        let target = Target::open(&local, &remote, bus).await?;
        let res = rebac(&target, a.command, out).await;
        target.close().await;
        res
    })
    .await
}

fn validate_rebac(c: &RebacCommand) -> Result<(), CliError> {
    match c {
        RebacCommand::Create(a) => {
            let (s, r, o) = checked(&a.tuple, false)?;
            let t = nexus_authz::model::Tuple::new(s, r, o);
            t.validate().map_err(usage)?;
            expiry(a.expires.as_deref())
        }
        RebacCommand::Delete(a) => {
            if a.expires.is_some() {
                return Err(usage("--expires applies to rebac create only"));
            }
            checked(&a.tuple, false).map(drop)
        }
        RebacCommand::Check(a) => checked(&a.tuple, true).map(drop),
        RebacCommand::ListTuples(a) => {
            if let Some(s) = &a.subject {
                subject(s)?;
            }
            if let Some(r) = &a.relation {
                relation(r)?;
            }
            if let Some(o) = &a.object {
                object(o, a.zone.as_deref())?;
            }
            if let Some(z) = &a.zone {
                nexus_authz::model::validate_zone(z).map_err(usage)?;
            }
            Ok(())
        }
        RebacCommand::Expand(a) => {
            let r = relation(&a.relation)?;
            let o = object(&a.object, a.zone.as_deref())?;
            check_relation_on(r, &o).map_err(usage)
        }
    }
}

fn tuple_params(t: TupleRef, expires: Option<String>) -> RebacTupleParams {
    RebacTupleParams {
        subject: t.subject,
        relation: t.relation,
        object: t.object,
        zone: t.zone,
        expires,
    }
}

async fn rebac(t: &Target, c: RebacCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match c {
        RebacCommand::Create(a) => {
            let info = t.rebac_create(tuple_params(a.tuple, a.expires)).await?;
            output::tuple_written(out, "Created", &info, a.json)
        }
        RebacCommand::Delete(a) => {
            let info = t.rebac_delete(tuple_params(a.tuple, None)).await?;
            output::tuple_written(out, "Deleted", &info, a.json)
        }
        RebacCommand::Check(a) => {
            let p = RebacCheckParams {
                subject: a.tuple.subject,
                relation: a.tuple.relation,
                object: a.tuple.object,
                zone: a.tuple.zone,
                explain: a.explain,
            };
            let r = t.rebac_check(p).await?;
            output::check(out, &r, a.explain, a.json)?;
            if r.allowed {
                Ok(())
            } else {
                // The answer is printed; the exit code carries it.
                Err(CliError::silent(1))
            }
        }
        RebacCommand::ListTuples(a) => {
            let heading = a.subject.as_deref().map(|s| match subject(s) {
                Ok(s) => s.to_string(),
                Err(_) => s.to_owned(),
            });
            let p = RebacListParams {
                subject: a.subject,
                object: a.object,
                relation: a.relation,
                zone: a.zone,
            };
            output::tuple_list(out, heading.as_deref(), &t.rebac_list(p).await?, a.json)
        }
        RebacCommand::Expand(a) => {
            let p = RebacExpandParams {
                relation: a.relation,
                object: a.object,
                zone: a.zone,
            };
            output::expand(out, &t.rebac_expand(p).await?, a.json)
        }
    }
}
