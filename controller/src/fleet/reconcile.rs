//! Turns a fresh evaluation of one declared path into drift events, against what was open.
//! Pure.

use crate::drift::DriftItem;
use crate::model::DriftRecord;

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Reconciled {
    /// What is open after this evaluation.
    pub(super) open: Vec<DriftRecord>,
    pub(super) opened: Vec<DriftRecord>,
    /// Still open, with a new expected or actual value.
    pub(super) changed: Vec<DriftRecord>,
    pub(super) resolved: Vec<DriftRecord>,
}

/// New items open at `now_ms`; items still present keep the time they opened; items gone are
/// resolved. An item is identified by its resource and attribute.
pub(super) fn reconcile(old: Vec<DriftRecord>, new: Vec<DriftItem>, now_ms: i64) -> Reconciled {
    let mut r = Reconciled::default();
    for item in new {
        let previous = old
            .iter()
            .find(|o| o.resource == item.resource && o.attribute == item.attribute);
        let record = DriftRecord {
            since_ms: previous.map_or(now_ms, |p| p.since_ms),
            resource: item.resource,
            attribute: item.attribute,
            expected: item.expected,
            actual: item.actual,
            declared_at: item.declared_at,
        };
        match previous {
            None => r.opened.push(record.clone()),
            Some(p) if p.expected != record.expected || p.actual != record.actual => {
                r.changed.push(record.clone())
            }
            Some(_) => {}
        }
        r.open.push(record);
    }
    r.resolved = old
        .into_iter()
        .filter(|o| {
            !r.open
                .iter()
                .any(|n| n.resource == o.resource && n.attribute == o.attribute)
        })
        .collect();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(attribute: &str, actual: &str) -> DriftItem {
        DriftItem {
            resource: "file:/etc/a".into(),
            attribute: attribute.into(),
            expected: "x".into(),
            actual: actual.into(),
            declared_at: "m.yaml:4".into(),
        }
    }

    fn record(attribute: &str, actual: &str, since_ms: i64) -> DriftRecord {
        let i = item(attribute, actual);
        DriftRecord {
            resource: i.resource,
            attribute: i.attribute,
            expected: i.expected,
            actual: i.actual,
            since_ms,
            declared_at: i.declared_at,
        }
    }

    #[test]
    fn opened_kept_changed_and_resolved() {
        let old = vec![
            record("mode", "0600", 10),
            record("owner", "bob", 20),
            record("group", "adm", 30),
        ];
        let new = vec![
            item("mode", "0600"),
            item("owner", "eve"),
            item("sha256", "abc"),
        ];
        let r = reconcile(old, new, 99);
        assert_eq!(r.opened, [record("sha256", "abc", 99)]);
        assert_eq!(
            r.changed,
            [record("owner", "eve", 20)],
            "a change keeps the time the drift opened"
        );
        assert_eq!(r.resolved, [record("group", "adm", 30)]);
        assert_eq!(
            r.open,
            [
                record("mode", "0600", 10),
                record("owner", "eve", 20),
                record("sha256", "abc", 99)
            ]
        );
    }

    #[test]
    fn nothing_new_resolves_everything() {
        let r = reconcile(vec![record("mode", "0600", 10)], vec![], 99);
        assert_eq!(r.resolved, [record("mode", "0600", 10)]);
        assert!(r.open.is_empty() && r.opened.is_empty() && r.changed.is_empty());
    }
}
