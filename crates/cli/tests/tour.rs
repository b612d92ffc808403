//! The README's five-minute tour, run as it is written against `hookwarden serve --demo`, so that
//! the first thing a newcomer follows cannot rot.
//!
//! Each command of the tour's `sh` blocks (but the two that start the demo and keep its key,
//! which the test does itself) runs in one bash, in order, with `cargo run -q -p hookwarden --`
//! as the test's own binary and the demo's addresses in place of 127.0.0.1:8080 and :8081. A
//! command must exit 0, or non-zero where its comment says `(exits 1)`; a comment line `# → text`
//! under a command is what it prints, and the command is run again (the server works in the
//! background) until it does, for up to 20 seconds.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const README: &str = include_str!("../../../README.md");

/// One command of the tour.
#[derive(Debug)]
struct Step {
    text: String,
    expect_failure: bool,
    /// What its output must contain (the `# → ` line under it, up to a `...`).
    prints: Option<String>,
}

fn tour_steps() -> Vec<Step> {
    let section = README
        .split_once("\n## A five-minute tour\n")
        .expect("the README has its tour")
        .1;
    let section = section.split("\n## ").next().unwrap();
    let mut steps: Vec<Step> = Vec::new();
    let mut blocks = section.split("```sh\n").skip(1);
    for block in blocks.by_ref() {
        let block = block.split("```").next().unwrap();
        // The demo is started, and its key and metrics token kept, by the test.
        if block.contains("serve --demo") || block.contains("export KEY=hwk_...") {
            continue;
        }
        let mut pending = String::new();
        for line in block.lines() {
            if pending.is_empty() && line.trim_start().starts_with('#') {
                if let (Some(text), Some(last)) = (line.strip_prefix("# → "), steps.last_mut()) {
                    if last.prints.is_none() {
                        let text = text.split("...").next().unwrap().trim_end();
                        last.prints = Some(text.to_owned());
                    }
                }
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            pending.push_str(line);
            pending.push('\n');
            if !line.ends_with('\\') {
                steps.push(Step {
                    expect_failure: pending.contains("(exits 1)"),
                    text: std::mem::take(&mut pending),
                    prints: None,
                });
            }
        }
        assert!(pending.is_empty(), "a command ends with '\\': {pending}");
    }
    steps
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The tour's bash: each step through `step MODE EXPECTED COMMAND`.
const RUNNER: &str = r#"
step() {
  local mode=$1 expected=$2 cmd=$3 out status i
  for i in $(seq 1 80); do
    if [ "$mode" = assign ]; then
      # An assignment keeps its variable for the steps after it: run in this shell.
      out=""; eval "$cmd"; status=$?
    else
      out=$(eval "$cmd" 2>&1); status=$?
    fi
    if { [ "$mode" = fail ] && [ $status -ne 0 ]; } || { [ "$mode" != fail ] && [ $status -eq 0 ]; }; then
      if [ -z "$expected" ] || grep -qF -- "$expected" <<<"$out"; then
        printf '%s\n' "$out"
        return 0
      fi
    fi
    sleep 0.25
  done
  printf 'TOUR STEP FAILED (exit %s, wanted %s, output wanted: %s):\n%s\n--- its output:\n%s\n' \
    "$status" "$mode" "$expected" "$cmd" "$out" >&2
  exit 1
}
"#;

/// Quote `s` for bash, single quotes.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn the_readme_tour_runs_as_written_against_the_demo() {
    let steps = tour_steps();
    assert!(steps.len() > 20, "the tour lost its commands: {steps:?}");
    let dir = tempfile::tempdir().unwrap();
    let (api, org) = (free_addr(), free_addr());
    let hw = env!("CARGO_BIN_EXE_hookwarden");
    let mut child = Command::new(hw)
        .args([
            "serve",
            "--demo",
            "--listen",
            &api,
            "--demo-org-listen",
            &org,
        ])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .env_remove("HOOKWARDEN_DATABASE")
        .env_remove("HOOKWARDEN_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let demo = Demo(child);
    let (mut key, mut metrics_token) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(k) = line.split("API key (account \"demo\"): ").nth(1) {
            key = Some(k.trim().to_owned());
        }
        if let Some(t) = line.split("metrics token: ").nth(1) {
            metrics_token = Some(t.trim().to_owned());
        }
        if key.is_some() && metrics_token.is_some() {
            break;
        }
    }
    let key = key.expect("the demo printed its API key");
    let metrics_token = metrics_token.expect("the demo printed its metrics token");

    let mut script = String::from("set -u\n");
    script.push_str(RUNNER);
    for s in &steps {
        let text = s
            .text
            .replace("cargo run -q -p hookwarden --", "\"$HW\"")
            .replace("127.0.0.1:8080", &api)
            .replace("127.0.0.1:8081", &org);
        let first = text.trim_start();
        let is_assignment = first.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        let mode = match (s.expect_failure, is_assignment) {
            (true, _) => "fail",
            (false, true) => "assign",
            (false, false) => "ok",
        };
        script.push_str(&format!(
            "step {mode} {} {}\n",
            quoted(s.prints.as_deref().unwrap_or("")),
            quoted(text.trim_end())
        ));
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("HW", hw)
        .env("KEY", &key)
        .env("METRICS_TOKEN", &metrics_token)
        .env("HOOKWARDEN_API_KEY", &key)
        .env("HOOKWARDEN_SERVER", format!("http://{api}"))
        .output()
        .expect("bash runs");
    drop(demo);
    assert!(
        out.status.success(),
        "{}\n(stdout of the steps before it:)\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // What the tour says happened did: the held delivery went out once it was resumed.
    assert!(text.contains("held deliveries released: 1"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("pkg-5") && l.contains("delivered")),
        "{text}"
    );
}
