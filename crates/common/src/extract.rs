//! Extractors whose rejections are our JSON errors instead of axum's plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::Error;

/// A JSON request body. Malformed JSON is 400, a missing field or a wrong type
/// 422, a body over `BODY_LIMIT_BYTES` 413, a wrong content type 415.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> Error {
    let (status, message) = match &rejection {
        JsonRejection::JsonDataError(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, rejection.body_text())
        }
        JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, rejection.body_text()),
        JsonRejection::MissingJsonContentType(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected a JSON body with `Content-Type: application/json`".to_owned(),
        ),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is too large".to_owned(),
        ),
        _ => (rejection.status(), rejection.body_text()),
    };
    Error::Rejected { status, message }
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
