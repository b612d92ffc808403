//! A credential stays with its destination, end to end: a fake org whose `instance_url` is
//! another host than the connector's url gets no callback with a bearer token; the connector
//! is `disabled` with `url_not_in_org` and its deliveries held, until a `PATCH {"url"}` to the
//! org's own url (no key needed there) enables it and the held delivery arrives.

use reqwest::Method;
use serde_json::json;
use tokio::net::TcpListener;

use super::support::*;
use super::SF;

#[tokio::test]
async fn an_org_elsewhere_gets_no_token_until_the_url_moves_into_it() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let h = Harness::start(&db).await;
        // The same org on a second port: another origin, where it says it is.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let elsewhere = format!("http://{}", listener.local_addr().unwrap());
        let app = hookwarden_fake_org::router(h.org.state().clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        h.register_salesforce().await;
        h.org
            .update_config(|c| c.public_url = Some(elsewhere.clone()))
            .unwrap();

        let answer = h.post_event(event("PACKAGE_COMPLETE", "pkg-1")).await;
        let id = answer["deliveries"][0].as_str().unwrap().to_owned();
        let report = h.engine.run_once().await.unwrap();
        assert_eq!(report.held, 1, "{report:?}");
        assert!(
            h.org.callbacks().is_empty(),
            "no callback, so no token, reached the org"
        );
        assert_eq!(h.org.stats().callbacks_received, 0);
        assert_eq!(h.org.stats().grants_ok("client_credentials"), 1);

        let c = h.connector(SF).await;
        assert_eq!(c["status"], "disabled", "{c}");
        assert_eq!(c["diagnosis"]["code"], "url_not_in_org", "{c}");
        assert!(
            c["diagnosis"]["cause"]
                .as_str()
                .unwrap()
                .contains(&elsewhere),
            "{c}"
        );
        assert_eq!(c["token"]["has_access_token"], false, "{c}");
        assert_eq!(c["token"]["instance_url"], elsewhere.as_str(), "{c}");
        let d = h.delivery(&id).await;
        assert_eq!(d["status"], "held", "{d}");
        let (_, history) = json_of(
            h.req(
                Method::GET,
                &format!("/api/callback/connectors/{SF}/history"),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        let grant = &history["entries"][0];
        assert_eq!(grant["outcome"], "failed", "{history}");
        assert_eq!(grant["diagnosis"]["code"], "url_not_in_org", "{history}");

        // Resume is not the way back: the answer gives this diagnosis's own fix.
        let (status, err) = json_of(
            h.req(
                Method::POST,
                &format!("/api/callback/connectors/{SF}/resume"),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(status, 409, "{err}");
        assert_eq!(err["error"], "nothing_to_resume", "{err}");
        assert_eq!(err["fix"], c["diagnosis"]["fix"], "{err}");

        // Held: nothing more is tried, no grant either.
        assert_eq!(h.engine.run_once().await.unwrap().claimed, 0);
        assert_eq!(h.org.stats().grants_total("client_credentials"), 1);

        // Into the org's own host: no key needed, and the connector is active again.
        let home = format!("{elsewhere}/services/apexrest/OSS/callback");
        let (status, moved) = json_of(
            h.req(Method::PATCH, &format!("/api/callback/connectors/{SF}"))
                .json(&json!({"url": home}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{moved}");
        assert_eq!(moved["status"], "active", "{moved}");
        assert!(moved["diagnosis"].is_null(), "{moved}");

        let report = h.engine.run_once().await.unwrap();
        assert_eq!(report.delivered, 1, "{report:?}");
        assert_eq!(h.delivery(&id).await["status"], "delivered");
        let received = h.org.callbacks();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].webhook_id.as_deref(), Some(id.as_str()));
    }
}
