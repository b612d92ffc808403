//! The page every console page sits in: the navigation bar, who is logged in, the stylesheet
//! and the few lines of script (times in the browser's zone), all served by this binary.

use hookwarden_core::clock::rfc3339;
use maud::{html, Markup, DOCTYPE};

use super::session::Console;

/// The entry of the navigation bar a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    None,
    Connectors,
    Keys,
    Deliveries,
    SendEvent,
    Notifications,
    Review,
}

const NAV: &[(Nav, &str, &str)] = &[
    (Nav::Connectors, "/console/connectors", "Connectors"),
    (Nav::Deliveries, "/console/deliveries", "Deliveries"),
    (Nav::SendEvent, "/console/events/new", "Send a test event"),
    (
        Nav::Notifications,
        "/console/notifications",
        "Notifications",
    ),
    (Nav::Keys, "/console/keys", "API keys"),
    (Nav::Review, "/console/review", "Review"),
];

pub fn page(title: &str, session: Option<&Console>, nav: Nav, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · hookwarden" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header .top {
                    a .brand href="/console/connectors" { "hookwarden" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            ul {
                                @for (entry, href, label) in NAV {
                                    li {
                                        @if *entry == nav {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        div .who {
                            span { (s.0.account.name) " · " (s.0.scopes.names().join(", "))
                                @if !s.can_change() { " (read only)" } }
                            form method="post" action="/console/logout" {
                                input type="hidden" name="csrf_token" value=(s.0.csrf_token);
                                button type="submit" .link { "Log out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A time (ms since the epoch): UTC in the page and on hover, the browser's zone once the
/// script has run.
pub fn time(ms: i64) -> Markup {
    let utc = rfc3339(ms);
    time_text(&utc)
}

/// A time already in RFC 3339 (as the API's answers give it).
pub fn time_text(utc: &str) -> Markup {
    let shown = utc.replace('T', " ").trim_end_matches('Z').to_owned();
    let shown = shown.split('.').next().unwrap_or(&shown).to_owned();
    html! { time datetime=(utc) title=(format!("{utc} (UTC)")) { (shown) " UTC" } }
}

/// A connector's status as a badge (`active` plain, anything else marked).
pub fn status_badge(status: &str) -> Markup {
    let class = match status {
        "active" => "badge ok",
        "needs_reauth" | "disabled" => "badge bad",
        _ => "badge warn",
    };
    html! { span class=(class) { (status) } }
}

/// A delivery's status as a badge: `delivered` good, `failed` bad, `held` a warning,
/// `pending` plain.
pub fn delivery_badge(status: &str) -> Markup {
    let class = match status {
        "delivered" => "badge ok",
        "failed" => "badge bad",
        "held" => "badge warn",
        _ => "badge",
    };
    html! { span class=(class) { (status) } }
}

/// A path segment or a query string's value, percent-encoded (all but RFC 3986's unreserved
/// characters).
pub fn encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
