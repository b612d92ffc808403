//! hookwarden's token engine: grants (refresh_token, client_credentials, authorization_code +
//! PKCE, the custom refresh hook), the token manager (cache, single flight across nodes,
//! rotation, session management, backoff), revocation, introspection and re-authentication.
//! Every call to a provider lands in the connector's history, with a diagnosis when it failed.

mod error;
mod grant;
pub mod guard;
mod http;
mod manager;
mod redact;

pub use error::{Remedy, TokenError};
pub use hookwarden_core::diagnosis::{Diagnosis, FailureClass};
pub use manager::{
    keep_alive_due, refresh_token_last_used, AccessToken, KeepAlive, Refusal, Resumed,
    RevokeOutcome, TokenManager, TokenOptions, TokenStatus,
};
