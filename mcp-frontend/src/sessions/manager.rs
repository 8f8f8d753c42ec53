//! Sessions rebuilt on any replica, with rmcp's own restore path.
//!
//! rmcp 3.11's `StreamableHttpService` already knows how to rebuild a session it does not
//! hold: given a `SessionStore`, a request whose session id it does not know makes it
//! `load` the client's `initialize` parameters, ask the session manager to
//! `restore_session` under that same id, and replay `initialize` +
//! `notifications/initialized` to a fresh handler before serving the request (concurrent
//! requests for one id wait for a single restore). The smallest design on top of it:
//!
//! - [`SealedStore`] is that store, with nothing stored: `load` opens the sealed id itself
//!   (`None` for anything that does not open, which rmcp answers 404); `store` has nothing
//!   to do (the state is in the id); `delete` (a DELETE) revokes the id on this replica.
//! - [`SealedSessions`] wraps rmcp's `LocalSessionManager` and delegates everything but
//!   `create_session`: the id of a new session must carry the client's `initialize`
//!   parameters, which rmcp does not pass to `create_session`. The `/mcp` service seals the
//!   id from the request body before handing the request to rmcp and lends it through a
//!   task-local ([`opening`]); `create_session` creates the local session under it with
//!   the inner manager's `restore_session` (which takes the id to use).
//!
//! Who may use an id (its key id), and the per-replica caps on sessions, are judged by the
//! limits layer before rmcp sees the request.

use super::Sealer;
use futures_util::Stream;
use rmcp::model::{ClientJsonRpcMessage, InitializeRequestParams, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, ServerSseMessage, SessionId, SessionManager, SessionState, SessionStore,
    SessionStoreError,
};
use std::future::Future;
use std::io;
use std::sync::Arc;

tokio::task_local! {
    /// The sealed id of the session the `initialize` being served opens.
    static OPENING: SessionId;
}

/// Runs `f` (rmcp serving an `initialize`) with `id` as the id of the session it opens.
pub(crate) async fn opening<F: Future>(id: String, f: F) -> F::Output {
    OPENING.scope(SessionId::from(id), f).await
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// rmcp's session manager `M`, its new sessions under sealed ids.
#[derive(Debug)]
pub(crate) struct SealedSessions<M> {
    inner: Arc<M>,
}

impl<M> SealedSessions<M> {
    pub fn new(inner: Arc<M>) -> Self {
        Self { inner }
    }
}

impl<M: SessionManager> SessionManager for SealedSessions<M> {
    type Error = io::Error;
    type Transport = M::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), io::Error> {
        // Only an `initialize` the /mcp service sealed an id for gets here; anything else
        // fails closed (rmcp answers 500 and opens nothing).
        let id = OPENING
            .try_with(Clone::clone)
            .map_err(|_| io::Error::other("initialize without a sealed session id"))?;
        match self
            .inner
            .restore_session(id.clone())
            .await
            .map_err(other)?
        {
            RestoreOutcome::Restored(t) => Ok((id, t)),
            _ => Err(io::Error::other(
                "a new sealed session id is already in use",
            )),
        }
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, io::Error> {
        self.inner
            .initialize_session(id, message)
            .await
            .map_err(other)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, io::Error> {
        self.inner.has_session(id).await.map_err(other)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), io::Error> {
        self.inner.close_session(id).await.map_err(other)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, io::Error> {
        self.inner.create_stream(id, message).await.map_err(other)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), io::Error> {
        self.inner.accept_message(id, message).await.map_err(other)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, io::Error> {
        self.inner.create_standalone_stream(id).await.map_err(other)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, io::Error> {
        self.inner.resume(id, last_event_id).await.map_err(other)
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, io::Error> {
        self.inner.restore_session(id).await.map_err(other)
    }

    fn event_store(
        &self,
    ) -> Option<Arc<dyn rmcp::transport::streamable_http_server::session::EventStore>> {
        self.inner.event_store()
    }
}

/// rmcp's session store, backed by the sealed ids themselves.
#[derive(Debug)]
pub(crate) struct SealedStore {
    sealer: Arc<Sealer>,
}

impl SealedStore {
    pub fn new(sealer: Arc<Sealer>) -> Self {
        Self { sealer }
    }
}

#[async_trait::async_trait]
impl SessionStore for SealedStore {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        Ok(self
            .sealer
            .open(session_id)
            .and_then(|o| serde_json::from_value::<InitializeRequestParams>(o.init).ok())
            .map(SessionState::new))
    }

    async fn store(&self, _: &str, _: &SessionState) -> Result<(), SessionStoreError> {
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.sealer.revoke(session_id);
        Ok(())
    }
}
