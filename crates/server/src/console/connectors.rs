//! The connectors page: the account's connectors with their status, flow, last grant, last
//! delivery and open deliveries; a broken one shows its diagnosis and fix right there, so the
//! first page answers "what is wrong".

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{page, status_badge, time, time_text, Nav};
use super::session::Console;
use crate::api::connectors::to_out_with_token;
use crate::state::AppState;
use hookwarden_core::ConnectorStatus;
use hookwarden_store::ConnectorRecord;

/// Connectors a page shows.
pub const PAGE_SIZE: usize = 100;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    /// 1-based.
    page: Option<usize>,
}

/// `GET /console/connectors?page=N`
pub async fn list(
    State(state): State<AppState>,
    session: Console,
    Query(q): Query<ListQuery>,
) -> Response {
    // The account's connectors as the API lists them; each one's token state (a read apiece)
    // only for the page shown.
    let records = match state.store.list_connectors(&session.0.account.id).await {
        Ok(r) => r,
        Err(e) => return super::error_page(&e.to_string()),
    };
    let activity = match state.store.connector_activity(&session.0.account.id).await {
        Ok(a) => a,
        Err(e) => return super::error_page(&e.to_string()),
    };
    let active = |r: &ConnectorRecord| r.status == ConnectorStatus::Active;
    let broken = records.iter().filter(|r| !active(r)).count();
    let total = records.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page_no = q.page.unwrap_or(1).clamp(1, pages);
    // The broken ones first, so the first page answers "what is wrong".
    let mut records = records;
    records.sort_by(|a, b| (active(a), &a.name).cmp(&(active(b), &b.name)));
    let mut connectors = Vec::with_capacity(PAGE_SIZE);
    for record in records
        .iter()
        .skip((page_no - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
    {
        connectors.push(to_out_with_token(&state, record).await);
    }
    let body = html! {
        h1 { "Connectors" }
        @if connectors.is_empty() {
            p { "No connector yet. Register one with "
                code { "hookwarden connectors create" } " or "
                code { "POST /api/callback/connectors/{name}" } "." }
        } @else {
            p .muted {
                (total) " connectors"
                @if broken > 0 { ", " strong .error { (broken) " not active" } }
            }
            table .responsive {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Status" } th scope="col" { "Flow" }
                    th scope="col" { "Last grant" } th scope="col" { "Last delivery" }
                    th scope="col" { "Pending" } th scope="col" { "Held" } th scope="col" { "Failed" }
                } }
                tbody {
                    @for c in &connectors {
                        @let a = activity.iter().find(|(n, _)| *n == c.name).map(|(_, a)| a.clone()).unwrap_or_default();
                        tr id=(format!("connector-{}", c.name)) data-connector=(c.name) {
                            td data-label="Name" { a href=(format!("/console/connectors/{}", c.name)) { strong { (c.name) } } br; span .muted { (c.preset) } }
                            td data-label="Status" {
                                (status_badge(&c.status))
                                @if let Some(d) = &c.diagnosis {
                                    div .diagnosis {
                                        div { span .code { (d.code) } ": " (d.cause) }
                                        div .fix { "Fix: " (d.fix) }
                                    }
                                }
                            }
                            td data-label="Flow" { (c.flow.as_deref().unwrap_or("—")) }
                            td data-label="Last grant" {
                                @match c.token.as_ref().and_then(|t| t.last_grant_at.as_deref()) {
                                    Some(at) => (time_text(at)),
                                    None => span .muted { "none yet" },
                                }
                            }
                            td data-label="Last delivery" {
                                @match a.last_delivery_at {
                                    Some(at) => (time(at)),
                                    None => span .muted { "none recently" },
                                }
                            }
                            td .num data-label="Pending" { (a.pending) }
                            td .num data-label="Held" { (a.held) }
                            td .num data-label="Failed" { (a.failed) }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        (body)
        @if pages > 1 {
            nav aria-label="Pages" .pages {
                @if page_no > 1 { a href=(format!("/console/connectors?page={}", page_no - 1)) { "← Previous" } " " }
                "Page " (page_no) " of " (pages)
                @if page_no < pages { " " a href=(format!("/console/connectors?page={}", page_no + 1)) { "Next →" } }
            }
        }
    };
    page("Connectors", Some(&session), Nav::Connectors, body).into_response()
}
