//! What the bench measures with: memory, the CPU time of this process, of hookwarden nodes and
//! of PostgreSQL, the machine's idle share, and the statistics of a phase's rounds.

pub(crate) fn rss_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time this process has used (user + system), in seconds: per delivery, the figure that
/// other load on a shared machine disturbs least.
pub(crate) fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The fields after the command name, which is in parentheses.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

/// The middle of an odd number of rates (the upper middle of an even number): the figure of a
/// phase run several times, so that one lucky or unlucky run on a shared VM does not decide it.
pub(crate) fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(|a, b| a.total_cmp(b));
    rates.get(rates.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The `p` quantile of sorted values (NaN for none).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// User + system CPU seconds in a `/proc/<pid>/stat`, with the reaped children's time too when
/// `children` (the postmaster's: a backend that exited has its time added there).
fn stat_cpu_seconds(pid: u32, children: bool) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    let mut ticks = field(11)? + field(12)?;
    if children {
        ticks += field(13)? + field(14)?;
    }
    Some(ticks / 100.0)
}

/// The CPU seconds of every PostgreSQL server process on this machine (postmaster, backends,
/// WAL writer, checkpointer, ...), backends that have exited included through the postmaster.
fn postgres_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut total = 0.0;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim_end() != "postgres" {
            continue;
        }
        // The postmaster is the postgres process whose parent is not a postgres process.
        let parent_is_postgres = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let ppid = s.rsplit_once(')')?.1.split_whitespace().nth(1)?.to_owned();
                std::fs::read_to_string(format!("/proc/{ppid}/comm")).ok()
            })
            .is_some_and(|c| c.trim_end() == "postgres");
        total += stat_cpu_seconds(pid, !parent_is_postgres).unwrap_or(0.0);
    }
    total
}

/// The machine's CPU time from `/proc/stat`, in ticks: (all, idle + iowait, steal).
fn machine_ticks() -> (f64, f64, f64) {
    let line = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = line
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0.0);
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    (f.iter().take(8).sum(), at(3) + at(4), at(7))
}

/// Who is measured: this process always; node processes and PostgreSQL's when there are some.
#[derive(Clone, Default)]
pub(crate) struct Meter {
    pub(crate) nodes: Vec<u32>,
    pub(crate) postgres: bool,
}

/// CPU seconds used so far, and the machine's ticks.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    bench: f64,
    nodes: f64,
    postgres: f64,
    machine: (f64, f64, f64),
}

/// A phase's cost: µs of CPU per delivery by whom, and the share of the machine that sat idle
/// (or was stolen by the hypervisor).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Usage {
    pub(crate) bench_us: f64,
    pub(crate) nodes_us: f64,
    pub(crate) postgres_us: f64,
    pub(crate) idle: f64,
    pub(crate) steal: f64,
}

impl Meter {
    pub(crate) fn sample(&self) -> Sample {
        Sample {
            bench: cpu_seconds(),
            nodes: self
                .nodes
                .iter()
                .filter_map(|pid| stat_cpu_seconds(*pid, false))
                .sum(),
            postgres: if self.postgres {
                postgres_cpu_seconds()
            } else {
                0.0
            },
            machine: machine_ticks(),
        }
    }

    /// Only this process is measured (hookwarden in it, on SQLite).
    pub(crate) fn is_in_process(&self) -> bool {
        self.nodes.is_empty() && !self.postgres
    }
}

impl Sample {
    /// From this sample to `later`, per delivery of `n`.
    pub(crate) fn usage_until(&self, later: &Sample, n: usize) -> Usage {
        let per = |a: f64, b: f64| (b - a) * 1e6 / n as f64;
        let all = (later.machine.0 - self.machine.0).max(1.0);
        Usage {
            bench_us: per(self.bench, later.bench),
            nodes_us: per(self.nodes, later.nodes),
            postgres_us: per(self.postgres, later.postgres),
            idle: (later.machine.1 - self.machine.1) / all,
            steal: (later.machine.2 - self.machine.2) / all,
        }
    }
}
