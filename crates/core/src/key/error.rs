//! Why a key was refused. Every variant names the field concerned and never holds a secret:
//! values are only echoed for non-secret fields (`host`, enumerations), and then truncated.

use crate::problem::Problem;

/// Why a connector key was refused. `code()` is stable; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the `key` field is empty")]
    Empty,

    #[error("the `key` field is {len} bytes long; a key may be at most {max} bytes")]
    TooLarge { len: usize, max: usize },

    #[error("the `key` field is not base64: {reason}")]
    NotBase64 { reason: String },

    #[error("{}", not_utf8_message(.offset, .utf16))]
    NotUtf8 { offset: usize, utf16: bool },

    #[error("the `key` field does not decode to JSON: {detail}{}", hint_suffix(.hint))]
    NotJson {
        detail: String,
        hint: Option<&'static str>,
    },

    #[error("the `key` field decodes to a JSON {found}; it must be a JSON object such as {{\"host\": ..., \"client_id\": ..., \"client_secret\": ...}}")]
    NotObject { found: &'static str },

    #[error("`{field}` in the key must be {expected}, found {found}")]
    FieldType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },

    #[error("`{field}` in the key is empty")]
    EmptyField { field: &'static str },

    #[error("`client_id` is missing from the key")]
    MissingClientId,

    #[error("the key has neither `refresh_token` nor `client_secret`, so no grant is possible")]
    NoFlow,

    #[error("`{field}` in the key is {value:?}, which is not accepted: {accepted}")]
    BadValue {
        field: &'static str,
        value: String,
        accepted: String,
    },

    #[error("`grant_type` in the key is {grant_type:?} but {reason}")]
    GrantTypeMismatch {
        grant_type: &'static str,
        reason: &'static str,
    },

    #[error("`host` in the key ({host:?}) is not a host name: {reason}")]
    HostInvalid { host: String, reason: String },

    #[error("`{field}` in the key is not a usable URL: {reason}")]
    UrlInvalid { field: &'static str, reason: String },

    #[error("`host` is missing from the key; a salesforceOauth2 key needs it (or an explicit `token_url`)")]
    MissingHost,

    #[error("`tenant` is missing from the key; a dynamicsOauth2 key needs it (or an explicit `token_url`)")]
    MissingTenant,

    #[error("`token_url` is missing from the key; a generic OAuth 2.0 connector has no preset to derive it from")]
    MissingTokenUrl,

    #[error("`host` in the key is {host}, but the client credentials flow (a `client_secret` and no `refresh_token`) does not work against {host}")]
    ClientCredentialsOnLoginHost { host: String },

    #[error("`scope` in the key contains {scope}, which only user-delegated flows are granted; this key uses the client credentials flow")]
    ScopeForbidden { scope: &'static str },

    #[error(
        "`session_timeout_s` is missing from the key; `session: fixed` needs it for this connector"
    )]
    SessionTimeoutRequired,
}

fn not_utf8_message(offset: &usize, utf16: &bool) -> String {
    if *utf16 {
        "the `key` field decodes to UTF-16 text, not UTF-8".to_owned()
    } else {
        format!("the `key` field decodes to bytes that are not UTF-8 text (first bad byte at offset {offset})")
    }
}

fn hint_suffix(hint: &Option<&'static str>) -> String {
    hint.map(|h| format!(" ({h})")).unwrap_or_default()
}

const ENCODE_HOWTO: &str =
    "encode the JSON object with `hookwarden key encode` or `echo -n '<json>' | base64 -w 0`";

impl KeyError {
    /// Stable machine-readable code, the `error` field of the API's answer.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "key_empty",
            Self::TooLarge { .. } => "key_too_large",
            Self::NotBase64 { .. } => "key_not_base64",
            Self::NotUtf8 { .. } => "key_not_utf8",
            Self::NotJson { .. } => "key_not_json",
            Self::NotObject { .. } => "key_not_object",
            Self::FieldType { .. } => "key_field_type",
            Self::EmptyField { .. } => "key_empty_field",
            Self::MissingClientId => "key_missing_client_id",
            Self::NoFlow => "key_no_flow",
            Self::BadValue { .. } => "key_bad_value",
            Self::GrantTypeMismatch { .. } => "key_grant_type_mismatch",
            Self::HostInvalid { .. } => "key_host_invalid",
            Self::UrlInvalid { .. } => "key_url_invalid",
            Self::MissingHost => "key_missing_host",
            Self::MissingTenant => "key_missing_tenant",
            Self::MissingTokenUrl => "key_missing_token_url",
            Self::ClientCredentialsOnLoginHost { .. } => "key_client_credentials_on_login_host",
            Self::ScopeForbidden { .. } => "key_scope_forbidden",
            Self::SessionTimeoutRequired => "key_session_timeout_required",
        }
    }

    /// What the user should do about it.
    pub fn fix(&self) -> String {
        match self {
            Self::Empty => format!("give the key: {ENCODE_HOWTO}"),
            Self::TooLarge { .. } => {
                "a key holds a host, a client id and a secret or refresh token; check that the right value was pasted".to_owned()
            }
            Self::NotBase64 { .. } => ENCODE_HOWTO.to_owned(),
            Self::NotUtf8 { utf16: true, .. } => {
                "encode UTF-8 text: in PowerShell use [Text.Encoding]::UTF8.GetBytes(...), not Encoding::Unicode; or use `hookwarden key encode`".to_owned()
            }
            Self::NotUtf8 { .. } | Self::NotJson { .. } | Self::NotObject { .. } => {
                format!("the decoded key must be a JSON object such as {{\"host\":\"acme.my.salesforce.com\",\"client_id\":\"...\",\"client_secret\":\"...\"}}; {ENCODE_HOWTO}")
            }
            Self::FieldType { field, expected, .. } => {
                format!("write `{field}` as {expected}, e.g. \"{field}\": {}", example_of(expected))
            }
            Self::EmptyField { field } => {
                format!("give `{field}` a value, or leave the field out of the key")
            }
            Self::MissingClientId => {
                "add `client_id`: the consumer key of the connected app (Salesforce: App Manager → your app → Manage Consumer Details)".to_owned()
            }
            Self::NoFlow => {
                "add `refresh_token` for the refresh token flow, or `client_secret` for the client credentials flow".to_owned()
            }
            Self::BadValue {
                field: "tenant",
                accepted,
                ..
            } => format!("set `tenant` to {accepted}"),
            Self::BadValue {
                field: "grant_type",
                accepted,
                ..
            } => format!("set `grant_type` to {accepted}, or leave it out: the flow is inferred from the fields"),
            Self::BadValue {
                field, accepted, ..
            } => format!("set `{field}` to {accepted}, or leave it out for the default"),
            Self::GrantTypeMismatch { grant_type, .. } => match *grant_type {
                "refresh_token" => {
                    "add `refresh_token`, or remove `grant_type` and give `client_secret` for the client credentials flow".to_owned()
                }
                _ => {
                    "for the client credentials flow give `client_secret` and no `refresh_token`; or remove `grant_type` (it is inferred from the fields)".to_owned()
                }
            },
            Self::HostInvalid { .. } => {
                "give only the host name, without https:// or a path: `login.salesforce.com`, `test.salesforce.com` or `<name>.my.salesforce.com`; a custom token endpoint goes in `token_url`".to_owned()
            }
            Self::UrlInvalid { field, .. } => {
                format!("give `{field}` as an absolute URL such as https://idp.example.com/oauth2/token")
            }
            Self::MissingHost => {
                "add `host`: `login.salesforce.com` (production), `test.salesforce.com` (sandbox) or your My Domain `<name>.my.salesforce.com`".to_owned()
            }
            Self::MissingTenant => {
                "add `tenant`: your Microsoft Entra tenant id (a GUID) or domain, e.g. contoso.onmicrosoft.com".to_owned()
            }
            Self::MissingTokenUrl => {
                "add `token_url`: the provider's OAuth 2.0 token endpoint, e.g. https://idp.example.com/oauth2/token".to_owned()
            }
            Self::ClientCredentialsOnLoginHost { .. } => {
                "use your org's My Domain as `host`, `<name>.my.salesforce.com` (Setup → My Domain); Salesforce only grants client credentials there".to_owned()
            }
            Self::ScopeForbidden { .. } => {
                "remove refresh_token and offline_access from `scope` (Salesforce answers \"no valid scopes defined\"); `api` is enough, and the connected app must grant it".to_owned()
            }
            Self::SessionTimeoutRequired => {
                "add `session_timeout_s` (the token lifetime in seconds, e.g. 3600), or use `session: auto`".to_owned()
            }
        }
    }
}

fn example_of(expected: &str) -> &'static str {
    if expected.contains("integer") {
        "3600"
    } else {
        "\"...\""
    }
}

impl Problem for KeyError {
    fn code(&self) -> &'static str {
        self.code()
    }
    fn message(&self) -> String {
        self.to_string()
    }
    fn fix(&self) -> String {
        self.fix()
    }
}
