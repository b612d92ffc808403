//! The configuration's layering, its defaults and what it refuses; no key printed.
// figment's Jail closures return figment's own (large) error type; that is its API, not ours.
#![allow(clippy::result_large_err)]
use super::*;

#[test]
fn defaults_then_file_then_env_then_flags() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "hw.toml",
            "listen = \"127.0.0.1:9000\"\ndatabase = \"sqlite://from-file.db\"\nallow_private_networks = [\"10.0.0.0/8\"]\n",
        )?;
        let file = Some(Path::new("hw.toml"));
        let c = Config::load(file, &Overrides::default()).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.database, "sqlite://from-file.db");
        assert!(!c.allow_insecure_http);

        jail.set_env("HOOKWARDEN_DATABASE", "sqlite://from-env.db");
        jail.set_env("HOOKWARDEN_ALLOW_INSECURE_HTTP", "true");
        jail.set_env("HOOKWARDEN_HISTORY_RETENTION_DAYS", "7");
        jail.set_env("HOOKWARDEN_ALLOW_PRIVATE_NETWORKS", "127.0.0.0/8,::1/128");
        // Not a setting: belongs to the CLI client, and must not break the server.
        jail.set_env("HOOKWARDEN_API_KEY", "hwk_x");
        let c = Config::load(file, &Overrides::default()).unwrap();
        assert_eq!(c.database, "sqlite://from-env.db");
        assert!(c.allow_insecure_http);
        assert_eq!(c.history_retention_days, 7);
        let s = c.settings().unwrap();
        assert_eq!(s.address_policy.allowed.len(), 2);

        let c = Config::load(
            file,
            &Overrides {
                listen: Some("127.0.0.1:9100".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9100");
        assert_eq!(c.database, "sqlite://from-env.db");
        Ok(())
    });
}

#[test]
fn runtime_threads_default_to_one_per_core_and_are_bounded() {
    figment::Jail::expect_with(|jail| {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.runtime_threads().unwrap(), None);

        jail.set_env("HOOKWARDEN_RUNTIME_THREADS", "1");
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.runtime_threads().unwrap(), Some(1));
        c.settings().unwrap();

        jail.set_env("HOOKWARDEN_RUNTIME_THREADS", "5000");
        let c = Config::load(None, &Overrides::default()).unwrap();
        let e = c.settings().unwrap_err().to_string();
        assert!(
            e.contains("runtime_threads = 5000") && e.contains("0 (one per core) to 1024"),
            "{e}"
        );

        jail.set_env("HOOKWARDEN_RUNTIME_THREADS", "two");
        let e = Config::load(None, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.to_lowercase().contains("runtime_threads"), "{e}");
        Ok(())
    });
}

#[test]
fn worker_niceness_applies_to_sqlite_only_and_is_bounded() {
    figment::Jail::expect_with(|jail| {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert!(c.database.starts_with("sqlite:"));
        assert_eq!(c.runtime_niceness().unwrap(), 5);

        jail.set_env("HOOKWARDEN_WORKER_NICENESS", "0");
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.runtime_niceness().unwrap(), 0);

        jail.set_env("HOOKWARDEN_WORKER_NICENESS", "7");
        jail.set_env("HOOKWARDEN_DATABASE", "postgres://db.internal/hookwarden");
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(
            c.runtime_niceness().unwrap(),
            0,
            "PostgreSQL: no writer thread here"
        );

        jail.set_env("HOOKWARDEN_WORKER_NICENESS", "20");
        let c = Config::load(None, &Overrides::default()).unwrap();
        let e = c.settings().unwrap_err().to_string();
        assert!(
            e.contains("worker_niceness = 20") && e.contains("0 (normal priority) to 19"),
            "{e}"
        );

        jail.set_env("HOOKWARDEN_WORKER_NICENESS", "-1");
        let e = Config::load(None, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.to_lowercase().contains("worker_niceness"), "{e}");
        Ok(())
    });
}

#[test]
fn unknown_settings_in_a_file_are_named() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("hw.toml", "listne = \"127.0.0.1:9000\"\n")?;
        let err = Config::load(Some(Path::new("hw.toml")), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
        Ok(())
    });
}

#[test]
fn the_embedded_defaults_are_the_documented_ones() {
    let c = Config::defaults();
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert_eq!(c.database, "sqlite://hookwarden.db");
    assert!(!c.allow_insecure_http);
    assert!(c.settings().unwrap().address_policy.allowed.is_empty());
    let s = c.settings().unwrap();
    assert_eq!(s.limits, Limits::default());
    assert_eq!(
        s.limits.api_rate_per_s, 0,
        "off: the bench posts with one key"
    );
    assert_eq!(s.limits.auth_failures_per_minute, 20);
    assert_eq!(s.limits.max_connectors_per_account, 1000);
    assert_eq!(s.limits.max_keys_per_account, 100);
    assert_eq!(s.limits.max_pending_authorizations, 100);
    assert_eq!(s.limits.api_timeout, Duration::from_secs(60));
    assert_eq!(s.limits.api_max_concurrency, 512);
    assert!(s.metrics.listen.is_none() && s.metrics.token.is_none());
    assert_eq!(s.governance, Governance::default());
    assert_eq!(
        (
            s.governance.secret_max_age_days,
            s.governance.keepalive_days
        ),
        (90, 7)
    );
}

#[test]
fn governance_loads_from_file_and_env() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("hw.toml", "secret_max_age_days = 30\nkeepalive_days = 0\n")?;
        let file = Some(Path::new("hw.toml"));
        let s = Config::load(file, &Overrides::default())
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(
            s.governance,
            Governance {
                secret_max_age_days: 30,
                keepalive_days: 0
            }
        );
        jail.set_env("HOOKWARDEN_SECRET_MAX_AGE_DAYS", "45");
        jail.set_env("HOOKWARDEN_KEEPALIVE_DAYS", "3");
        let s = Config::load(file, &Overrides::default())
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(
            s.governance,
            Governance {
                secret_max_age_days: 45,
                keepalive_days: 3
            }
        );
        Ok(())
    });
}

#[test]
fn limits_and_metrics_access_load_from_file_and_env() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "hw.toml",
            "api_rate_per_s = 50\napi_burst = 100\nmax_keys_per_account = 5\n\
             metrics_listen = \"127.0.0.1:9464\"\napi_timeout_s = 30\n",
        )?;
        let file = Some(Path::new("hw.toml"));
        let s = Config::load(file, &Overrides::default())
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!((s.limits.api_rate_per_s, s.limits.api_burst), (50, 100));
        assert_eq!(s.limits.max_keys_per_account, 5);
        assert_eq!(s.limits.api_timeout, Duration::from_secs(30));
        assert_eq!(s.metrics.listen, Some("127.0.0.1:9464".parse().unwrap()));

        for (var, value) in [
            ("HOOKWARDEN_API_RATE_PER_S", "7"),
            ("HOOKWARDEN_API_BURST", "9"),
            ("HOOKWARDEN_AUTH_FAILURES_PER_MINUTE", "3"),
            ("HOOKWARDEN_MAX_CONNECTORS_PER_ACCOUNT", "11"),
            ("HOOKWARDEN_MAX_KEYS_PER_ACCOUNT", "12"),
            ("HOOKWARDEN_MAX_PENDING_AUTHORIZATIONS", "13"),
            ("HOOKWARDEN_API_TIMEOUT_S", "14"),
            ("HOOKWARDEN_API_MAX_CONCURRENCY", "15"),
            ("HOOKWARDEN_METRICS_LISTEN", "127.0.0.1:9999"),
            ("HOOKWARDEN_METRICS_TOKEN", "0123456789abcdef-token"),
        ] {
            jail.set_env(var, value);
        }
        let s = Config::load(file, &Overrides::default())
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(
            s.limits,
            Limits {
                api_rate_per_s: 7,
                api_burst: 9,
                auth_failures_per_minute: 3,
                max_connectors_per_account: 11,
                max_keys_per_account: 12,
                max_pending_authorizations: 13,
                api_timeout: Duration::from_secs(14),
                api_max_concurrency: 15,
            }
        );
        assert_eq!(s.metrics.listen, Some("127.0.0.1:9999".parse().unwrap()));
        use secrecy::ExposeSecret;
        assert_eq!(
            s.metrics
                .token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            Some("0123456789abcdef-token".to_owned())
        );

        jail.set_env("HOOKWARDEN_METRICS_TOKEN", "short");
        let e = Config::load(file, &Overrides::default())
            .unwrap()
            .settings()
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics_token") && e.contains("16"), "{e}");
        jail.set_env("HOOKWARDEN_METRICS_TOKEN", "");
        jail.set_env("HOOKWARDEN_METRICS_LISTEN", "nowhere");
        let e = Config::load(file, &Overrides::default())
            .unwrap()
            .settings()
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics_listen = \"nowhere\""), "{e}");
        Ok(())
    });
}

#[test]
fn a_ring_of_master_keys_from_env_or_file_and_master_key_must_agree_with_it() {
    let (new, old) = (MasterKey::generate(), MasterKey::generate());
    let (new64, old64) = (new.to_base64(), old.to_base64());
    figment::Jail::expect_with(|jail| {
        let ids = |c: &Config| match c.settings().unwrap().master_key {
            MasterKeySource::Ring(r) => r.keys().iter().map(MasterKey::id).collect::<Vec<_>>(),
            MasterKeySource::Given(k) => vec![k.id()],
            MasterKeySource::FileBesideDatabase => vec![],
        };
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(ids(&c), Vec::<u8>::new(), "the key file by default");

        // A list in a file.
        jail.create_file(
            "hw.toml",
            &format!("master_keys = [\"{old64}\", \"{new64}\"]\n"),
        )?;
        let c = Config::load(Some(Path::new("hw.toml")), &Overrides::default()).unwrap();
        assert_eq!(ids(&c), vec![old.id(), new.id()]);

        jail.set_env("HOOKWARDEN_MASTER_KEYS", format!("{new64},{old64}"));
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(ids(&c), vec![new.id(), old.id()]);

        // master_key too: fine when it is the sealing key, refused otherwise.
        jail.set_env("HOOKWARDEN_MASTER_KEY", &new64);
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(ids(&c), vec![new.id(), old.id()]);
        jail.set_env("HOOKWARDEN_MASTER_KEY", &old64);
        let e = Config::load(None, &Overrides::default())
            .unwrap()
            .settings()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not the first key of master_keys") && e.contains("remove master_key"),
            "{e}"
        );

        jail.set_env("HOOKWARDEN_MASTER_KEYS", format!("{new64},AAAA"));
        let e = Config::load(None, &Overrides::default())
            .unwrap()
            .settings()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("master_keys") && e.contains("key 2 of the list"),
            "{e}"
        );
        Ok(())
    });
}

#[test]
fn no_master_key_nor_metrics_token_is_printed_or_serialized() {
    let (a, b) = (MasterKey::generate(), MasterKey::generate());
    figment::Jail::expect_with(|jail| {
        jail.set_env("HOOKWARDEN_MASTER_KEY", a.to_base64());
        jail.set_env(
            "HOOKWARDEN_MASTER_KEYS",
            format!("{},{}", a.to_base64(), b.to_base64()),
        );
        jail.set_env(
            "HOOKWARDEN_DATABASE",
            "postgres://app:Pa55word@db.internal/hw",
        );
        jail.set_env("HOOKWARDEN_METRICS_TOKEN", "metrics-token-0123456789abcdef");
        let c = Config::load(None, &Overrides::default()).unwrap();
        let settings = c.settings().unwrap();
        let flags = Overrides {
            database: Some("postgres://app:Pa55word@db.internal/hw".into()),
            ..Overrides::default()
        };
        let debug = format!("{c:?} {settings:?} {flags:?}");
        assert!(
            !debug.contains("Pa55word") && debug.contains("postgres://app:***@db.internal/hw"),
            "{debug}"
        );
        let shown = format!(
            "{c:?} {c:#?} {settings:?} {}",
            serde_json::to_string(&c).unwrap()
        );
        for key in [&a, &b] {
            let b64 = key.to_base64();
            assert!(
                !shown.contains(&b64) && !shown.contains(&b64[..20]),
                "{shown}"
            );
        }
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(!shown.contains("metrics-token-0123"), "{shown}");
        assert!(settings.metrics.token.is_some());

        // A value that is no key: the error names the setting, never the value.
        jail.set_env("HOOKWARDEN_MASTER_KEYS", "");
        jail.set_env("HOOKWARDEN_MASTER_KEY", "123456789012345");
        let e = match Config::load(None, &Overrides::default()) {
            Ok(c) => c.settings().unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(
            !e.contains("123456789012345") && e.contains("master_key"),
            "{e}"
        );
        Ok(())
    });
}

#[test]
fn role_defaults_to_all_and_layers_file_env_flag() {
    figment::Jail::expect_with(|jail| {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.settings().unwrap().role, Role::All);

        jail.create_file("node.toml", "role = \"api\"\n")?;
        let file = Some(Path::new("node.toml"));
        let c = Config::load(file, &Overrides::default()).unwrap();
        assert_eq!(c.settings().unwrap().role, Role::Api, "the file's role");

        jail.set_env("HOOKWARDEN_ROLE", "worker");
        let c = Config::load(file, &Overrides::default()).unwrap();
        assert_eq!(c.settings().unwrap().role, Role::Worker, "env over file");

        let flag = Overrides {
            role: Some("all".into()),
            ..Overrides::default()
        };
        let c = Config::load(file, &flag).unwrap();
        assert_eq!(c.settings().unwrap().role, Role::All, "flag over env");

        jail.set_env("HOOKWARDEN_ROLE", "both");
        let e = Config::load(file, &Overrides::default())
            .unwrap()
            .settings()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("role = \"both\"") && e.contains("\"api\"") && e.contains("\"worker\""),
            "{e}"
        );
        Ok(())
    });
}

#[test]
fn roles_other_than_all_need_postgres() {
    let sqlite = "sqlite://hookwarden.db";
    assert_eq!(Role::All.check_database(sqlite), Ok(()));
    for role in [Role::Api, Role::Worker] {
        let e = role.check_database(sqlite).unwrap_err().to_string();
        assert!(
            e.contains(&format!("role {role} needs PostgreSQL")) && e.contains("role all"),
            "{e}"
        );
        assert_eq!(role.check_database("postgres://db.internal/hw"), Ok(()));
    }
}

#[test]
fn the_delivery_lease_defaults_to_120_s_and_must_outlast_two_requests() {
    figment::Jail::expect_with(|jail| {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(
            c.settings().unwrap().delivery_lease,
            Duration::from_secs(120)
        );
        jail.set_env("HOOKWARDEN_DELIVERY_LEASE_S", "40");
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(
            c.settings().unwrap().delivery_lease,
            Duration::from_secs(40)
        );
        for bad in ["30", "3601"] {
            jail.set_env("HOOKWARDEN_DELIVERY_LEASE_S", bad);
            let c = Config::load(None, &Overrides::default()).unwrap();
            let e = c.settings().unwrap_err().to_string();
            assert!(
                e.contains("delivery_lease_s") && e.contains("35 to 3600"),
                "{e}"
            );
        }
        Ok(())
    });
}

#[test]
fn database_max_connections_sizes_the_postgresql_pool_within_bounds() {
    figment::Jail::expect_with(|jail| {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(
            c.settings().unwrap().store.pg_max_connections,
            hookwarden_store::DEFAULT_PG_MAX_CONNECTIONS
        );
        jail.set_env("HOOKWARDEN_DATABASE_MAX_CONNECTIONS", "40");
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.settings().unwrap().store.pg_max_connections, 40);
        for bad in ["4", "1001"] {
            jail.set_env("HOOKWARDEN_DATABASE_MAX_CONNECTIONS", bad);
            let c = Config::load(None, &Overrides::default()).unwrap();
            let e = c.settings().unwrap_err().to_string();
            assert!(
                e.contains("database_max_connections") && e.contains("5 to 1000"),
                "{e}"
            );
        }
        Ok(())
    });
}
