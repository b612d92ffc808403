//! The binary as a user runs it.
//!
//! One test binary in five modules: `key`, `accounts`, `serve` with `doctor`, the servers a
//! user starts to try it (`demo`, `fake-org`), and the `examples` of node configurations. Each
//! runs the built binary through `hookwarden()`.

mod accounts;
mod demo_and_fake_org;
mod examples;
mod key;
mod serve;

use assert_cmd::Command;

fn hookwarden() -> Command {
    let mut cmd = Command::cargo_bin("hookwarden").unwrap();
    // Tests must not pick up a developer's settings.
    for var in [
        "HOOKWARDEN_DATABASE",
        "HOOKWARDEN_LISTEN",
        "HOOKWARDEN_ROLE",
        "HOOKWARDEN_MASTER_KEY",
        "HOOKWARDEN_ALLOW_INSECURE_HTTP",
        "HOOKWARDEN_ALLOW_PRIVATE_NETWORKS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}
