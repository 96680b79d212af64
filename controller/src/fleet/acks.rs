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

    pub(super) fn of_host(&self, host: &str) -> Vec<Ack> {
        self.by_key
            .values()
            .filter(|a| a.host_id == host)
            .cloned()
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
