//! The deliveries pages: the account's deliveries, newest first, filtered by status, connector,
//! package and time and paged 50 at a time; one delivery with every attempt (what each answer
//! meant and what to do about it), and for an admin session Retry. Everything goes through the
//! API's own handlers, so a page shows what `GET /api/deliveries` answers, and refuses what it
//! refuses with the same message.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use chrono::{NaiveDate, NaiveDateTime};
use hookwarden_store::DEFAULT_CALLBACK_NAME;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{delivery_badge, encode, page, time_text, Nav};
use super::problem;
use super::session::Console;
use crate::api::deliveries::{
    get_delivery, list_deliveries, retry_delivery, AttemptOut, DeliveryOut, DeliveryQuery, RetryIn,
};
use crate::error::{ApiError, ApiJson, ApiPath};
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
fn short_id(id: &str) -> String {
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
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// What the delivery page says above the delivery.
enum Notice<'a> {
    Done(&'static str),
    Refused(&'a ApiError),
}

/// `GET /console/deliveries/{id}`: the delivery and every attempt.
pub async fn show(
    State(state): State<AppState>,
    session: Console,
    Path(id): Path<String>,
    done: Result<Query<Done>, QueryRejection>,
) -> Response {
    let notice = match done.ok().and_then(|Query(d)| d.done).as_deref() {
        Some("retried") => Some(Notice::Done(
            "Queued for one more attempt now: reload the page in a moment to see it.",
        )),
        Some("sent_again") => Some(Notice::Done(
            "Queued to be sent once more: reload the page in a moment to see the attempt.",
        )),
        _ => None,
    };
    delivery_page(&state, &session, id, notice, StatusCode::OK).await
}

async fn delivery_page(
    state: &AppState,
    session: &Console,
    id: String,
    notice: Option<Notice<'_>>,
    status: StatusCode,
) -> Response {
    match get_delivery(State(state.clone()), session.authed(), ApiPath(id)).await {
        Ok(Json(d)) => {
            let body = delivery_view(session, &d, notice);
            let title = format!("Delivery {}", short_id(&d.id));
            (status, page(&title, Some(session), Nav::Deliveries, body)).into_response()
        }
        Err(e) if e.status.is_client_error() => {
            let body = html! {
                p { a href="/console/deliveries" { "← Deliveries" } }
                h1 { "No such delivery" }
                (problem(&e))
            };
            (
                e.status,
                page("No such delivery", Some(session), Nav::Deliveries, body),
            )
                .into_response()
        }
        Err(e) => super::error_page(&e.message),
    }
}

fn delivery_view(session: &Console, d: &DeliveryOut, notice: Option<Notice<'_>>) -> Markup {
    html! {
        p { a href="/console/deliveries" { "← Deliveries" } }
        h1 { "Delivery " code { (d.id) } }
        @match notice {
            Some(Notice::Done(text)) => p .notice role="status" { (text) },
            Some(Notice::Refused(e)) => (problem(e)),
            None => {},
        }
        dl .facts {
            dt { "Status" }
            dd {
                (delivery_badge(&d.status))
                @if d.in_flight { " " span .muted { "an attempt is under way" } }
            }
            dt { "Event" }
            dd { (d.event) " " span .muted { (d.event_id) } }
            dt { "Connector" }
            dd {
                (connector_link(&d.connector)) " · "
                a href=(format!("/console/deliveries?connector={}", encode(&d.connector))) {
                    "its deliveries"
                }
            }
            dt { "Package" }
            dd {
                a href=(format!("/console/deliveries?package={}", encode(&d.package_id)))
                    title="every delivery about this package" { (d.package_id) }
            }
            dt { "Created" }
            dd { (time_text(&d.created_at)) }
            dt { "Updated" }
            dd { (time_text(&d.updated_at)) }
            @if let Some(at) = &d.next_attempt_at {
                dt { "Next attempt" }
                dd { (time_text(at)) }
            }
            @if let Some(e) = &d.last_error {
                dt { "Last error" }
                dd .error { (e) }
            }
        }
        (actions(session, d))
        h2 { "Attempts (" (d.attempts.len()) ")" }
        @if d.attempts.is_empty() {
            p .muted {
                @match d.status.as_str() {
                    "held" => "None yet: it waits until its connector is active again.",
                    _ => "None yet.",
                }
            }
        } @else {
            ol .attempts {
                @for (i, a) in d.attempts.iter().enumerate() {
                    li data-attempt=(i + 1) { (attempt_view(i + 1, a)) }
                }
            }
        }
    }
}

fn attempt_view(n: usize, a: &AttemptOut) -> Markup {
    html! {
        h3 { "Attempt " (n) " · " (time_text(&a.at)) }
        dl .facts {
            dt { "HTTP status" }
            dd {
                @match a.status_code {
                    Some(code) => (code),
                    None => span .muted { "no answer" },
                }
            }
            dt { "Duration" }
            dd { (a.duration_ms) " ms" }
            dt { "Token refreshed" }
            dd { @if a.refreshed { "yes" } @else { "no" } }
            @if let Some(e) = &a.error {
                dt { "Error" }
                dd .error { (e) }
            }
        }
        @if let Some(d) = &a.diagnosis {
            div .diagnosis {
                div { span .code { (d.code) } ": " (d.cause) }
                div .fix { "Fix: " (d.fix) }
            }
        }
        @if let Some(x) = &a.response_excerpt {
            div .excerpt {
                div .muted { "Response excerpt" }
                pre { (x) }
            }
        }
    }
}

/// What this session may do with the delivery: Retry (a failed or pending one), Send again (a
/// delivered one, which the API allows only when forced), or why nothing can be done now.
fn actions(session: &Console, d: &DeliveryOut) -> Markup {
    let form = |force: bool, label: &str, hint: &str| {
        html! {
            form .action method="post" action=(format!("{}/retry", delivery_url(&d.id))) {
                input type="hidden" name="csrf_token" value=(session.0.csrf_token);
                @if force { input type="hidden" name="force" value="true"; }
                button type="submit" { (label) }
                span .hint { (hint) }
            }
        }
    };
    html! {
        @if !session.can_change() {
            p .hint { "Retrying takes a session with an admin key; this one only looks." }
        } @else if d.in_flight {
            p .hint { "An attempt is under way; it can be retried once it has finished." }
        } @else {
            @match d.status.as_str() {
                "failed" => (form(false, "Retry", "One more attempt now. To retry a connector's failed deliveries with a fresh schedule, replay the connector.")),
                "pending" => (form(false, "Retry", "Attempt it now instead of at its next planned time.")),
                "delivered" => (form(true, "Send again", "The receiver gets it once more, with the same webhook-id, so it can tell it is a repeat.")),
                "held" => {
                    p .hint {
                        "Held while its connector is not active; it goes out by itself once the connector works again. "
                        @if d.connector != DEFAULT_CALLBACK_NAME {
                            a href=(format!("/console/connectors/{}", d.connector)) { "See the connector." }
                        }
                    }
                },
                _ => {},
            }
        }
    }
}

/// The Retry form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct RetryForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    force: Option<String>,
}

/// `POST /console/deliveries/{id}/retry`: through the API's retry, then back to the delivery
/// (303); the API's refusal (a delivery in flight, held, already delivered) is shown on it.
pub async fn retry(
    State(state): State<AppState>,
    session: Console,
    Path(id): Path<String>,
    form: Result<Form<RetryForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if let Some(refusal) = session.refuse_change(&form.csrf_token) {
        return refusal;
    }
    let force = form.force.as_deref() == Some("true");
    match retry_delivery(
        State(state.clone()),
        session.authed(),
        ApiPath(id.clone()),
        Some(ApiJson(RetryIn { force })),
    )
    .await
    {
        Ok(_) => {
            let done = if force { "sent_again" } else { "retried" };
            Redirect::to(&format!("{}?done={done}", delivery_url(&id))).into_response()
        }
        Err(e) if e.status.is_client_error() => {
            let status = e.status;
            delivery_page(&state, &session, id, Some(Notice::Refused(&e)), status).await
        }
        Err(e) => super::error_page(&e.message),
    }
}

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
