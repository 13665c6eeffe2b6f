//! Request extractors that turn every malformed input into a §2 error naming the field:
//! JSON bodies (content type, size, syntax, unknown fields, wrong types) and query strings.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::{ApiError, ApiResult};

/// Upper bound on request bodies; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request body, parsed with field paths in errors.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).is_some_and(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        });
        if !is_json {
            return Err(ApiError::unsupported_media("send the body as JSON with `Content-Type: application/json`"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(bytes_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn bytes_rejection(e: BytesRejection) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!("the request body is larger than the {} KiB limit; send less", MAX_BODY_BYTES / 1024))
    } else {
        ApiError::bad_request(format!("could not read the request body: {}", e.body_text()))
    }
}

/// Parses JSON, reporting syntax errors with line/column and data errors with the field path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty; send a JSON object"));
    }
    // Every body is an object; refuse arrays and scalars up front (serde would otherwise read
    // an array positionally as a struct and report a confusing field error).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("the body is not valid JSON for this endpoint: send a JSON object (`{…}`)"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            use serde_json::error::Category;
            match inner.classify() {
                Category::Syntax | Category::Eof | Category::Io => Err(ApiError::bad_request(format!(
                    "the body is not valid JSON (line {}, column {}): {inner}",
                    inner.line(),
                    inner.column()
                ))),
                Category::Data => {
                    let msg = strip_position(&inner.to_string());
                    // The path already ends with the offending field, unknown ones included.
                    let param = if path == "." { unknown_field(&msg).unwrap_or_default() } else { path };
                    let message = if param.is_empty() { msg } else { format!("{param}: {msg}") };
                    let e = ApiError::bad_request(message);
                    Err(if param.is_empty() { e } else { e.with_param(param) })
                }
            }
        }
    }
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// serde reports unknown fields as "unknown field `x`, expected …" and absent required ones as
/// "missing field `x`"; pull out `x`.
fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `").or_else(|| msg.strip_prefix("missing field `"))?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// A query string, parsed with a §2 error on failure.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(query_rejection(e)),
        }
    }
}

fn query_rejection(e: QueryRejection) -> ApiError {
    let text = e.body_text();
    let text = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text).to_owned();
    let param = text.split_once(':').map(|(p, _)| p.trim().to_owned()).filter(|p| !p.contains(' '));
    let param = param.or_else(|| unknown_field(&text));
    let e = ApiError::bad_request(format!("bad query string: {text}"));
    match param {
        Some(p) => e.with_param(p),
        None => e,
    }
}

/// For `#[serde(deserialize_with = "present")]` on PATCH fields: a field sent as `null` is
/// `Some(None)`, an absent one (with `#[serde(default)]`) `None`.
pub(crate) fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A PATCH field that may be omitted but not nulled.
pub(crate) fn not_null<T>(v: Option<Option<T>>, param: &str) -> ApiResult<Option<T>> {
    match v {
        Some(None) => Err(ApiError::invalid(param, format!("`{param}` cannot be null; omit it to keep the current value"))),
        Some(Some(x)) => Ok(Some(x)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"name": 3}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("name"));
        let e = parse_json::<Body>(br#"{"name": "a", "nme": 1}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("nme"));
        let e = parse_json::<Body>(br#"{"name": "a", "inner": {"n": -1}}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("inner.n"));
        let e = parse_json::<Body>(br#"{"name": "a", "inner": {"x": 1}}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("inner.x"));
        let e = parse_json::<Body>(br#"{"inner": null}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("name"), "a missing field is named");
        let e = parse_json::<Body>(br#"{"name": "#).unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = parse_json::<Body>(b"").unwrap_err();
        assert!(e.message.contains("empty"));
    }
}
