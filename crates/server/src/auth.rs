//! Who may call a route. `Authorization: Basic <api_key>` (OneSpan's convention: the key as
//! it is; clients that base64-encode `key:` or `:key`, as HTTP Basic libraries do, are
//! accepted too) names the key; the route names the scope it needs with `needs`, the one
//! declaration both the check and the OpenAPI document's `security` come from.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Extension;
use base64::Engine;
use hookwarden_core::{Scope, Scopes};
use hookwarden_store::Account;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa_axum::router::UtoipaMethodRouter;

use crate::error::ApiError;
use crate::state::AppState;

/// The OpenAPI security scheme every `/api/**` operation names, with the scope it needs as the
/// requirement's one role.
pub const SECURITY_SCHEME: &str = "api_key";

/// The account the request's API key belongs to, and that key's id (see `api_key_id`). Only a
/// route declared with `needs` yields one, and only to a key with the scope it declared.
pub struct Authed(pub Account, pub String);

/// The scope a route needs, as `needs` put it on each of its requests.
#[derive(Debug, Clone, Copy)]
struct RequiredScope(Scope);

/// Declare the scope the routes of `routes!(...)` need: requests without a key that has it are
/// refused (`Authed`), and each operation's OpenAPI `security` names it.
pub fn needs(
    scope: Scope,
    (schemas, mut paths, router): UtoipaMethodRouter<AppState>,
) -> UtoipaMethodRouter<AppState> {
    for item in paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            operation.security = Some(vec![SecurityRequirement::new(
                SECURITY_SCHEME,
                [scope.as_str()],
            )]);
            // What every declared route can answer, whether its own list says so or not.
            let answers = &mut operation.responses.responses;
            for (status, what) in [
                ("401", "no API key, or an unknown one"),
                (
                    "403",
                    "the key lacks the scope this operation needs (insufficient_scope)",
                ),
                (
                    "503",
                    "timeout: the request took longer than api_timeout_s; overloaded: \
                     api_max_concurrency requests were already being served",
                ),
            ] {
                answers
                    .entry(status.to_owned())
                    .or_insert_with(|| error_response(what));
            }
            answers
                .entry("429".to_owned())
                .or_insert_with(rate_limited_response);
        }
    }
    (
        schemas,
        paths,
        router.route_layer(Extension(RequiredScope(scope))),
    )
}

/// An `ErrorBody` answer, for the document.
fn error_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// `429 rate_limited` with its `Retry-After`, for the document.
fn rate_limited_response() -> RefOr<Response> {
    let response = ResponseBuilder::new()
        .description(
            "rate_limited: this key sent more than api_rate_per_s requests a second, or this \
             client address had more than auth_failures_per_minute failed authentications",
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                )
                .description(Some("seconds to wait before trying again"))
                .build(),
        )
        .build();
    response.into()
}

/// The security scheme `needs` refers to, in the document's components.
pub fn add_security_scheme(doc: &mut OpenApi) {
    let mut basic = Http::new(HttpAuthScheme::Basic);
    basic.description = Some(format!(
        "`Authorization: Basic <api_key>`, the key as it is (base64 of `key:` works too). \
         Each operation names the scope it needs: {}; a key with `admin` may call every one. \
         A key without it is refused with `403 insufficient_scope`.",
        Scope::ALL.map(|s| format!("`{s}`")).join(", ")
    ));
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(SECURITY_SCHEME, SecurityScheme::Http(basic));
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // No credential at all is no guess: a 401 that counts against nothing.
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(ApiError::unauthorized)?;
        let peer: Option<IpAddr> = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        state.limits.check_peer(peer)?;
        let credential = header
            .to_str()
            .ok()
            .and_then(|h| h.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .map(|(_, credential)| credential.trim());
        let Some(credential) = credential else {
            return Err(failed(state, peer));
        };
        for candidate in candidates(credential) {
            // A key that was just not found is not looked up again for a while.
            if state.limits.recently_failed(&candidate) {
                continue;
            }
            let Some(holder) = state.api_key_holder(&candidate).await? else {
                state.limits.remember_failed(&candidate);
                continue;
            };
            state.limits.take_key_request(&holder.key_id)?;
            // A route that forgot to declare a scope lets no key through.
            let Some(RequiredScope(required)) = parts.extensions.get::<RequiredScope>() else {
                return Err(undeclared_scope());
            };
            if !holder.scopes.allow(*required) {
                return Err(insufficient_scope(*required, holder.scopes));
            }
            return Ok(Authed(holder.account, holder.key_id));
        }
        Err(failed(state, peer))
    }
}

/// A failed authentication from `peer`: 401, or 429 once the address has had too many.
fn failed(state: &AppState, peer: Option<IpAddr>) -> ApiError {
    match state.limits.authentication_failed(peer) {
        Ok(()) => ApiError::unauthorized(),
        Err(too_many) => too_many,
    }
}

pub(crate) fn insufficient_scope(required: Scope, held: Scopes) -> ApiError {
    let also = if required == Scope::Admin {
        ""
    } else {
        " (or admin)"
    };
    let mut error = ApiError::new(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        format!(
            "this endpoint needs a key with the {required} scope; this key has {}",
            match held.names().join(", ") {
                none if none.is_empty() => "none".to_owned(),
                names => names,
            }
        ),
        format!(
            "use a key with the {required}{also} scope: an admin key makes one with POST /api/keys \
             {{\"scopes\": [\"{required}\"]}} (hookwarden keys create --scope {required}), the \
             server's operator with hookwarden accounts new-key ACCOUNT --scope {required}"
        ),
    );
    error.required_scope = Some(required);
    error
}

fn undeclared_scope() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "scope_undeclared",
        "this endpoint declares no scope, so no key may call it",
        "this is a fault in hookwarden: report it with the method and path",
    )
}

/// The key as sent, then the user or password half of a base64 `user:password` pair.
fn candidates(credential: &str) -> Vec<String> {
    let mut out = vec![credential.to_owned()];
    if credential.is_empty() || credential.len() > 512 {
        return out;
    }
    if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credential) {
        if let Ok(text) = String::from_utf8(decoded) {
            if let Some((user, password)) = text.split_once(':') {
                out.extend(
                    [user, password]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_pairs_offer_both_halves() {
        let pair = base64::engine::general_purpose::STANDARD.encode("hwk_abc:");
        assert_eq!(candidates(&pair), vec![pair.clone(), "hwk_abc".to_owned()]);
        assert_eq!(candidates("hwk_abc"), vec!["hwk_abc".to_owned()]);
    }
}
