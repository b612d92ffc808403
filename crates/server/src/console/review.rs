//! The governance review page: every connector's checks (owner, scope, host, url, secret ages,
//! idle refresh token, failures, status) with what to do, through the API's own handler. An
//! admin session can run it again with each connector's live probe (a POST: it makes a grant
//! and sends a test event).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use maud::{html, Markup};

use super::layout::{page, Nav};
use super::session::{Console, CsrfForm};
use crate::api::review::{get_review, ReviewOut, ReviewQuery};
use crate::review::Level;
use crate::state::AppState;

/// `GET /console/review`
pub async fn show(State(state): State<AppState>, session: Console) -> Response {
    render(state, session, false).await
}

/// `POST /console/review`: the review with the live probe (admin, CSRF).
pub async fn probe(
    State(state): State<AppState>,
    session: Console,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = session.refuse_change(&form.csrf_token) {
        return refused;
    }
    render(state, session, true).await
}

async fn render(state: AppState, session: Console, probe: bool) -> Response {
    let query = ReviewQuery { probe: Some(probe) };
    let review = match get_review(State(state), session.authed(), Ok(Query(query))).await {
        Ok(Json(review)) => review,
        Err(e) => {
            return super::refusal_page(&session, e, Nav::Review, ("/console/review", "Review"))
        }
    };
    let body = html! {
        h1 { "Governance review " (summary(&review)) }
        p .muted { "Each connector is a machine identity: it should have an owner, the least scope, \
                    an endpoint in its org and fresh secrets. A check that does not apply is ok and says so." }
        @if probe {
            p .notice role="status" { "With the live probe: each connector made a grant and sent a test event." }
        }
        @if session.can_change() {
            form method="post" action="/console/review" {
                input type="hidden" name="csrf_token" value=(session.0.csrf_token);
                button type="submit" { "Run with the live probe" }
            }
        } @else {
            p .muted { "The live probe (a grant and a test event per connector) needs an admin key." }
        }
        @if review.connectors.is_empty() {
            p { "No connectors to review." }
        }
        @for c in &review.connectors {
            section .review id=(format!("review-{}", c.name)) aria-labelledby=(format!("review-{}-title", c.name)) {
                h2 id=(format!("review-{}-title", c.name)) {
                    a href=(format!("/console/connectors/{}", c.name)) { (c.name) } " "
                    @if c.ok { span .badge.ok { "passes" } } @else { span .badge.bad { "fails" } }
                }
                table .responsive {
                    thead { tr {
                        th scope="col" { "Check" } th scope="col" { "Level" }
                        th scope="col" { "Detail" } th scope="col" { "What to do" }
                    } }
                    tbody {
                        @for check in &c.checks {
                            tr data-check=(check.name) data-level=(check.level.as_str()) {
                                td data-label="Check" { code { (check.name) } }
                                td data-label="Level" { (level_badge(check.level)) }
                                td data-label="Detail" { (check.detail) }
                                td data-label="What to do" {
                                    @match &check.fix { Some(fix) => (fix), None => span .muted { "—" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Review", Some(&session), Nav::Review, body).into_response()
}

fn summary(review: &ReviewOut) -> Markup {
    let failing = review.connectors.iter().filter(|c| !c.ok).count();
    html! {
        @if review.ok { span .badge.ok { "no failures" } }
        @else { span .badge.bad { (failing) " connector(s) failing" } }
    }
}

fn level_badge(level: Level) -> Markup {
    let class = match level {
        Level::Ok => "badge ok",
        Level::Warn => "badge warn",
        Level::Fail => "badge bad",
    };
    html! { span class=(class) { (level.as_str()) } }
}
