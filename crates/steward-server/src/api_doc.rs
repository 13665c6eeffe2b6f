//! The OpenAPI document: its header (title, bearer security) and the error responses every
//! operation shares, added once here instead of by hand on each route.
//!
//! Which shared errors an operation can answer follows from what it takes: a credential (401,
//! 403), a path id (400 for a malformed or wrong-kind id, 404), query parameters (400), a JSON
//! body (400, 413, 415). Whatever a route documents itself is kept; only missing statuses are
//! added. The schemathesis run in `crates/steward-cli/tests/schemathesis.rs` checks that the
//! document and the answers agree.

use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, HttpMethod, RefOr, Response, schema::Ref};

#[derive(OpenApi)]
#[openapi(
    info(title = "Steward API", description = "Self-hostable platform for running LLM agents. Errors follow `{\"error\": {\"type\", \"message\", \"param\"}}`; lists take `limit` (1–100, default 20) and `cursor`; mutating POSTs accept `Idempotency-Key`."),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (`stw_…`) or a session token from email login"))
                    .build(),
            ),
        );
    }
}

/// Adds the shared §2 error responses to every operation of the finished document (the
/// routes are only known after `api_router` collected them, so this runs on its output).
pub(crate) struct SharedErrors;

const UNAUTHENTICATED: &str = "No credential, or one that is not valid (missing, malformed, revoked or expired)";
const FORBIDDEN: &str = "The credential's role or kind does not allow this (the message names the role needed)";
const BAD_ID: &str = "A malformed parameter, e.g. an id of the wrong kind (`agt_…` where `sbx_…` is expected)";
const BAD_QUERY: &str = "A malformed or unknown query parameter (the message and `param` name it)";
const BAD_BODY: &str = "The body is not valid JSON for this operation (the message and `param` name the field)";
const NOT_FOUND: &str = "Not found, or not visible to this caller (the same answer either way)";
const TOO_LARGE: &str = "The body is larger than 1 MiB";
const NOT_JSON: &str = "The body is not sent as `Content-Type: application/json`";

impl utoipa::Modify for SharedErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for method in [HttpMethod::Get, HttpMethod::Post, HttpMethod::Put, HttpMethod::Patch, HttpMethod::Delete] {
                if let Some(op) = operation_mut(item, method) {
                    add_shared_errors(op);
                }
            }
        }
    }
}

fn operation_mut(item: &mut utoipa::openapi::PathItem, method: HttpMethod) -> Option<&mut Operation> {
    match method {
        HttpMethod::Get => item.get.as_mut(),
        HttpMethod::Post => item.post.as_mut(),
        HttpMethod::Put => item.put.as_mut(),
        HttpMethod::Patch => item.patch.as_mut(),
        HttpMethod::Delete => item.delete.as_mut(),
        _ => None,
    }
}

fn add_shared_errors(op: &mut Operation) {
    let public = op.security.as_ref().is_some_and(|s| s.iter().any(|r| *r == SecurityRequirement::default()));
    let takes = |place: ParameterIn| op.parameters.iter().flatten().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place));
    let (path, query, body) = (takes(ParameterIn::Path), takes(ParameterIn::Query), op.request_body.is_some());
    let mut add = |status: &str, description: &str| {
        op.responses.responses.entry(status.to_owned()).or_insert_with(|| RefOr::T(error_response(description)));
    };
    if !public {
        add("401", UNAUTHENTICATED);
        add("403", FORBIDDEN);
    }
    if path {
        add("400", BAD_ID);
        add("404", NOT_FOUND);
    }
    if query {
        add("400", BAD_QUERY);
    }
    if body {
        add("400", BAD_BODY);
        add("413", TOO_LARGE);
        add("415", NOT_JSON);
    }
}

fn error_response(description: &str) -> Response {
    let mut r = Response::new(description);
    r.content.insert("application/json".to_owned(), RefOr::T(Content::new(Some(Ref::from_schema_name("ErrorBody")))));
    r
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::security::SecurityRequirement;

    /// Every operation of the served document documents 401/403 unless it is public and the
    /// refusals of a JSON body when it takes one, and declares
    /// its query parameters as query parameters (a `IntoParams` struct without
    /// `parameter_in = Query` comes out as required path parameters).
    #[test]
    fn shared_errors_and_parameter_places() {
        let doc = crate::openapi();
        let mut public = Vec::new();
        for (path, item) in &doc.paths.paths {
            for op in [&item.get, &item.post, &item.put, &item.patch, &item.delete].into_iter().flatten() {
                let has = |status: &str| op.responses.responses.contains_key(status);
                let is_public = op.security.as_ref().is_some_and(|s| s.iter().any(|r| *r == SecurityRequirement::default()));
                if is_public {
                    public.push(path.as_str());
                } else {
                    assert!(has("401") && has("403"), "{path}: an authenticated operation must document 401 and 403");
                }
                if op.request_body.is_some() {
                    assert!(has("400") && has("413") && has("415"), "{path}: a JSON body can be refused with 400, 413 and 415");
                }
                for p in op.parameters.iter().flatten() {
                    let utoipa::openapi::RefOr::T(p) = p else { continue };
                    if p.parameter_in == ParameterIn::Path {
                        assert!(path.contains(&format!("{{{}}}", p.name)), "{path}: `{}` is declared in the path but is not in it", p.name);
                    }
                }
            }
        }
        public.sort_unstable();
        public.dedup();
        assert_eq!(
            public,
            [
                "/health",
                "/v1/auth/email/start",
                "/v1/auth/email/verify",
                "/v1/channels/slack/{sandbox_id}/events",
                "/v1/channels/telegram/{sandbox_id}/webhook",
                "/v1/integrations/callback",
                "/v1/openapi.json",
                "/v1/webhooks/triggers/{trigger_id}"
            ]
        );
    }
}
