//! Token state, grant leases, history and authorization-code states, on SQLite always and on
//! PostgreSQL when HOOKWARDEN_TEST_PG_URL is set.

use hookwarden_core::diagnosis::Code;
use hookwarden_core::{ConnectorStatus, Credentials, DeliveryStatus, DiagnosisView};
use hookwarden_store::{
    testing, ConnectorRecord, DeliveryFilter, GrantedTokens, HistoryKind, IngestWrite, MasterKey,
    MasterKeySource, NewConnector, NewDelivery, NewEvent, NewHistoryEntry, OAuthState, Store,
};
use secrecy::{ExposeSecret, SecretString};

async fn each_database(test: impl AsyncFn(Store, ConnectorRecord)) {
    let dir = tempfile::tempdir().unwrap();
    for url in testing::databases(dir.path()).await {
        let store = Store::open(&url, MasterKeySource::Given(MasterKey::generate()))
            .await
            .unwrap();
        let (account, _) = store.create_account("acme").await.unwrap();
        let (c, _) = store
            .upsert_connector(NewConnector {
                account_id: account.id.clone(),
                name: "salesforceOauth2".into(),
                url: "https://acme.my.salesforce.com/services/apexrest/OSS/callback".into(),
                events: vec![],
                origins: vec!["OSS".into()],
                owner: None,
                refresh_token_idle_days: None,
                settings: serde_json::json!({}),
                warnings: vec![],
                credentials: Credentials::from_storage(
                    "salesforce",
                    Some("refresh_token"),
                    SecretString::from(r#"{"client_id":"c","refresh_token":"rt-original"}"#),
                )
                .unwrap(),
            })
            .await
            .unwrap();
        test(store.clone(), c).await;
        store.close().await;
    }
}

fn granted(cv: i64, access: &str, refresh: Option<&str>) -> GrantedTokens {
    GrantedTokens {
        credentials_version: cv,
        access_token: Some(SecretString::from(access.to_owned())),
        access_expires_at: Some(2_000),
        refresh_at: Some(1_900),
        refresh_token: refresh.map(|r| SecretString::from(r.to_owned())),
        instance_url: Some("https://acme.my.salesforce.com".into()),
        scope: Some("api".into()),
        issued_at: Some(1_000),
        granted_at: chrono::Utc::now().timestamp_millis(),
    }
}

#[tokio::test]
async fn one_lease_holder_at_a_time_and_expired_leases_are_taken_over() {
    each_database(async |store, c| {
        assert!(store.acquire_grant_lease(&c.id, "a", 60_000).await.unwrap());
        assert!(!store.acquire_grant_lease(&c.id, "b", 60_000).await.unwrap());
        // The holder may renew.
        assert!(store.acquire_grant_lease(&c.id, "a", 60_000).await.unwrap());
        store.release_grant_lease(&c.id, "b").await.unwrap(); // not b's: no effect
        assert!(!store.acquire_grant_lease(&c.id, "b", 60_000).await.unwrap());
        store.release_grant_lease(&c.id, "a").await.unwrap();
        assert!(store.acquire_grant_lease(&c.id, "b", 1).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(
            store.acquire_grant_lease(&c.id, "a", 60_000).await.unwrap(),
            "expired lease"
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_lease_requests_have_one_winner() {
    each_database(async |store, c| {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (store, id) = (store.clone(), c.id.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .acquire_grant_lease(&id, &format!("n{i}"), 60_000)
                    .await
                    .unwrap()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1);
    })
    .await;
}

#[tokio::test]
async fn token_state_is_saved_by_compare_and_swap_and_sealed() {
    each_database(async |store, c| {
        assert!(store.get_token_state(&c.id).await.unwrap().is_none());
        assert!(store.acquire_grant_lease(&c.id, "a", 60_000).await.unwrap());
        let v1 = store
            .save_granted_tokens(&c.id, Some(0), &granted(1, "at-1", Some("rt-2")), "a")
            .await
            .unwrap();
        assert_eq!(v1, Some(1));
        let s = store.get_token_state(&c.id).await.unwrap().unwrap();
        assert_eq!(s.access_token.unwrap().expose_secret(), "at-1");
        assert_eq!(s.refresh_token.unwrap().expose_secret(), "rt-2");
        assert_eq!((s.version, s.credentials_version), (1, 1));
        assert_eq!(s.lease_owner, None, "saving releases the saver's lease");
        // ...and only the saver's: a lease another holder took stays with it.
        assert!(store.acquire_grant_lease(&c.id, "b", 60_000).await.unwrap());
        store
            .save_granted_tokens(&c.id, None, &granted(1, "at-1b", Some("rt-2")), "a")
            .await
            .unwrap();
        let s = store.get_token_state(&c.id).await.unwrap().unwrap();
        assert_eq!(s.lease_owner.as_deref(), Some("b"));
        store.release_grant_lease(&c.id, "b").await.unwrap();
        let v1 = Some(s.version);
        // A stale writer loses.
        let lost = store
            .save_granted_tokens(&c.id, Some(0), &granted(1, "at-x", None), "a")
            .await
            .unwrap();
        assert_eq!(lost, None);
        // No rotation: the rotated refresh token stays.
        store
            .save_granted_tokens(&c.id, v1, &granted(1, "at-2", None), "a")
            .await
            .unwrap();
        let s = store.get_token_state(&c.id).await.unwrap().unwrap();
        assert_eq!(s.refresh_token.unwrap().expose_secret(), "rt-2");
        assert_eq!(Some(s.version), v1.map(|v| v + 1));
        // New credentials: the old rotated refresh token is dropped.
        store
            .save_granted_tokens(&c.id, None, &granted(2, "at-3", None), "a")
            .await
            .unwrap();
        let s = store.get_token_state(&c.id).await.unwrap().unwrap();
        assert!(s.refresh_token.is_none());
        assert_eq!(
            (Some(s.version), s.credentials_version),
            (v1.map(|v| v + 2), 2)
        );

        store
            .record_grant_failure(&c.id, "a", Some(99), "provider_unavailable")
            .await
            .unwrap();
        let s = store.get_token_state(&c.id).await.unwrap().unwrap();
        assert_eq!((s.backoff_until, s.consecutive_failures), (Some(99), 1));
        assert_eq!(s.last_error.as_deref(), Some("provider_unavailable"));

        store.revoke_locally(&c.id, None, 3).await.unwrap().unwrap();
        let s = store.get_token_state(&c.id).await.unwrap().unwrap();
        assert!(s.access_token.is_none() && s.refresh_token.is_none());
        assert_eq!(
            Some(s.version),
            v1.map(|v| v + 3),
            "a wipe is a new version too"
        );
    })
    .await;
}

#[tokio::test]
async fn a_local_revocation_wipes_every_token_swaps_the_key_and_holds_deliveries_at_once() {
    each_database(async |store, c| {
        store
            .save_granted_tokens(&c.id, None, &granted(1, "at-1", Some("rt-rotated")), "a")
            .await
            .unwrap();
        store.commit_ingest(&[backlog(&c, 3)], 10).await.unwrap();
        // A worker holds one of them: its own outcome decides what becomes of it.
        assert_eq!(
            store
                .claim_due(20, 60_000, "n:1", 1, &[])
                .await
                .unwrap()
                .len(),
            1
        );
        let before = store.get_token_state(&c.id).await.unwrap().unwrap();

        let without = SecretString::from(r#"{"client_id":"c","grant_type":"refresh_token"}"#);
        let done = store
            .revoke_locally(&c.id, Some(&without), 30)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((done.was_revoked, done.held), (false, 2));

        let s = store.get_token_state(&c.id).await.unwrap().unwrap();
        assert!(s.access_token.is_none() && s.refresh_token.is_none());
        assert!(s.access_expires_at.is_none() && s.instance_url.is_none());
        assert_eq!(
            s.version,
            before.version + 1,
            "a grant in flight loses its CAS"
        );
        let got = store
            .get_connector(&c.account_id, &c.name)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.status, ConnectorStatus::Revoked);
        assert_eq!(
            got.credentials.stored().expose_secret(),
            without.expose_secret(),
            "the key's own refresh token is gone too"
        );
        assert_eq!(
            got.credentials_version, c.credentials_version,
            "the credentials stay the same ones, without their token"
        );
        assert_eq!(count(&store, &c, DeliveryStatus::Held).await, 2);

        // Again, with no new key: nothing else changes, and it knows it was revoked.
        let again = store
            .revoke_locally(&c.id, None, 40)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((again.was_revoked, again.held), (true, 0));
        let got = store
            .get_connector(&c.account_id, &c.name)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got.credentials.stored().expose_secret(),
            without.expose_secret()
        );

        let gone = hookwarden_core::ConnectorId::from("con_nobody".to_owned());
        assert_eq!(store.revoke_locally(&gone, None, 50).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn status_changes_only_for_the_credentials_they_were_decided_on() {
    each_database(async |store, c| {
        let old_cv = c.credentials_version;
        assert!(!store
            .set_connector_status(&c.id, ConnectorStatus::NeedsReauth, Some(old_cv + 1))
            .await
            .unwrap());
        assert!(store
            .set_connector_status(&c.id, ConnectorStatus::NeedsReauth, Some(old_cv))
            .await
            .unwrap());
        let got = store
            .get_connector(&c.account_id, &c.name)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.status, ConnectorStatus::NeedsReauth);
        assert_eq!(
            got.credentials.stored().expose_secret(),
            c.credentials.stored().expose_secret()
        );
    })
    .await;
}

fn backlog(c: &ConnectorRecord, n: usize) -> IngestWrite {
    let mut w = IngestWrite {
        account_id: c.account_id.clone(),
        idempotency: None,
        events: Vec::new(),
        deliveries: Vec::new(),
    };
    for i in 0..n {
        w.events.push(NewEvent {
            id: format!("evt-{i}").into(),
            account_id: c.account_id.clone(),
            name: "PACKAGE_COMPLETE".into(),
            origin: "OSS".into(),
            package_id: format!("pkg-{i}"),
            payload: "{}".into(),
            created_at: 10,
        });
        w.deliveries.push(NewDelivery {
            id: format!("dlv-{i}").into(),
            account_id: c.account_id.clone(),
            event_id: format!("evt-{i}").into(),
            event_name: "PACKAGE_COMPLETE".into(),
            connector_id: c.id.clone(),
            connector_name: c.name.clone(),
            package_id: format!("pkg-{i}"),
            order_key: None,
            status: DeliveryStatus::Pending,
            created_at: 10,
        });
    }
    w
}

async fn count(store: &Store, c: &ConnectorRecord, status: DeliveryStatus) -> usize {
    store
        .list_deliveries(&DeliveryFilter {
            account_id: c.account_id.clone(),
            connector_name: None,
            status: Some(status),
            package_id: None,
            since_ms: None,
            until_ms: None,
            before_seq: None,
            limit: 100,
        })
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_refusal_makes_the_connector_need_reauth_and_holds_its_waiting_deliveries_at_once() {
    each_database(async |store, c| {
        store.commit_ingest(&[backlog(&c, 3)], 10).await.unwrap();
        // A worker holds one of them: its own outcome will decide what becomes of it.
        let leased = store.claim_due(20, 60_000, "n:1", 1, &[]).await.unwrap();
        assert_eq!(leased.len(), 1);
        let status = async || {
            store
                .get_connector(&c.account_id, &c.name)
                .await
                .unwrap()
                .unwrap()
                .status
        };

        let cv = c.credentials_version;
        let refusal = DiagnosisView::from(Code::NoRunAsUser);
        let reread = async || {
            store
                .get_connector(&c.account_id, &c.name)
                .await
                .unwrap()
                .unwrap()
        };
        assert_eq!(reread().await.diagnosis(), None, "active: nothing to say");
        assert!(
            !store
                .mark_needs_reauth(&c.id, cv + 1, &refusal, 30)
                .await
                .unwrap(),
            "a refusal of other credentials changes nothing"
        );
        assert_eq!(status().await, ConnectorStatus::Active);
        assert_eq!(count(&store, &c, DeliveryStatus::Held).await, 0);

        assert!(store
            .mark_needs_reauth(&c.id, cv, &refusal, 30)
            .await
            .unwrap());
        assert_eq!(status().await, ConnectorStatus::NeedsReauth);
        assert_eq!(
            reread().await.diagnosis().as_ref(),
            Some(&refusal),
            "the refusal that moved it, in the same statement"
        );
        assert_eq!(count(&store, &c, DeliveryStatus::Held).await, 2);
        assert_eq!(count(&store, &c, DeliveryStatus::Pending).await, 1);
        assert!(
            !store
                .mark_needs_reauth(&c.id, cv, &refusal, 40)
                .await
                .unwrap(),
            "once"
        );

        store
            .set_connector_status(&c.id, ConnectorStatus::Revoked, None)
            .await
            .unwrap();
        assert!(!store
            .mark_needs_reauth(&c.id, cv, &refusal, 50)
            .await
            .unwrap());
        assert_eq!(
            status().await,
            ConnectorStatus::Revoked,
            "a revocation stays"
        );
        assert_eq!(
            reread().await.diagnosis().map(|d| d.code),
            Some("connector_revoked".to_owned()),
            "a revocation shows its own diagnosis, not the refusal before it"
        );
    })
    .await;
}

#[tokio::test]
async fn a_grant_whose_token_must_not_be_used_keeps_its_refresh_token_and_org_but_no_access_token()
{
    each_database(async |store, c| {
        let refused = GrantedTokens {
            access_token: None,
            instance_url: Some("https://other.my.salesforce.com".into()),
            ..granted(1, "unused", Some("rt-rotated"))
        };
        let v = store
            .save_granted_tokens(&c.id, None, &refused, "a")
            .await
            .unwrap();
        assert_eq!(v, Some(1));
        let s = store.get_token_state(&c.id).await.unwrap().unwrap();
        assert!(s.access_token.is_none(), "no access token to use");
        assert_eq!(s.refresh_token.unwrap().expose_secret(), "rt-rotated");
        assert_eq!(
            s.instance_url.as_deref(),
            Some("https://other.my.salesforce.com")
        );
    })
    .await;
}

#[tokio::test]
async fn a_url_outside_the_org_disables_the_connector_and_holds_its_waiting_deliveries_at_once() {
    each_database(async |store, c| {
        store.commit_ingest(&[backlog(&c, 3)], 10).await.unwrap();
        let leased = store.claim_due(20, 60_000, "n:1", 1, &[]).await.unwrap();
        assert_eq!(leased.len(), 1);
        let reread = async || {
            store
                .get_connector(&c.account_id, &c.name)
                .await
                .unwrap()
                .unwrap()
        };
        let cv = c.credentials_version;
        let outside = DiagnosisView::from(Code::UrlNotInOrg);
        assert!(
            !store
                .mark_url_not_in_org(&c.id, cv + 1, &c.url, &outside, 30)
                .await
                .unwrap(),
            "a grant of other credentials changes nothing"
        );
        assert!(
            !store
                .mark_url_not_in_org(&c.id, cv, "https://elsewhere.example/x", &outside, 30)
                .await
                .unwrap(),
            "a grant checked against another url changes nothing"
        );
        assert_eq!(reread().await.status, ConnectorStatus::Active);
        assert_eq!(count(&store, &c, DeliveryStatus::Held).await, 0);

        assert!(store
            .mark_url_not_in_org(&c.id, cv, &c.url, &outside, 30)
            .await
            .unwrap());
        let now = reread().await;
        assert_eq!(now.status, ConnectorStatus::Disabled);
        assert_eq!(now.diagnosis().as_ref(), Some(&outside));
        assert_eq!(count(&store, &c, DeliveryStatus::Held).await, 2);
        assert_eq!(count(&store, &c, DeliveryStatus::Pending).await, 1);

        store
            .set_connector_status(&c.id, ConnectorStatus::Revoked, None)
            .await
            .unwrap();
        assert!(!store
            .mark_url_not_in_org(&c.id, cv, &c.url, &outside, 40)
            .await
            .unwrap());
        assert_eq!(
            reread().await.status,
            ConnectorStatus::Revoked,
            "a revocation stays"
        );
    })
    .await;
}

#[tokio::test]
async fn a_resume_makes_the_connector_active_and_its_held_deliveries_due_at_once() {
    each_database(async |store, c| {
        store.commit_ingest(&[backlog(&c, 3)], 10).await.unwrap();
        let cv = c.credentials_version;
        let status = async || {
            store
                .get_connector(&c.account_id, &c.name)
                .await
                .unwrap()
                .unwrap()
                .status
        };
        assert_eq!(
            store.resume_connector(&c.id, cv, 20).await.unwrap(),
            None,
            "an active connector has nothing to resume"
        );

        assert!(store
            .mark_needs_reauth(&c.id, cv, &DiagnosisView::from(Code::NoRunAsUser), 30)
            .await
            .unwrap());
        assert_eq!(count(&store, &c, DeliveryStatus::Held).await, 3);
        assert_eq!(
            store.resume_connector(&c.id, cv + 1, 40).await.unwrap(),
            None,
            "a grant with other credentials resumes nothing"
        );
        assert_eq!(status().await, ConnectorStatus::NeedsReauth);
        assert_eq!(count(&store, &c, DeliveryStatus::Held).await, 3);

        assert_eq!(
            store.resume_connector(&c.id, cv, 50).await.unwrap(),
            Some(3)
        );
        assert_eq!(status().await, ConnectorStatus::Active);
        assert_eq!(count(&store, &c, DeliveryStatus::Held).await, 0);
        // Due now: the next claim takes all of them.
        assert_eq!(
            store
                .claim_due(50, 60_000, "n:1", 10, &[])
                .await
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            store.resume_connector(&c.id, cv, 60).await.unwrap(),
            None,
            "once"
        );

        // A revocation is not undone by a resume.
        assert!(store
            .mark_needs_reauth(&c.id, cv, &DiagnosisView::from(Code::NoRunAsUser), 70)
            .await
            .unwrap());
        store
            .set_connector_status(&c.id, ConnectorStatus::Revoked, None)
            .await
            .unwrap();
        assert_eq!(store.resume_connector(&c.id, cv, 80).await.unwrap(), None);
        assert_eq!(status().await, ConnectorStatus::Revoked);
    })
    .await;
}

#[tokio::test]
async fn history_pages_newest_first() {
    each_database(async |store, c| {
        for i in 0..7 {
            store
                .record_history(&NewHistoryEntry {
                    connector_id: c.id.clone(),
                    account_id: c.account_id.clone(),
                    at: 1_000 + i,
                    kind: if i % 2 == 0 {
                        HistoryKind::Refresh
                    } else {
                        HistoryKind::Revoke
                    },
                    grant_type: Some("refresh_token".into()),
                    outcome: "ok".into(),
                    http_status: Some(200),
                    error: None,
                    error_description: None,
                    diagnosis_code: None,
                    cause: None,
                    fix: None,
                    duration_ms: i,
                    excerpt: Some("é".repeat(1000)),
                })
                .await
                .unwrap();
        }
        let first = store.list_history(&c.id, 3, None).await.unwrap();
        assert_eq!(
            first.iter().map(|e| e.entry.at).collect::<Vec<_>>(),
            vec![1006, 1005, 1004]
        );
        assert!(first[0].entry.excerpt.as_ref().unwrap().len() <= 1024);
        let second = store
            .list_history(&c.id, 3, Some(&first[2].id))
            .await
            .unwrap();
        assert_eq!(
            second.iter().map(|e| e.entry.at).collect::<Vec<_>>(),
            vec![1003, 1002, 1001]
        );
        let last = store
            .list_history(&c.id, 3, Some(&second[2].id))
            .await
            .unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].entry.kind, HistoryKind::Refresh);
        assert!(store
            .list_history(&"con_other".into(), 10, None)
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

#[tokio::test]
async fn oauth_states_are_single_use_and_expire() {
    each_database(async |store, c| {
        let pending = |expires_at| OAuthState {
            connector_id: c.id.clone(),
            account_id: c.account_id.clone(),
            connector_name: c.name.clone(),
            code_verifier: SecretString::from("v".repeat(64)),
            redirect_uri: "https://h.example/oauth/callback".into(),
            expires_at,
        };
        let far = chrono::Utc::now().timestamp_millis() + 600_000;
        store
            .put_oauth_state("state-1", &pending(far))
            .await
            .unwrap();
        let got = store.take_oauth_state("state-1").await.unwrap().unwrap();
        assert_eq!(got.code_verifier.expose_secret(), &"v".repeat(64));
        assert_eq!(got.connector_name, c.name);
        assert!(
            store.take_oauth_state("state-1").await.unwrap().is_none(),
            "single use"
        );
        assert!(store.take_oauth_state("unknown").await.unwrap().is_none());
        store.put_oauth_state("state-2", &pending(1)).await.unwrap();
        assert!(
            store.take_oauth_state("state-2").await.unwrap().is_none(),
            "expired"
        );
    })
    .await;
}
