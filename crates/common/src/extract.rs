//! Extractors whose rejections are our JSON errors instead of axum's plain text.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::Error;

/// A JSON object as the request body. Malformed JSON is 400; a body that is
/// not an object (serde would read an array into a struct), a missing field,
/// a wrong type or a string holding the NUL character (PostgreSQL cannot
/// store it in text) 422; a body over `BODY_LIMIT_BYTES` 413; a content type
/// other than JSON 415.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Error::Rejected {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: "expected a JSON body with `Content-Type: application/json`".to_owned(),
            });
        }
        let bytes = match req.extensions().get::<BodyLimit>().copied() {
            Some(BodyLimit(limit)) => read_limited(req.into_body(), limit).await?,
            None => Bytes::from_request(req, state)
                .await
                .map_err(|rejection| Error::Rejected {
                    status: rejection.status(),
                    message: rejection.body_text(),
                })?,
        };
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            // Not an object: well-formed JSON of another kind is 422, anything else 400.
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                    Ok(_) => Error::Invalid("the body must be a JSON object".to_owned()),
                    Err(e) => Error::Rejected {
                        status: StatusCode::BAD_REQUEST,
                        message: format!("the body is not valid JSON: {e}"),
                    },
                },
            );
        }
        if holds_nul(&bytes) {
            return Err(Error::Invalid(
                "text must not contain the NUL character (\\u0000)".to_owned(),
            ));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes).map_err(json_rejection)?;
        Ok(JsonBody(value))
    }
}

/// The request body limit (`BODY_LIMIT_BYTES`), set on every request by the
/// application so that [`JsonBody`] can read the body itself.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// How much of a body over the limit is still read (and thrown away) so that
/// a client sending all of it before reading the answer gets its 413 instead
/// of a broken pipe; beyond this, or after [`DRAIN_TIME`], the connection is
/// closed under it.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(5);

fn too_large() -> Error {
    Error::Rejected {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: "request body is too large".to_owned(),
    }
}

/// The body, up to `limit` bytes; over it, the rest is drained (bounded) and
/// the answer is 413.
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, Error> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Rejected {
            status: StatusCode::BAD_REQUEST,
            message: format!("the body could not be read: {e}"),
        })?;
        if buf.len() + chunk.len() > limit {
            let (mut seen, started) = (buf.len() + chunk.len(), Instant::now());
            while seen < DRAIN_BYTES && started.elapsed() < DRAIN_TIME {
                match tokio::time::timeout(DRAIN_TIME, stream.next()).await {
                    Ok(Some(Ok(more))) => seen += more.len(),
                    _ => break,
                }
            }
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Whether a JSON text holds a string (or key) with the NUL character. The
/// character can only arrive escaped, so texts without `\u0000` are not parsed twice.
fn holds_nul(bytes: &[u8]) -> bool {
    fn any_nul(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(any_nul),
            serde_json::Value::Object(map) => {
                map.iter().any(|(k, v)| k.contains('\0') || any_nul(v))
            }
            _ => false,
        }
    }
    let escaped = bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"));
    escaped
        && serde_json::from_slice::<serde_json::Value>(bytes)
            .as_ref()
            .is_ok_and(any_nul)
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn json_rejection(rejection: JsonRejection) -> Error {
    let status = match &rejection {
        JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
        JsonRejection::JsonSyntaxError(_) => StatusCode::BAD_REQUEST,
        _ => rejection.status(),
    };
    Error::Rejected {
        status,
        message: rejection.body_text(),
    }
}

/// A typed path parameter; one that does not parse is 400 with the reason.
#[derive(Debug, Clone, Copy)]
pub struct PathParam<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParam<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if has_escaped_nul(parts.uri.path()) {
            return Err(nul_in_url());
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathParam(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> Error {
    Error::Rejected {
        status: rejection.status(),
        message: rejection.body_text(),
    }
}

/// A typed query string; one that does not parse is 400 with the reason.
#[derive(Debug, Clone, Copy)]
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if has_escaped_nul(parts.uri.query().unwrap_or_default()) {
            return Err(nul_in_url());
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(QueryParams(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> Error {
    Error::Rejected {
        status: StatusCode::BAD_REQUEST,
        message: rejection.body_text(),
    }
}

/// Whether a URL part holds `%00`, the NUL character once decoded.
fn has_escaped_nul(part: &str) -> bool {
    part.as_bytes()
        .windows(3)
        .any(|w| w.eq_ignore_ascii_case(b"%00"))
}

fn nul_in_url() -> Error {
    Error::Rejected {
        status: StatusCode::BAD_REQUEST,
        message: "the URL must not contain the NUL character (%00)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_is_found_in_any_string_or_key_but_not_in_an_escaped_backslash() {
        assert!(holds_nul(br#"{"name": "a\u0000b", "stock": 1}"#));
        assert!(holds_nul(br#"{"tags": [{"x\u0000": 1}]}"#));
        assert!(
            !holds_nul(br#"{"name": "a\\u0000b"}"#),
            "a backslash, then u0000"
        );
        assert!(!holds_nul(br#"{"name": "plain"}"#));
        assert!(has_escaped_nul("q=a%00b") && has_escaped_nul("/entries/%00"));
        assert!(!has_escaped_nul("q=a%2500"));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_read_to_its_end_before_the_413() {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            (0..64).map(|_| Ok(Bytes::from(vec![b'x'; 1024]))).collect();
        let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = read.clone();
        let stream = futures_util::stream::iter(chunks).inspect(move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        let err = read_limited(Body::from_stream(stream), 4096)
            .await
            .expect_err("over the limit");
        assert!(
            matches!(err, Error::Rejected { status, .. } if status == StatusCode::PAYLOAD_TOO_LARGE)
        );
        assert_eq!(
            read.load(std::sync::atomic::Ordering::Relaxed),
            64,
            "every chunk was read"
        );
        let small = read_limited(Body::from("{}"), 4096)
            .await
            .expect("under the limit");
        assert_eq!(&small[..], b"{}");
    }
}
