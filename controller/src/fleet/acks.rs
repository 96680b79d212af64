//! Acknowledgements: drift an operator has seen and accepted for a while. Kept by the fleet,
//! persisted in the store, logged in the event log.

use std::collections::BTreeMap;

use crate::model::Ack;

/// Acknowledgements in force, by (host, resource).
#[derive(Debug, Default)]
pub(super) struct Acks {
    by_key: BTreeMap<(String, String), Ack>,
}

impl Acks {
    pub(super) fn new(list: Vec<Ack>) -> Self {
        Self {
            by_key: list
                .into_iter()
                .map(|a| ((a.host_id.clone(), a.resource.clone()), a))
                .collect(),
        }
    }

    pub(super) fn put(&mut self, ack: Ack) {
        self.by_key
            .insert((ack.host_id.clone(), ack.resource.clone()), ack);
    }

    pub(super) fn remove(&mut self, host: &str, resource: &str) -> Option<Ack> {
        self.by_key.remove(&(host.to_owned(), resource.to_owned()))
    }

    pub(super) fn get(&self, host: &str, resource: &str) -> Option<&Ack> {
        self.by_key.get(&(host.to_owned(), resource.to_owned()))
    }

    /// A host's acknowledgements: those under its name, side by side in the map (a listing
    /// of every host asks for each host's, so not a walk over every acknowledgement).
    pub(super) fn of_host(&self, host: &str) -> Vec<Ack> {
        self.by_key
            .range((host.to_owned(), String::new())..)
            .take_while(|((h, _), _)| h == host)
            .map(|(_, a)| a.clone())
            .collect()
    }

    pub(super) fn all(&self) -> Vec<Ack> {
        self.by_key.values().cloned().collect()
    }

    /// Takes out the acknowledgements that ran out at `now_ms`.
    pub(super) fn take_expired(&mut self, now_ms: i64) -> Vec<Ack> {
        let expired: Vec<(String, String)> = self
            .by_key
            .iter()
            .filter(|(_, a)| !a.active(now_ms))
            .map(|(k, _)| k.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|k| self.by_key.remove(&k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(resource: &str, expires_ms: Option<i64>) -> Ack {
        Ack {
            host_id: "h".into(),
            resource: resource.into(),
            reason: "change window".into(),
            by: "alice".into(),
            at_ms: 100,
            expires_ms,
        }
    }

    #[test]
    fn a_hosts_acknowledgements_are_its_own() {
        let other = |host: &str, resource: &str| Ack {
            host_id: host.into(),
            ..ack(resource, None)
        };
        let acks = Acks::new(vec![
            other("g", "file:/z"),
            ack("file:/a", None),
            other("h2", "file:/a"),
            ack("package:nginx", None),
            other("", "file:/a"),
        ]);
        let of = |host: &str| {
            acks.of_host(host)
                .iter()
                .map(|a| format!("{}:{}", a.host_id, a.resource))
                .collect::<Vec<_>>()
        };
        assert_eq!(of("h"), ["h:file:/a", "h:package:nginx"]);
        assert_eq!(of("h2"), ["h2:file:/a"]);
        assert_eq!(of("g"), ["g:file:/z"]);
        assert!(of("i").is_empty());
    }

    #[test]
    fn expiry() {
        let mut acks = Acks::new(vec![
            ack("file:/a", Some(200)),
            ack("file:/b", None),
            ack("file:/c", Some(300)),
        ]);
        assert!(acks.take_expired(199).is_empty());
        assert_eq!(
            acks.take_expired(200)
                .iter()
                .map(|a| a.resource.as_str())
                .collect::<Vec<_>>(),
            ["file:/a"]
        );
        assert_eq!(acks.of_host("h").len(), 2);
        assert_eq!(
            acks.take_expired(i64::MAX - 1).len(),
            1,
            "no expiry never runs out"
        );
        assert_eq!(
            acks.all()
                .iter()
                .map(|a| a.resource.as_str())
                .collect::<Vec<_>>(),
            ["file:/b"]
        );
    }
}
