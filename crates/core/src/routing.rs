//! Which destinations an event goes to. Every connector of the account whose `origins` include
//! the event's origin (or `*`) and whose `events` include its name takes it; the default
//! callback takes only what no connector took, and only the names it lists.

/// What routing needs to know about one destination.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub events: &'a [String],
    pub origins: &'a [String],
    /// The account's default callback (Basic key): the fallback.
    pub is_default: bool,
}

impl Destination<'_> {
    fn takes(&self, name: &str, origin: &str) -> bool {
        self.events.iter().any(|e| e == name)
            && (self.is_default || self.origins.iter().any(|o| o == "*" || o == origin))
    }
}

/// Indexes into `destinations` of those that receive an event named `name` from `origin`,
/// in the order given.
pub fn route(name: &str, origin: &str, destinations: &[Destination<'_>]) -> Vec<usize> {
    let chosen: Vec<usize> = destinations
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.is_default && d.takes(name, origin))
        .map(|(i, _)| i)
        .collect();
    if !chosen.is_empty() {
        return chosen;
    }
    destinations
        .iter()
        .position(|d| d.is_default && d.takes(name, origin))
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn connectors_by_origin_and_name_then_the_default() {
        let (sf_ev, sf_or) = (s(&["PACKAGE_COMPLETE"]), s(&["OSS"]));
        let (any_ev, any_or) = (s(&["PACKAGE_COMPLETE", "DOCUMENT_SIGNED"]), s(&["*"]));
        let (def_ev, def_or) = (s(&["PACKAGE_CREATE", "DOCUMENT_SIGNED"]), s(&["*"]));
        let d = [
            Destination {
                events: &sf_ev,
                origins: &sf_or,
                is_default: false,
            },
            Destination {
                events: &any_ev,
                origins: &any_or,
                is_default: false,
            },
            Destination {
                events: &def_ev,
                origins: &def_or,
                is_default: true,
            },
        ];
        assert_eq!(route("PACKAGE_COMPLETE", "OSS", &d), vec![0, 1]);
        assert_eq!(route("PACKAGE_COMPLETE", "WEB", &d), vec![1]);
        assert_eq!(route("DOCUMENT_SIGNED", "OSS", &d), vec![1]);
        // No connector took it: the default callback does, as it lists the name.
        assert_eq!(route("PACKAGE_CREATE", "OSS", &d), vec![2]);
        // Nobody lists it.
        assert!(route("PACKAGE_EXPIRE", "OSS", &d).is_empty());
    }
}
