//! What a node runs (DESIGN.md "Scale"): the API, the delivery workers, or both.

use std::fmt;

use hookwarden_core::Problem;

/// `role` (`HOOKWARDEN_ROLE`, `serve --role`). API and worker nodes scale separately on one
/// PostgreSQL database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Ingests events and answers the API and the console; runs no delivery workers, no
    /// keep-alive and no maintenance.
    Api,
    /// Delivers, refreshes (keep-alive, `credential.expiring`) and runs maintenance; answers
    /// only `/healthz` and `/metrics`.
    Worker,
    /// Both: one node does everything (the only role SQLite allows).
    #[default]
    All,
}

impl Role {
    pub const NAMES: [&'static str; 3] = ["api", "worker", "all"];

    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "api" => Some(Self::Api),
            "worker" => Some(Self::Worker),
            "all" => Some(Self::All),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Worker => "worker",
            Self::All => "all",
        }
    }

    /// This node answers the API and the console.
    pub fn serves_api(self) -> bool {
        !matches!(self, Self::Worker)
    }

    /// This node runs the delivery workers, the keep-alive and the maintenance loop.
    pub fn delivers(self) -> bool {
        !matches!(self, Self::Api)
    }

    /// A role other than `all` needs PostgreSQL: a SQLite file belongs to one process, which
    /// then has to do everything.
    pub fn check_database(self, database: &str) -> Result<(), RoleNeedsPostgres> {
        if self == Self::All || database.starts_with("postgres") {
            Ok(())
        } else {
            Err(RoleNeedsPostgres { role: self })
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `role = api` or `worker` on SQLite: refused at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", self.message(), self.fix())]
pub struct RoleNeedsPostgres {
    pub role: Role,
}

impl Problem for RoleNeedsPostgres {
    fn code(&self) -> &'static str {
        "role_needs_postgres"
    }

    fn message(&self) -> String {
        format!(
            "role {} needs PostgreSQL, and the database is SQLite: a SQLite file is served by \
             one process, which must run both the API and the delivery workers",
            self.role
        )
    }

    fn fix(&self) -> String {
        "run this node with role all (drop --role / HOOKWARDEN_ROLE), or move to PostgreSQL \
         (database = postgres://...) to run api and worker nodes separately"
            .to_owned()
    }
}
