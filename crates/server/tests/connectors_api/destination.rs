//! A credential stays with its destination: a My Domain key keeps a registration's url on its
//! host (`400 url_not_in_org`), and a url moves to another host only with the key in the same
//! request (`409 credentials_required`) — for every connector and for the default callback.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

const SF: &str = "/api/callback/connectors/salesforceOauth2";
const HOME: &str = "https://acme.my.salesforce.com/services/apexrest/OSS/callback";
const EVIL: &str = "https://evil.example/services/apexrest/OSS/callback";

async fn send(t: &TestServer, method: Method, path: &str, body: Value) -> (u16, Value) {
    json(t.req(method, path).json(&body).send().await.unwrap()).await
}

async fn get(t: &TestServer, path: &str) -> Value {
    json(t.req(Method::GET, path).send().await.unwrap()).await.1
}

/// A key of the salesforce preset for the My Domain `host`, with `extra` fields.
fn my_domain_key(host: &str, extra: Value) -> String {
    let mut key = json!({"host": host, "client_id": "3MVG9ClientIdForTests", "client_secret": "CcSecretValue-0123456789"});
    for (k, v) in extra.as_object().unwrap() {
        key[k] = v.clone();
    }
    b64(&key)
}

#[tokio::test]
async fn a_my_domain_key_keeps_the_url_on_its_host_at_registration() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let body = |url: &str, key: String| json!({"url": url, "events": ["PACKAGE_COMPLETE"], "key": key});

        let (status, e) = send(&t, Method::POST, SF, body(EVIL, sf_cc_key())).await;
        assert_error(status, &e, 400, "url_not_in_org");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("evil.example") && message.contains("acme.my.salesforce.com"),
            "{e}"
        );
        assert!(
            e["fix"]
                .as_str()
                .unwrap()
                .contains("https://acme.my.salesforce.com/services/apexrest/OSS/callback"),
            "{e}"
        );
        assert_eq!(
            get(&t, SF).await["error"],
            "not_found",
            "nothing was registered"
        );

        // The preset's rule under any name; a replace (PUT) obeys it too.
        let (status, e) = send(
            &t,
            Method::POST,
            "/api/callback/connectors/acmeProd",
            json!({"preset": "salesforce", "url": EVIL, "events": [], "key": sf_cc_key()}),
        )
        .await;
        assert_error(status, &e, 400, "url_not_in_org");
        let (status, _) = send(&t, Method::POST, SF, body(HOME, sf_cc_key())).await;
        assert_eq!(status, 201);
        let (status, e) = send(&t, Method::PUT, SF, body(EVIL, sf_cc_key())).await;
        assert_error(status, &e, 400, "url_not_in_org");
        assert_eq!(get(&t, SF).await["url"], HOME);
        // A sandbox's My Domain is its own host.
        let sandbox = my_domain_key("acme--dev.sandbox.my.salesforce.com", json!({}));
        let (status, e) = send(&t, Method::PUT, SF, body(HOME, sandbox.clone())).await;
        assert_error(status, &e, 400, "url_not_in_org");
        let on_sandbox =
            "https://acme--dev.sandbox.my.salesforce.com/services/apexrest/OSS/callback";
        let (status, e) = send(&t, Method::PUT, SF, body(on_sandbox, sandbox)).await;
        assert_eq!(status, 200, "{e}");

        // A key with an endpoint of its own, or a login host, does not say where the org is:
        // its grants are checked instead.
        for key in [
            my_domain_key(
                "acme.my.salesforce.com",
                json!({"token_url": "https://proxy.example/services/oauth2/token"}),
            ),
            my_domain_key(
                "acme.my.salesforce.com",
                json!({"authorization_url": "https://proxy.example/services/oauth2/authorize"}),
            ),
            sf_rt_key(),
        ] {
            let (status, e) = send(&t, Method::PUT, SF, body(EVIL, key)).await;
            assert_eq!(status, 200, "{e}");
        }
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_connector_moves_to_another_host_only_with_its_key() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let (status, created) = send(
            &t,
            Method::POST,
            SF,
            json!({"url": HOME, "events": ["PACKAGE_COMPLETE"], "key": sf_cc_key()}),
        )
        .await;
        assert_eq!(status, 201, "{created}");

        // Within the host: no key needed.
        let within = "https://ACME.my.salesforce.com:443/services/apexrest/ONSS/OSS/callback";
        let (status, moved) = send(&t, Method::PATCH, SF, json!({"url": within})).await;
        assert_eq!(status, 200, "{moved}");
        assert_eq!(moved["credentials_version"], created["credentials_version"]);

        // Another host, port or scheme: the key must come with the url.
        for away in [
            EVIL,
            "https://acme.my.salesforce.com:8443/services/apexrest/OSS/callback",
            "http://acme.my.salesforce.com/services/apexrest/OSS/callback",
        ] {
            let (status, e) = send(
                &t,
                Method::PATCH,
                SF,
                json!({"url": away, "events": ["PACKAGE_CREATE"]}),
            )
            .await;
            assert_error(status, &e, 409, "credentials_required");
            assert!(e["fix"].as_str().unwrap().contains("\"key\""), "{e}");
        }
        let now = get(&t, SF).await;
        assert_eq!(now["url"], moved["url"], "nothing changed");
        assert_eq!(now["events"], json!(["PACKAGE_COMPLETE"]));

        // With the key of the org the url belongs to, it moves.
        let globex = "https://globex.my.salesforce.com/services/apexrest/OSS/callback";
        let (status, e) = send(&t, Method::PATCH, SF, json!({"url": globex})).await;
        assert_error(status, &e, 409, "credentials_required");
        let globex_key = my_domain_key("globex.my.salesforce.com", json!({}));
        let (status, e) = send(
            &t,
            Method::PATCH,
            SF,
            json!({"url": EVIL, "key": globex_key}),
        )
        .await;
        assert_error(status, &e, 400, "url_not_in_org");
        let (status, moved) = send(
            &t,
            Method::PATCH,
            SF,
            json!({"url": globex, "key": globex_key}),
        )
        .await;
        assert_eq!(status, 200, "{moved}");
        assert_eq!(moved["url"], globex);
        assert!(moved["credentials_version"].as_i64() > created["credentials_version"].as_i64());
        // A new key alone must fit the url it has.
        let (status, e) = send(&t, Method::PATCH, SF, json!({"key": sf_cc_key()})).await;
        assert_error(status, &e, 400, "url_not_in_org");

        // The same rule for a generic connector, whose key names no org.
        let generic = "/api/callback/connectors/acmeGeneric";
        let generic_key = || {
            b64(
                &json!({"client_id": "c", "client_secret": "s", "token_url": "https://idp.example/oauth2/token"}),
            )
        };
        let (status, _) = send(
            &t,
            Method::POST,
            generic,
            json!({"url": "https://hooks.example/a", "key": generic_key()}),
        )
        .await;
        assert_eq!(status, 201);
        let (status, e) = send(
            &t,
            Method::PATCH,
            generic,
            json!({"url": "https://other.example/a"}),
        )
        .await;
        assert_error(status, &e, 409, "credentials_required");
        let (status, _) = send(
            &t,
            Method::PATCH,
            generic,
            json!({"url": "https://hooks.example/b"}),
        )
        .await;
        assert_eq!(status, 200);
        let (status, e) = send(
            &t,
            Method::PATCH,
            generic,
            json!({"url": "https://other.example/a", "key": generic_key()}),
        )
        .await;
        assert_eq!(status, 200, "{e}");
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn the_default_callback_moves_to_another_host_only_with_its_key() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let path = "/api/callback";
        let events = json!(["PACKAGE_COMPLETE"]);
        let (status, e) = send(
            &t,
            Method::POST,
            path,
            json!({"url": "https://hooks.example/a", "events": events}),
        )
        .await;
        assert_error(status, &e, 400, "invalid_callback_key");
        let (status, first) = send(
            &t,
            Method::POST,
            path,
            json!({"url": "https://hooks.example/a", "key": "listener-key-0001", "events": events}),
        )
        .await;
        assert_eq!(status, 201, "{first}");

        // Same host without the key: the key stays.
        let (status, kept) = send(
            &t,
            Method::POST,
            path,
            json!({"url": "https://hooks.example/b", "events": events}),
        )
        .await;
        assert_eq!(status, 200, "{kept}");
        assert_eq!(kept["url"], "https://hooks.example/b");
        assert_eq!(kept["key"], first["key"], "the same key, masked");

        // Another host without the key: refused; with a key: moved.
        let (status, e) = send(
            &t,
            Method::POST,
            path,
            json!({"url": "https://evil.example/b", "events": events}),
        )
        .await;
        assert_error(status, &e, 409, "credentials_required");
        assert_eq!(get(&t, path).await["url"], "https://hooks.example/b");
        let (status, moved) = send(
            &t,
            Method::POST,
            path,
            json!({"url": "https://evil.example/b", "key": "listener-key-0002", "events": events}),
        )
        .await;
        assert_eq!(status, 200, "{moved}");
        assert_eq!(moved["url"], "https://evil.example/b");
        assert_ne!(moved["key"], first["key"]);
        t.server.shutdown().await.unwrap();
    }
}

/// A secret in the callback url's query (some receivers take one there) is masked in answers
/// like the key's URLs; sending back the masked url, as a client that read it would, keeps the
/// stored one.
#[tokio::test]
async fn query_values_of_a_url_are_masked_in_answers_and_a_masked_url_sent_back_changes_nothing() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let url = "https://acme.my.salesforce.com/services/apexrest/OSS/callback?sig=QueryS3cretValue42&v=1";
        let masked =
            "https://acme.my.salesforce.com/services/apexrest/OSS/callback?sig=****ue42&v=****";
        let (status, created) = send(
            &t,
            Method::POST,
            SF,
            json!({"url": url, "events": ["PACKAGE_COMPLETE"], "key": sf_cc_key()}),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["url"], masked, "{created}");
        assert!(!created.to_string().contains("QueryS3cretValue42"));
        let listed = get(&t, "/api/callback/connectors").await;
        assert!(
            !listed.to_string().contains("QueryS3cretValue42"),
            "{listed}"
        );

        let (status, patched) = send(
            &t,
            Method::PATCH,
            SF,
            json!({"url": masked, "events": ["PACKAGE_CREATE"]}),
        )
        .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["url"], masked);
        let account = t
            .server
            .state
            .store
            .account_by_api_key(&t.key_a)
            .await
            .unwrap()
            .unwrap();
        let stored = |name: &'static str| {
            let store = t.server.state.store.clone();
            let account = account.id.clone();
            async move { store.get_connector(&account, name).await.unwrap().unwrap() }
        };
        assert_eq!(stored("salesforceOauth2").await.url, url);

        // The default callback likewise.
        let (status, cb) = send(
            &t,
            Method::POST,
            "/api/callback",
            json!({"url": "https://hooks.example.com/in?token=CallbackSecret99", "key": "listener-key-0001", "events": ["PACKAGE_COMPLETE"]}),
        )
        .await;
        assert!(status == 201 || status == 200, "{cb}");
        assert_eq!(cb["url"], "https://hooks.example.com/in?token=****et99");
        let (status, again) = send(
            &t,
            Method::POST,
            "/api/callback",
            json!({"url": cb["url"], "events": ["PACKAGE_COMPLETE", "PACKAGE_CREATE"]}),
        )
        .await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(
            stored("@default").await.url,
            "https://hooks.example.com/in?token=CallbackSecret99"
        );
        t.server.shutdown().await.unwrap();
    }
}
