//! Resume: one more grant with the stored credentials of a `needs_reauth` connector once the
//! cause of the refusal is fixed at the provider, on this node and as another node sees it.

mod common;

use common::*;
use hookwarden_core::ConnectorStatus;
use hookwarden_fake_org::FakeOrg;
use hookwarden_store::HistoryKind;
use serde_json::json;

#[tokio::test]
async fn a_resume_grants_once_with_the_stored_credentials_when_the_cause_is_fixed() {
    for env in all_envs().await {
        let org = FakeOrg::builder().run_as_user(None).start().await.unwrap();
        let c = env
            .connector("salesforceOauth2", cc_key(&org, json!({})))
            .await;
        let tokens = env.manager();
        assert_eq!(tokens.token(&c).await.unwrap_err().code(), "no_run_as_user");
        let c = env.reload(&c).await;
        assert_eq!(c.status, ConnectorStatus::NeedsReauth);
        assert_eq!(
            tokens.token(&c).await.unwrap_err().code(),
            "connector_needs_reauth"
        );
        assert_eq!(org.stats().grants_total("client_credentials"), 1);

        // Not fixed yet: one more refused grant, recorded with its diagnosis; still waiting.
        let e = tokens.resume(&c).await.unwrap_err();
        assert_eq!(e.code(), "no_run_as_user");
        assert_eq!(e.diagnosis().map(|d| d.code), Some("no_run_as_user"));
        assert_eq!(org.stats().grants_total("client_credentials"), 2);
        assert_eq!(env.reload(&c).await.status, ConnectorStatus::NeedsReauth);
        let h = history(&env, &c).await;
        assert_eq!(h.len(), 2, "{h:?}");
        assert!(h
            .iter()
            .all(|e| e.entry.kind == HistoryKind::Grant && e.entry.outcome == "failed"));
        assert!(h[0].entry.cause.is_some());

        // Fixed at the org: the same credentials work, and the connector is active again.
        org.set_run_as_user(Some("integration@fake-org.example"));
        let resumed = tokens.resume(&c).await.unwrap();
        assert_eq!(resumed.connector.status, ConnectorStatus::Active);
        assert_eq!(resumed.connector.credentials_version, c.credentials_version);
        assert_eq!(resumed.released, 0);
        assert_eq!(org.stats().grants_ok("client_credentials"), 1);
        let grants: Vec<_> = history(&env, &c)
            .await
            .into_iter()
            .filter(|e| e.entry.kind == HistoryKind::Grant)
            .map(|e| e.entry.outcome)
            .collect();
        assert_eq!(grants, ["ok", "failed", "failed"]);
        // The resume's token serves the next caller: no grant more.
        let t = tokens.token(&resumed.connector).await.unwrap();
        assert!(!t.refreshed);
        assert_eq!(org.stats().grants_total("client_credentials"), 3);

        // Nothing to resume any more.
        let e = tokens.resume(&resumed.connector).await.unwrap_err();
        assert_eq!(e.code(), "nothing_to_resume");
        assert!(e.is_conflict());
        assert_eq!(org.stats().grants_total("client_credentials"), 3);
    }
}

#[tokio::test]
async fn another_node_that_saw_the_refusal_serves_the_resumed_connector() {
    let org = FakeOrg::builder().run_as_user(None).start().await.unwrap();
    let env = sqlite_env().await;
    let c = env
        .connector("salesforceOauth2", cc_key(&org, json!({})))
        .await;
    let (a, b) = (env.manager(), manager(env.reopen().await, "node-b"));
    // Node b was refused and remembers it.
    assert!(b.token(&c).await.is_err());
    org.set_run_as_user(Some("integration@fake-org.example"));
    let resumed = a.resume(&env.reload(&c).await).await.unwrap();
    assert_eq!(resumed.connector.status, ConnectorStatus::Active);
    // Node b takes the token node a saved, without a grant of its own.
    let t = b.token(&resumed.connector).await.unwrap();
    assert!(!t.refreshed);
    assert_eq!(org.stats().grants_total("client_credentials"), 2);
    assert_eq!(org.stats().grants_ok("client_credentials"), 1);
}

#[tokio::test]
async fn a_revoked_connector_needs_its_credentials_not_a_resume() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let c = env
        .connector("salesforceOauth2", cc_key(&org, json!({})))
        .await;
    let tokens = env.manager();
    tokens.token(&c).await.unwrap();
    tokens.revoke(&c).await.unwrap();
    let grants = org.stats().grants_total("client_credentials");
    let e = tokens.resume(&env.reload(&c).await).await.unwrap_err();
    assert_eq!(e.code(), "credentials_required");
    assert!(e.awaits_credentials());
    assert_eq!(org.stats().grants_total("client_credentials"), grants);
    assert_eq!(env.reload(&c).await.status, ConnectorStatus::Revoked);
}
