//! No secret in any log line or history entry: run every kind of call with all logging on,
//! then search the captured output and the stored history for every secret that was in play.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use hookwarden_fake_org::FakeOrg;
use secrecy::ExposeSecret;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// current_thread: every task (ours, reqwest's, the fake org's) runs on this thread, under the
// thread-local subscriber set below.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_in_logs_or_history() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let org = FakeOrg::builder()
        .rotate_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    let env = sqlite_env().await;
    let tokens = env.manager();
    let mut secrets: Vec<String> = vec![CLIENT_SECRET.to_owned()];

    // Refresh with rotation, introspection (the key has a secret), a forced grant, revocation.
    let k = refresh_key(&org, json!({"client_secret": CLIENT_SECRET}));
    secrets.push(k["refresh_token"].as_str().unwrap().to_owned());
    let c = env.connector("salesforceOauth2", k).await;
    for t in [
        tokens.token(&c).await.unwrap(),
        tokens.force_grant(&c).await.unwrap(),
    ] {
        secrets.push(t.secret.expose_secret().to_owned());
    }
    let state = env.store.get_token_state(&c.id).await.unwrap().unwrap();
    secrets.push(state.refresh_token.unwrap().expose_secret().to_owned());
    tokens.revoke(&c).await.unwrap();

    // A refused grant, in query style (the secret travels in the URL).
    let bad = cc_key(
        &org,
        json!({"client_secret": "wrong-secret-value", "request_style": "query"}),
    );
    secrets.push("wrong-secret-value".to_owned());
    let b = env.connector("bad", bad).await;
    assert!(tokens.token(&b).await.is_err());

    // Re-authentication: the code and the verifier are secrets too.
    let revoked = env.reload(&c).await;
    let url = tokens
        .authorization_url(&revoked, "https://hookwarden.example/oauth/callback")
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let location = client.get(&url).send().await.unwrap().headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let pairs: Vec<(String, String)> = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |n: &str| pairs.iter().find(|(k, _)| k == n).unwrap().1.clone();
    secrets.push(get("code"));
    let back = tokens
        .complete_authorization(None, &get("state"), &get("code"))
        .await
        .unwrap();
    let t = tokens.token(&back).await.unwrap();
    secrets.push(t.secret.expose_secret().to_owned());
    let key: serde_json::Value =
        serde_json::from_str(back.credentials.stored().expose_secret()).unwrap();
    secrets.push(key["refresh_token"].as_str().unwrap().to_owned());

    drop(_guard);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("granted a new access token"),
        "logging was captured"
    );
    let mut entries = history(&env, &c).await;
    entries.extend(history(&env, &b).await);
    let stored = serde_json::to_string(&entries).unwrap();
    assert!(entries.len() >= 6, "{} entries", entries.len());
    assert!(stored.contains("[redacted]"), "excerpts are kept, redacted");

    for s in &secrets {
        assert!(s.len() >= 8, "a real secret: {s}");
        assert!(!logs.contains(s.as_str()), "a secret is in the logs");
        assert!(!stored.contains(s.as_str()), "a secret is in the history");
    }
}
