//! The deliveries pages: the account's deliveries, newest first, filtered by status, connector,
//! package and time and paged 50 at a time; one delivery with every attempt (what each answer
//! meant and what to do about it), and for an admin session Retry. Everything goes through the
//! API's own handlers, so a page shows what `GET /api/deliveries` answers, and refuses what it
//! refuses with the same message.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{NaiveDate, NaiveDateTime};
use hookwarden_store::DEFAULT_CALLBACK_NAME;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{delivery_badge, encode, page, time_text, Nav};
use super::problem;
use super::session::Console;
use crate::api::deliveries::{list_deliveries, DeliveryOut, DeliveryQuery};
use crate::error::ApiError;
use crate::state::AppState;

/// The most rows a page shows.
pub const PAGE_SIZE: i64 = 50;

const STATUSES: [&str; 4] = ["pending", "held", "delivered", "failed"];

/// The list's filters as the form sends them (an empty field is no filter) and the page's
/// cursor. Parameters it does not know are ignored: the API refuses them, a browser's
/// leftovers should not break a page.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filters {
    status: Option<String>,
    connector: Option<String>,
    package: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

fn filled(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl Filters {
    fn cleaned(self) -> Self {
        Self {
            status: filled(self.status),
            connector: filled(self.connector),
            package: filled(self.package),
            since: filled(self.since),
            until: filled(self.until),
            cursor: filled(self.cursor),
        }
    }

    fn any(&self) -> bool {
        self.status.is_some()
            || self.connector.is_some()
            || self.package.is_some()
            || self.since.is_some()
            || self.until.is_some()
    }

    /// The list's URL with these filters and `cursor`.
    fn url(&self, cursor: Option<&str>) -> String {
        let pairs = [
            ("status", self.status.as_deref()),
            ("connector", self.connector.as_deref()),
            ("package", self.package.as_deref()),
            ("since", self.since.as_deref()),
            ("until", self.until.as_deref()),
            ("cursor", cursor),
        ];
        let query: Vec<String> = pairs
            .iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(v))))
            .collect();
        if query.is_empty() {
            "/console/deliveries".to_owned()
        } else {
            format!("/console/deliveries?{}", query.join("&"))
        }
    }

    fn query(&self) -> DeliveryQuery {
        DeliveryQuery {
            connector: self.connector.clone(),
            status: self.status.clone(),
            package_id: self.package.clone(),
            since: self.since.as_deref().map(as_rfc3339),
            until: self.until.as_deref().map(as_rfc3339),
            limit: Some(PAGE_SIZE),
            cursor: self.cursor.clone(),
        }
    }
}

/// A time as typed in the form, for the API: RFC 3339 as it is; a date (`2024-05-01`), or a
/// date and time without a zone (`2024-05-01 14:30`, or `2024-05-01T14:30` as a browser's
/// date-time field gives it), as UTC. Anything else goes to the API unchanged, which says
/// what is wrong with it.
pub fn as_rfc3339(raw: &str) -> String {
    let raw = raw.trim();
    if chrono::DateTime::parse_from_rfc3339(raw).is_ok() {
        return raw.to_owned();
    }
    for format in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(raw, format) {
            return t.and_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return format!("{}T00:00:00Z", d.format("%Y-%m-%d"));
    }
    raw.to_owned()
}

/// `dlv_` and the id's last 8 characters (its first ones are its time, alike in a page).
pub(super) fn short_id(id: &str) -> String {
    let tail: String = {
        let chars: Vec<char> = id.chars().collect();
        chars[chars.len().saturating_sub(8)..].iter().collect()
    };
    match id.split_once('_') {
        Some((prefix, _)) if id.len() > 12 => format!("{prefix}_…{tail}"),
        _ => id.to_owned(),
    }
}

pub(super) fn delivery_url(id: &str) -> String {
    format!("/console/deliveries/{}", encode(id))
}

/// A connector's name, linked to its page; the default callback has no page
/// and is named as what it is.
pub(super) fn connector_link(name: &str) -> Markup {
    html! {
        @if name == DEFAULT_CALLBACK_NAME {
            span title="the account's default callback" { (name) " (default callback)" }
        } @else if name.starts_with("@notify:") {
            a href="/console/notifications" title="a notification endpoint" { (name) }
        } @else {
            a href=(format!("/console/connectors/{name}")) { (name) }
        }
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// `GET /console/deliveries`: the filter form, a page of deliveries, and the link to older ones.
pub async fn list(
    State(state): State<AppState>,
    session: Console,
    query: Result<Query<Filters>, QueryRejection>,
) -> Response {
    let (filters, bad_query) = match query {
        Ok(Query(f)) => (f.cleaned(), None),
        Err(e) => (Filters::default(), Some(ApiError::from(e))),
    };
    let connectors = match state.store.list_connectors(&session.0.account.id).await {
        Ok(list) => list.into_iter().map(|c| c.name).collect::<Vec<_>>(),
        Err(e) => return super::error_page(&e.to_string()),
    };
    let (status, listing, refused) = match bad_query {
        Some(e) => (e.status, None, Some(e)),
        None => match list_deliveries(
            State(state.clone()),
            session.authed(),
            Ok(Query(filters.query())),
        )
        .await
        {
            Ok(Json(list)) => (StatusCode::OK, Some(list), None),
            Err(e) if e.status.is_client_error() => (e.status, None, Some(e)),
            Err(e) => return super::error_page(&e.message),
        },
    };
    let body = html! {
        h1 { "Deliveries" }
        (filter_form(&filters, &connectors))
        @if let Some(e) = &refused { (problem(e)) }
        @if let Some(list) = &listing {
            @if list.deliveries.is_empty() {
                p .empty {
                    @if filters.cursor.is_some() { "No older delivery." }
                    @else if filters.any() { "No delivery matches these filters." }
                    @else {
                        "No delivery yet. Events posted to " code { "POST /api/events" }
                        " make one per connector that takes them; "
                        a href="/console/events/new" { "send a test event" } " to see one."
                    }
                }
            } @else {
                p .muted {
                    (list.deliveries.len())
                    @if list.deliveries.len() == 1 { " delivery" } @else { " deliveries" }
                    ", newest first"
                    @if filters.cursor.is_some() { " (an older page)" } }
                (table(&list.deliveries))
            }
            @if filters.cursor.is_some() || list.next_cursor.is_some() {
                nav .paging aria-label="Pages" {
                    @if filters.cursor.is_some() {
                        a href=(filters.url(None)) { "← Newest" }
                    }
                    @if let Some(cursor) = &list.next_cursor {
                        a href=(filters.url(Some(cursor))) rel="next" { "Older →" }
                    }
                }
            }
        }
    };
    (
        status,
        page("Deliveries", Some(&session), Nav::Deliveries, body),
    )
        .into_response()
}

fn filter_form(filters: &Filters, connectors: &[String]) -> Markup {
    let connector = filters.connector.as_deref();
    let other_connector =
        connector.filter(|c| *c != DEFAULT_CALLBACK_NAME && !connectors.iter().any(|n| n == c));
    html! {
        form .filters method="get" action="/console/deliveries" {
            div .field {
                label for="f-status" { "Status" }
                select id="f-status" name="status" {
                    option value="" { "any" }
                    @for s in STATUSES {
                        option value=(s) selected[filters.status.as_deref() == Some(s)] { (s) }
                    }
                }
            }
            div .field {
                label for="f-connector" { "Connector" }
                select id="f-connector" name="connector" {
                    option value="" { "any" }
                    @for name in connectors {
                        option value=(name) selected[connector == Some(name.as_str())] { (name) }
                    }
                    option value=(DEFAULT_CALLBACK_NAME)
                        selected[connector == Some(DEFAULT_CALLBACK_NAME)] {
                        (DEFAULT_CALLBACK_NAME) " (default callback)"
                    }
                    @if let Some(other) = other_connector {
                        option value=(other) selected { (other) }
                    }
                }
            }
            div .field {
                label for="f-package" { "Package id" }
                input type="text" id="f-package" name="package"
                    value=(filters.package.as_deref().unwrap_or(""));
            }
            div .field {
                label for="f-since" { "Created from (UTC)" }
                input type="text" id="f-since" name="since" placeholder="2024-05-01 00:00"
                    aria-describedby="f-time-hint" value=(filters.since.as_deref().unwrap_or(""));
            }
            div .field {
                label for="f-until" { "Created before (UTC)" }
                input type="text" id="f-until" name="until" placeholder="2024-05-02 00:00"
                    aria-describedby="f-time-hint" value=(filters.until.as_deref().unwrap_or(""));
            }
            div .actions {
                button type="submit" { "Filter" }
                @if filters.any() { a href="/console/deliveries" { "Clear" } }
            }
            p .hint id="f-time-hint" {
                "Times in UTC: a date, a date and time (2024-05-01 14:30) or RFC 3339 (2024-05-01T14:30:00+02:00)."
            }
        }
    }
}

fn table(deliveries: &[DeliveryOut]) -> Markup {
    html! {
        table .responsive {
            thead { tr {
                th scope="col" { "Delivery" } th scope="col" { "Connector" } th scope="col" { "Event" }
                th scope="col" { "Package" } th scope="col" { "Status" } th scope="col" { "Attempts" }
                th scope="col" { "Created" } th scope="col" { "Next attempt / last error" }
            } }
            tbody {
                @for d in deliveries {
                    tr data-delivery=(d.id) {
                        td .id data-label="Delivery" {
                            a href=(delivery_url(&d.id)) title=(d.id) { code { (short_id(&d.id)) } }
                        }
                        td data-label="Connector" { (connector_link(&d.connector)) }
                        td data-label="Event" { (d.event) }
                        td data-label="Package" { (d.package_id) }
                        td data-label="Status" {
                            (delivery_badge(&d.status))
                            @if d.in_flight { " " span .muted { "in flight" } }
                        }
                        td .num data-label="Attempts" { (d.attempts.len()) }
                        td data-label="Created" { (time_text(&d.created_at)) }
                        td data-label="Next attempt / last error" {
                            @if let Some(at) = &d.next_attempt_at { "next " (time_text(at)) }
                            @if let Some(e) = &d.last_error {
                                div .error title=(e) { (shorten(e, 160)) }
                            }
                            @if d.next_attempt_at.is_none() && d.last_error.is_none() {
                                span .muted { "—" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `?done=` after a change: what was done.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_typed_in_the_form_become_rfc_3339_in_utc() {
        assert_eq!(as_rfc3339("2024-05-01"), "2024-05-01T00:00:00Z");
        assert_eq!(as_rfc3339(" 2024-05-01 14:30 "), "2024-05-01T14:30:00Z");
        assert_eq!(as_rfc3339("2024-05-01T14:30"), "2024-05-01T14:30:00Z");
        assert_eq!(as_rfc3339("2024-05-01 14:30:05"), "2024-05-01T14:30:05Z");
        assert_eq!(
            as_rfc3339("2024-05-01T14:30:00+02:00"),
            "2024-05-01T14:30:00+02:00"
        );
        // Not a time: the API says so.
        assert_eq!(as_rfc3339("yesterday"), "yesterday");
    }

    #[test]
    fn an_id_is_shortened_to_its_prefix_and_random_tail() {
        assert_eq!(
            short_id("dlv_0123456789abcdef0123456789abcdef"),
            "dlv_…89abcdef"
        );
        assert_eq!(short_id("dlv_short"), "dlv_short");
    }

    #[test]
    fn the_list_url_carries_the_filters_and_the_cursor() {
        let f = Filters {
            status: Some("failed".into()),
            package: Some("pkg 1&2".into()),
            ..Filters::default()
        };
        assert_eq!(
            f.url(Some("42")),
            "/console/deliveries?status=failed&package=pkg%201%262&cursor=42"
        );
        assert_eq!(Filters::default().url(None), "/console/deliveries");
    }
}
