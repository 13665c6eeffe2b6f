//! Prometheus metrics (`GET /metrics`): request counts and latencies per route, and refused
//! webhook deliveries by reason (`steward_webhook_refusals_total{reason}`: unauthenticated
//! deliveries change nothing in the store, so this is where they show). The registry
//! is a value in `AppState`, not a global, so several servers can live in one test process.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// Only the reason: a fixed set (`webhook::Refusal`), never the trigger id.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: &'static str,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    webhook_refusals: Family<RefusalLabels, Counter>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("steward");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16)));
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route", latency.clone());
        let webhook_refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "webhook_refusals",
            "Webhook deliveries refused before they were authenticated, by reason",
            webhook_refusals.clone(),
        );
        Arc::new(Self { registry, requests, latency, webhook_refusals })
    }

    /// Counts a webhook delivery refused for `reason`.
    pub fn webhook_refused(&self, reason: steward_core::webhook::Refusal) {
        self.webhook_refusals.get_or_create(&RefusalLabels { reason: reason.as_str() }).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Middleware recording one request.
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = state.routes.at(req.uri().path()).map(|m| m.value.clone()).unwrap_or_else(|_| "unmatched".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    let m = &state.metrics;
    m.requests.get_or_create(&RequestLabels { method, route: route.clone(), status: res.status().as_u16() }).inc();
    m.latency.get_or_create(&RouteLabels { route }).observe(start.elapsed().as_secs_f64());
    res
}
