//! `hookwarden accounts`: an account created prints its one API key; keys are listed by id,
//! with their names and scopes, added and revoked on the database a server would use.

use predicates::prelude::*;

use crate::hookwarden;

#[test]
fn accounts_create_prints_one_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let out = hookwarden()
        .args(["accounts", "create", "acme", "--database", &db])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.starts_with("hwk_"), "{text}");
    let second = hookwarden()
        .args(["accounts", "create", "globex", "--database", &db])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_ne!(text, String::from_utf8(second).unwrap());
    hookwarden()
        .args(["accounts", "create", "x", "--database", "mysql://nope"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("sqlite://"));
}

/// `accounts list/keys/new-key/revoke-key` on the database a server would use.
#[test]
fn api_keys_are_added_and_revoked_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hw.db").display());
    let run = |args: &[&str]| {
        let out = hookwarden()
            .args(args)
            .args(["--database", &url])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (ok, first_key, err) = run(&["accounts", "create", "acme"]);
    assert!(ok, "{err}");
    let (ok, list, err) = run(&["accounts", "list"]);
    assert!(ok, "{err}");
    // A header row, then one line per account: id, name, number of keys.
    let row: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[1..], ["acme", "1"], "{list}");
    let account_id = row[0].to_owned();
    assert!(account_id.starts_with("acc_"), "{list}");

    // By name or by id.
    let (ok, second_key, err) = run(&["accounts", "new-key", "acme"]);
    assert!(ok, "{err}");
    assert!(second_key.trim().starts_with("hwk_"));
    assert_ne!(second_key, first_key);
    let (ok, keys, err) = run(&["accounts", "keys", &account_id]);
    assert!(ok, "{err}");
    assert_eq!(keys.lines().count(), 1 + 2, "a header and two keys: {keys}");
    // Each key with its first characters, to recognise it by, and its last use.
    let header: Vec<&str> = keys
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        ["ID", "NAME", "SCOPES", "PREFIX", "CREATED", "LAST USED"],
        "{keys}"
    );
    assert!(
        keys.contains(&format!("{}…", &first_key.trim()[..10])),
        "{keys}"
    );
    assert!(keys.lines().nth(1).unwrap().ends_with("never"), "{keys}");
    assert!(
        !keys.contains(first_key.trim()) && !keys.contains(second_key.trim()),
        "never a key in full: {keys}"
    );
    let id_on = |line: usize| {
        keys.lines()
            .nth(line)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    let first_id = id_on(1);

    let (ok, out, err) = run(&["accounts", "revoke-key", "acme", &first_id]);
    assert!(ok, "{err}");
    assert!(out.contains("revoked"), "{out}");
    let (_, keys, _) = run(&["accounts", "keys", "acme"]);
    assert_eq!(keys.lines().count(), 1 + 1, "{keys}");
    let last_id = keys
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    // What cannot be done says why and what to do instead.
    let (ok, _, err) = run(&["accounts", "revoke-key", "acme", &last_id]);
    assert!(!ok);
    assert!(
        err.contains("last admin key") && err.contains("new-key"),
        "{err}"
    );
    let (ok, _, err) = run(&["accounts", "revoke-key", "acme", &first_id]);
    assert!(!ok);
    assert!(err.contains("no API key with id"), "{err}");
    let (ok, _, err) = run(&["accounts", "keys", "nobody"]);
    assert!(!ok);
    assert!(err.contains("accounts list"), "{err}");
}

/// `accounts new-key` keeps to `max_keys_per_account`, as `POST /api/keys` does, and says how
/// to make room.
#[test]
fn new_key_keeps_to_the_accounts_key_cap() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hw.db").display());
    let run = |cap: &str, args: &[&str]| {
        let out = hookwarden()
            .args(args)
            .args(["--database", &url])
            .env("HOOKWARDEN_MAX_KEYS_PER_ACCOUNT", cap)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, _, err) = run("2", &["accounts", "create", "acme"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, key, err) = run("2", &["accounts", "new-key", "acme"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(key.trim().starts_with("hwk_"), "{key}");
    let (code, out, err) = run("2", &["accounts", "new-key", "acme"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.is_empty(), "no key printed: {out}");
    assert!(
        err.contains("2 API keys")
            && err.contains("max_keys_per_account")
            && err.contains("revoke-key"),
        "{err}"
    );
    let (_, keys, _) = run("2", &["accounts", "keys", "acme"]);
    assert_eq!(keys.lines().count(), 1 + 2, "nothing written: {keys}");
    // Raised (or 0, none), it makes the key.
    let (code, _, err) = run("3", &["accounts", "new-key", "acme"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run("0", &["accounts", "new-key", "acme"]);
    assert_eq!(code, Some(0), "{err}");
}

/// `accounts create` and `accounts new-key` make admin keys unless `--scope` says otherwise;
/// `accounts keys` lists each key's name and scopes.
#[test]
fn keys_are_made_with_the_scopes_given() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hw.db").display());
    let run = |args: &[&str]| {
        let out = hookwarden()
            .args(args)
            .args(["--database", &url])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (ok, _, err) = run(&["accounts", "create", "producers", "--scope", "ingest"]);
    assert!(ok, "{err}");
    assert!(err.contains("ingest"), "{err}");
    let (ok, _, err) = run(&["accounts", "create", "acme"]);
    assert!(ok, "{err}");
    let (ok, key, err) = run(&[
        "accounts",
        "new-key",
        "acme",
        "--scope",
        "read",
        "--scope",
        "ingest",
        "--name",
        "dashboard",
    ]);
    assert!(ok, "{err}");
    assert!(key.trim().starts_with("hwk_"), "{key}");
    let (ok, _, err) = run(&["accounts", "new-key", "acme", "--scope", "ingest,admin"]);
    assert!(ok, "{err}");

    // Each row: id, name, scopes, prefix, created, last used.
    let rows = |account: &str| {
        let (ok, keys, err) = run(&["accounts", "keys", account]);
        assert!(ok, "{err}");
        let mut rows: Vec<(String, String)> = keys
            .lines()
            .skip(1)
            .map(|line| {
                let cells: Vec<&str> = line.split_whitespace().collect();
                (cells[1].to_owned(), cells[2].to_owned())
            })
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(rows("producers"), [("-".to_owned(), "ingest".to_owned())]);
    assert_eq!(
        rows("acme"),
        [
            ("-".to_owned(), "admin".to_owned()),
            ("-".to_owned(), "ingest,admin".to_owned()),
            ("dashboard".to_owned(), "ingest,read".to_owned()),
        ]
    );

    // What cannot be a scope or a name is refused, naming what can.
    let (ok, _, err) = run(&["accounts", "new-key", "acme", "--scope", "write"]);
    assert!(!ok);
    assert!(err.contains("ingest, read, admin"), "{err}");
    let (ok, _, err) = run(&["accounts", "new-key", "acme", "--name", "two\nlines"]);
    assert!(!ok);
    assert!(err.contains("name"), "{err}");
    assert_eq!(rows("acme").len(), 3, "nothing was made");
}

/// A mistyped database is said, not created empty; a name already taken is refused with what
/// to do instead.
#[test]
fn accounts_need_an_existing_database_and_unique_names() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.db");
    let db = format!("sqlite://{}", file.display());
    for args in [
        vec!["accounts", "list"],
        vec!["accounts", "keys", "acme"],
        vec!["accounts", "new-key", "acme"],
    ] {
        hookwarden()
            .args(&args)
            .args(["--database", &db])
            .assert()
            .failure()
            .stderr(predicate::str::contains("there is no database at"));
        assert!(!file.exists(), "{args:?} created the database");
    }
    hookwarden()
        .args(["accounts", "create", "acme", "--database", &db])
        .assert()
        .success();
    hookwarden()
        .args(["accounts", "create", "acme", "--database", &db])
        .assert()
        .failure()
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("exists already"))
        .stderr(predicate::str::contains("accounts new-key"));
    hookwarden()
        .args(["accounts", "list", "--database", &db])
        .assert()
        .success()
        .stdout(predicate::str::contains("acme"));
}
