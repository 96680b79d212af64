//! Turns a fresh evaluation of one declared path into drift events, against what was open.
//! Pure, and linear in the items: one host's evaluation must not cost the fleet more than its
//! size (a linear search per item once froze the controller on an exclusive directory).

use std::collections::{HashMap, HashSet};

use crate::drift::DriftItem;
use crate::evidence::Evidence;
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
/// resolved. An item is identified by its resource and attribute; of two new items alike (a
/// hostile agent listing one name twice) the first counts. A new or changed item gets the
/// evidence `fresh` gives for its resource (who made this change, whether it was authorised);
/// one that stays as it was keeps its own.
pub(super) fn reconcile(
    old: Vec<DriftRecord>,
    new: Vec<DriftItem>,
    now_ms: i64,
    mut fresh: impl FnMut(&str) -> Evidence,
) -> Reconciled {
    let mut r = Reconciled::default();
    let mut old: HashMap<(String, String), DriftRecord> = old
        .into_iter()
        .map(|o| ((o.resource.clone(), o.attribute.clone()), o))
        .collect();
    let mut kept: HashSet<(String, String)> = HashSet::with_capacity(new.len());
    for item in new {
        let key = (item.resource, item.attribute);
        if kept.contains(&key) {
            continue;
        }
        let previous = old.remove(&key);
        let mut record = DriftRecord {
            since_ms: previous.as_ref().map_or(now_ms, |p| p.since_ms),
            resource: key.0.clone(),
            attribute: key.1.clone(),
            expected: item.expected,
            actual: item.actual,
            declared_at: item.declared_at,
            evidence: Evidence::default(),
        };
        match previous {
            None => {
                record.evidence = fresh(&record.resource);
                r.opened.push(record.clone());
            }
            Some(p) if p.expected != record.expected || p.actual != record.actual => {
                record.evidence = fresh(&record.resource);
                r.changed.push(record.clone());
            }
            Some(p) => record.evidence = p.evidence,
        }
        r.open.push(record);
        kept.insert(key);
    }
    r.resolved = old.into_values().collect();
    // In a stable order, for the event log.
    r.resolved
        .sort_by(|a, b| (&a.resource, &a.attribute).cmp(&(&b.resource, &b.attribute)));
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
            evidence: Default::default(),
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
        let r = reconcile(old, new, 99, |_| Evidence::default());
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

    // Regression (issue 12, item 1): a linear search per item made 20,000 undeclared entries
    // cost the fleet thread a minute. 100,000 items each way now take well under a second.
    #[test]
    fn reconciling_many_items_is_linear() {
        let n = 100_000;
        let old: Vec<DriftRecord> = (0..n).map(|i| record(&format!("a{i}"), "x", 1)).collect();
        let new: Vec<DriftItem> = (0..n)
            .map(|i| item(&format!("a{}", i + n / 2), "x"))
            .collect();
        let started = std::time::Instant::now();
        let r = reconcile(old, new, 2, |_| Evidence::default());
        let took = started.elapsed();
        assert_eq!(
            (r.opened.len(), r.resolved.len(), r.open.len()),
            (n / 2, n / 2, n)
        );
        assert!(r.changed.is_empty());
        // Quadratic would be 10^10 string comparisons: minutes, even optimised.
        assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    }

    #[test]
    fn new_and_changed_items_get_fresh_evidence_and_kept_ones_keep_theirs() {
        use crate::evidence::Who;
        let said = |why: &str| Evidence {
            who: Some(Who::Unknown(why.into())),
            ..Evidence::default()
        };
        let mut kept = record("mode", "0600", 10);
        kept.evidence = said("earlier");
        let mut was = record("owner", "bob", 20);
        was.evidence = said("earlier");
        let r = reconcile(
            vec![kept, was],
            vec![
                item("mode", "0600"),
                item("owner", "eve"),
                item("group", "adm"),
            ],
            99,
            |_| said("now"),
        );
        let evidence = |list: &[DriftRecord]| -> Vec<(String, Evidence)> {
            list.iter()
                .map(|d| (d.attribute.clone(), d.evidence.clone()))
                .collect()
        };
        assert_eq!(evidence(&r.opened), [("group".into(), said("now"))]);
        assert_eq!(evidence(&r.changed), [("owner".into(), said("now"))]);
        assert_eq!(
            evidence(&r.open),
            [
                ("mode".into(), said("earlier")),
                ("owner".into(), said("now")),
                ("group".into(), said("now"))
            ],
            "what is open says the latest change"
        );
    }

    #[test]
    fn an_item_listed_twice_opens_once() {
        let r = reconcile(
            vec![],
            vec![item("mode", "1"), item("mode", "2")],
            5,
            |_| Evidence::default(),
        );
        assert_eq!(r.opened, [record("mode", "1", 5)]);
        assert_eq!(r.open, [record("mode", "1", 5)]);
    }

    #[test]
    fn nothing_new_resolves_everything() {
        let r = reconcile(vec![record("mode", "0600", 10)], vec![], 99, |_| {
            Evidence::default()
        });
        assert_eq!(r.resolved, [record("mode", "0600", 10)]);
        assert!(r.open.is_empty() && r.opened.is_empty() && r.changed.is_empty());
    }
}
