//! Counts and times every `/mcp` request by MCP method, tool and status. The bearer layer
//! fills in the method and tool it peeked from the body; labels stay in closed sets.

use crate::app::AppState;
use crate::metrics::{method_label, status_label};
use crate::tools::catalogue::tool_label;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the request turned out to be, filled in by inner layers.
#[derive(Clone, Default, Debug)]
pub struct Labels(Arc<Mutex<(String, String)>>);

impl Labels {
    pub fn set(&self, method: &str, tool: Option<&str>) {
        let mut l = self.0.lock().unwrap_or_else(|e| e.into_inner());
        l.0 = method.to_owned();
        l.1 = tool.unwrap_or("").to_owned();
    }

    fn get(&self) -> (&'static str, &'static str) {
        let l = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let tool = if l.1.is_empty() { "" } else { tool_label(&l.1) };
        (method_label(&l.0), tool)
    }
}

pub async fn track(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let labels = Labels::default();
    labels.set(req.method().as_str(), None);
    req.extensions_mut().insert(labels.clone());
    let resp = next.run(req).await;
    let (method, tool) = labels.get();
    let status = status_label(resp.status().as_u16());
    st.metrics
        .requests
        .with_label_values(&[method, tool, status])
        .inc();
    st.metrics
        .latency
        .with_label_values(&[method])
        .observe(started.elapsed().as_secs_f64());
    if !resp.status().is_success() {
        st.metrics
            .errors
            .with_label_values(&[method, tool, status])
            .inc();
    }
    resp
}
