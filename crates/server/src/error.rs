//! One error type for the API: every non-2xx answer is `{"error","message","fix"}`, including
//! the framework's own rejections (malformed JSON, wrong content type, body too large).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookwarden_core::{Problem, Scope};
use hookwarden_store::StoreError;
use serde::{de::DeserializeOwned, Serialize};
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code, e.g. `key_not_base64`.
    pub error: String,
    /// What is wrong, naming the field when there is one.
    pub message: String,
    /// What to do about it.
    pub fix: String,
    /// Only with `insufficient_scope`: the scope the endpoint needs (`ingest`, `read` or
    /// `admin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_scope: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub fix: String,
    /// Seconds, sent as `Retry-After` (a provider asked us to wait).
    pub retry_after: Option<u64>,
    /// The scope a `403 insufficient_scope` names.
    pub required_scope: Option<Scope>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            fix: fix.into(),
            retry_after: None,
            required_scope: None,
        }
    }

    pub fn bad_request(
        code: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message, fix)
    }

    /// A `Problem` from the domain, as a 400.
    pub fn from_problem(problem: &impl Problem) -> Self {
        Self::bad_request(problem.code(), problem.message(), problem.fix())
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown API key",
            "send `Authorization: Basic <api_key>` with a key from `hookwarden accounts create NAME`",
        )
    }

    pub fn not_found(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what, fix)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.code,
                message: self.message,
                fix: self.fix,
                required_scope: self.required_scope.map(|s| s.as_str().to_owned()),
            }),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        // No `WWW-Authenticate: Basic` on a 401, ever: a browser would prompt, then cache the
        // key and send it with every request to this origin, cross-site form posts included.
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        if let StoreError::Conflict(message) = &err {
            return Self::new(
                StatusCode::CONFLICT,
                "concurrent_change",
                message.clone(),
                "read the connector again (GET) and repeat the change if it still applies",
            );
        }
        // The detail goes to the log; the client learns that it is ours, not theirs.
        tracing::error!(error = %err, "storage failure");
        if err.is_disk_full() {
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_full",
                "the server's database is full: nothing more can be stored (nothing stored is lost)",
                "free space on the database's volume (or raise its quota); lowering history_retention_days keeps less history; then retry",
            );
        }
        let (code, fix) = match &err {
            StoreError::Decrypt(_) => (
                "secret_unreadable",
                "the server's master key does not match the one the data was written with; \
                 restore HOOKWARDEN_MASTER_KEY or the key file beside the database",
            ),
            _ => (
                "storage_unavailable",
                "retry shortly; if it persists, check the server's logs and its database",
            ),
        };
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            "the server could not read or write its database",
            fix,
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON",
                "send the header `Content-Type: application/json`",
            ),
            JsonRejection::JsonSyntaxError(e) => Self::bad_request(
                "malformed_json",
                format!("the body is not valid JSON: {}", e.body_text()),
                "check the JSON syntax (quotes, commas, braces)",
            ),
            JsonRejection::JsonDataError(e) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                e.body_text().replace(
                    "Failed to deserialize the JSON body into the target type: ",
                    "",
                ),
                "see GET /api/openapi.json for the fields this endpoint takes",
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is larger than the server accepts",
                    "send a smaller body, or raise max_body_bytes in the server's configuration",
                )
            }
            other => Self::new(
                other.status(),
                "unreadable_body",
                other.body_text(),
                "send a complete JSON body",
            ),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(
            "invalid_path",
            rejection.body_text(),
            "check the URL against GET /api/openapi.json",
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(
            "invalid_query",
            rejection.body_text(),
            "check the query parameters against GET /api/openapi.json",
        )
    }
}

/// `Json<T>` whose rejections are `ApiError`s.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = <Json<T> as FromRequest<S>>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// An optional JSON body: none without a `Content-Type` (a bare POST), else read as
/// `ApiJson`.
impl<S, T> OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let value = <Json<T> as OptionalFromRequest<S>>::from_request(req, state).await?;
        Ok(value.map(|Json(v)| Self(v)))
    }
}

/// `Path<T>` whose rejections are `ApiError`s.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_named_and_other_storage_failures_are_not() {
        let full = StoreError::Db(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::StorageFull,
        )));
        let e = ApiError::from(full);
        assert_eq!(
            (e.status, e.code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "storage_full")
        );
        assert!(e.fix.contains("free space"), "{}", e.fix);
        let other = ApiError::from(StoreError::Corrupt("x".into()));
        assert_eq!(other.code, "storage_unavailable");
    }
}
