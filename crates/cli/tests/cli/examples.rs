//! The example node configurations (`examples/api-node.toml`, `examples/worker-node.toml`) as
//! an operator uses them: `hookwarden doctor --config FILE` with the database and the master key
//! ring from the environment. On the test PostgreSQL (HOOKWARDEN_TEST_PG_URL) every check
//! passes; without it the doctor is pointed at a PostgreSQL that is not there, so the file and
//! its role are still checked and only the database fails.

use hookwarden_store::MasterKey;

use crate::hookwarden;

fn example(name: &str) -> String {
    format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn each_example_node_configuration_passes_the_doctor() {
    let database = hookwarden_store::testing::fresh_postgres_url().await;
    let ring = format!(
        "{},{}",
        MasterKey::generate().to_base64(),
        MasterKey::generate().to_base64()
    );
    for (file, role, runs) in [
        ("api-node.toml", "api", "the API and the console only"),
        ("worker-node.toml", "worker", "the delivery workers only"),
    ] {
        let path = example(file);
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            assert!(
                !line.starts_with("master_key") && !line.starts_with("database"),
                "{file} must take the key ring and the database from the environment: {line}"
            );
        }
        let url = database
            .clone()
            .unwrap_or_else(|| "postgres://nobody@127.0.0.1:1/none".to_owned());
        let out = hookwarden()
            .args(["doctor", "--config", &path])
            .env("HOOKWARDEN_DATABASE", &url)
            .env("HOOKWARDEN_MASTER_KEYS", &ring)
            // The file's 0.0.0.0:8080 may be taken on a test machine; the rest is the file's.
            .env("HOOKWARDEN_LISTEN", "127.0.0.1:0")
            .env_remove("HOOKWARDEN_API_KEY")
            .env_remove("HOOKWARDEN_SERVER")
            .env_remove("HOOKWARDEN_MASTER_KEY")
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            stdout.contains("ok   config       listen 127.0.0.1:0, database postgres://"),
            "{file}: {stdout}"
        );
        assert!(
            stdout.contains(&format!("ok   role         {role}: this node runs {runs}")),
            "{file}: {stdout}"
        );
        assert!(
            stdout.contains("warn metrics      /metrics is served without a key on 0.0.0.0:9464"),
            "{file}: {stdout}"
        );
        let fails: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
        if database.is_some() {
            assert_eq!(out.status.code(), Some(0), "{file}: {stdout}");
            assert!(fails.is_empty(), "{file}: {stdout}");
            assert!(
                stdout.contains("ok   database     postgres://"),
                "{file}: {stdout}"
            );
        } else {
            assert_eq!(out.status.code(), Some(1), "{file}: {stdout}");
            assert_eq!(fails.len(), 1, "{file}: {stdout}");
            assert!(fails[0].starts_with("FAIL database"), "{file}: {stdout}");
        }
    }
}
