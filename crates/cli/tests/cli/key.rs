//! `hookwarden key`: encode prints one line the API accepts and refuses what the API would;
//! check explains a line-wrapped key; decode masks the secrets of what it can read.

use predicates::prelude::*;

use crate::hookwarden;

#[test]
fn key_encode_prints_one_line_that_the_api_accepts() {
    let out = hookwarden()
        .args([
            "key",
            "encode",
            "--host",
            "acme.my.salesforce.com",
            "--client-id",
            "3MVG9abc",
            "--client-secret",
            "SecretValue-123456",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let key = text.trim();
    assert!(
        key.len() > 76,
        "long enough that base64 would have wrapped it"
    );
    hookwarden().args(["key", "check", key]).assert().success();
    hookwarden()
        .args(["key", "decode", key])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"client_secret\": \"****3456\""))
        .stdout(predicate::str::contains("SecretValue").not());
}

#[test]
fn key_encode_refuses_what_the_api_would_refuse() {
    hookwarden()
        .args([
            "key",
            "encode",
            "--host",
            "login.salesforce.com",
            "--client-id",
            "x",
            "--client-secret",
            "SecretValue-123456",
        ])
        .assert()
        .code(1)
        // Nothing a `KEY=$(...)` could take for a key.
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "key_client_credentials_on_login_host",
        ))
        .stderr(predicate::str::contains("my.salesforce.com"));
    hookwarden()
        .args([
            "key",
            "encode",
            "--host",
            "acme.my.salesforce.com",
            "--client-id",
            "x",
        ])
        .assert()
        .failure();
    hookwarden()
        .args([
            "key",
            "encode",
            "--client-id",
            "x",
            "--client-secret",
            "SecretValue-123456",
            "--connector",
            "my-erp",
            "--field",
            "token_url=https://auth.example.com/token",
            "--field",
            "session_timeout_s=900",
        ])
        .assert()
        .success();
}

#[test]
fn key_check_explains_a_line_wrapped_key_and_rejects_garbage() {
    let key = String::from_utf8(
        hookwarden()
            .args([
                "key",
                "encode",
                "--host",
                "login.salesforce.com",
                "--client-id",
                "3MVG9abcdefghijklmnopqrstuvwxyz",
                "--refresh-token",
                "5Aep861-refresh-token-value-abcdefghij",
            ])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap();
    let wrapped: String = key
        .trim()
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    hookwarden()
        .args(["key", "check", "-"])
        .write_stdin(wrapped)
        .assert()
        .success()
        .stdout(predicate::str::contains("line break"));
    hookwarden()
        .args(["key", "check", "%%%not-base64%%%"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("key_not_base64"))
        .stdout(predicate::str::contains("fix:"));
    // decode shows what it can of a rejected key, secrets masked.
    let no_client_id = "eyJob3N0IjoibG9naW4uc2FsZXNmb3JjZS5jb20iLCJyZWZyZXNoX3Rva2VuIjoiNUFlcDg2MXZ4eHhRNjN4cTcwbzl1c0R6In0";
    hookwarden()
        .args(["key", "decode", no_client_id])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("login.salesforce.com"))
        .stdout(predicate::str::contains("5Aep861vxxxQ63xq70o9usDz").not())
        .stderr(predicate::str::contains("key_missing_client_id"));
}

/// A connector of its own name follows the salesforce preset's rules with `--preset`, as the
/// API's `preset` does; without it, its name makes it generic (which needs `token_url`).
#[test]
fn key_check_follows_the_preset_given() {
    let key = hookwarden()
        .args([
            "key",
            "encode",
            "--host",
            "acme.my.salesforce.com",
            "--client-id",
            "3MVG9abc",
            "--client-secret",
            "SecretValue-123456",
        ])
        .output()
        .unwrap();
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    hookwarden()
        .args(["key", "check", &key, "--connector", "acmeProd"])
        .assert()
        .failure()
        .stdout(predicate::str::contains("token_url"));
    hookwarden()
        .args([
            "key",
            "check",
            &key,
            "--connector",
            "acmeProd",
            "--preset",
            "salesforce",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "acme.my.salesforce.com/services/oauth2/token",
        ));
}

/// Secrets need not be typed on the command line (where the shell's history keeps them): a
/// file, or standard input with `-`; the key is the same as with the flag.
#[test]
fn key_encode_reads_secrets_from_a_file_or_standard_input() {
    let args = |extra: &[&str]| {
        let mut a = vec![
            "key",
            "encode",
            "--host",
            "acme.my.salesforce.com",
            "--client-id",
            "3MVG9abc",
        ];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let stdout = |out: std::process::Output| String::from_utf8(out.stdout).unwrap();
    let flag = stdout(
        hookwarden()
            .args(args(&["--client-secret", "SecretValue-123456"]))
            .output()
            .unwrap(),
    );
    let piped = stdout(
        hookwarden()
            .args(args(&["--client-secret-file", "-"]))
            .write_stdin("SecretValue-123456\n")
            .output()
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "SecretValue-123456\n").unwrap();
    let from_file = stdout(
        hookwarden()
            .args(args(&["--client-secret-file", file.to_str().unwrap()]))
            .output()
            .unwrap(),
    );
    assert!(!flag.trim().is_empty());
    assert_eq!(piped, flag);
    assert_eq!(from_file, flag);
    hookwarden()
        .args(args(&["--client-secret-file", "/no/such/file"]))
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("--client-secret-file"));
}
