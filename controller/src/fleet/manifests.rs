//! A (re)loaded manifest set: logged once per outcome, and where it is accepted, each host
//! whose desired state changed is evaluated against it and sent a new plan.

use super::agents::Cause;
use super::{Fleet, ManifestOutcome};
use crate::manifest::{Diagnostic, ManifestSet};
use crate::model::{DriftRecord, EventKind};
use crate::store::{StoreError, Write};

impl Fleet {
    pub(super) fn manifests(
        &mut self,
        result: Result<ManifestSet, Vec<Diagnostic>>,
        source: &str,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let record = |summary: String| DriftRecord {
            resource: "manifests".into(),
            attribute: "set".into(),
            expected: String::new(),
            actual: summary,
            since_ms: now,
            declared_at: source.to_owned(),
            evidence: Default::default(),
        };
        let result = result.and_then(|set| match self.shared {
            true => refuse_baselines(&set).map(|()| set),
            false => Ok(set),
        });
        let set = match result {
            Ok(set) => set,
            Err(errors) => {
                let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
                let outcome = Some(ManifestOutcome::Rejected(messages.clone()));
                if self.manifests_logged == outcome {
                    tracing::debug!("manifests reloaded: the same errors as before");
                    return Ok(());
                }
                for e in &errors {
                    tracing::error!("manifest rejected: {e}");
                }
                tracing::error!("manifest change rejected; the last good set stays in force");
                self.manifest_errors = messages;
                let first = errors
                    .first()
                    .map(|e| e.to_string().lines().next().unwrap_or_default().to_owned());
                let summary = format!(
                    "rejected, {} error(s): {}",
                    errors.len(),
                    first.unwrap_or_default()
                );
                self.write(
                    Some(Write::Log {
                        host_id: String::new(),
                        at_ms: now,
                        kind: EventKind::ManifestsRejected,
                        item: Some(record(summary)),
                    }),
                    None,
                );
                self.manifests_logged = outcome;
                return Ok(());
            }
        };
        let unchanged = set.same_as(&self.manifests);
        if unchanged && self.manifests_logged == Some(ManifestOutcome::Accepted) {
            tracing::debug!("manifests reloaded: nothing changed");
            return Ok(());
        }
        let summary = format!("{} manifests in force", set.manifests().len());
        self.write(
            Some(Write::Log {
                host_id: String::new(),
                at_ms: now,
                kind: EventKind::ManifestsAccepted,
                item: Some(record(summary)),
            }),
            None,
        );
        self.manifests_logged = Some(ManifestOutcome::Accepted);
        self.manifest_source = source.to_owned();
        tracing::info!(manifests = set.manifests().len(), "manifest set in force");
        self.manifest_errors.clear();
        if unchanged {
            // The directory is back to the set in force (after a rejected change): nothing
            // to plan anew.
            return Ok(());
        }
        self.manifests = set;
        let ids: Vec<String> = self.hosts.keys().cloned().collect();
        for id in ids {
            let Some(host) = self.hosts.get_mut(&id) else {
                continue;
            };
            let desired = self.manifests.desired_for(&host.info.identity());
            if desired == host.desired {
                continue;
            }
            host.set_desired(desired);
            // Evaluate what is already known against the new declarations now; the agent's
            // snapshot for the new plan then brings the rest. What baselines compare is
            // judged once every group is whole, below.
            let (list, more) = host.keys_to_evaluate();
            let desired = host.desired.clone();
            host.forget_undeclared();
            let keys = list.iter().chain(&more);
            let declared = keys.filter(|k| desired.compared(k).is_none());
            self.evaluate(&id, declared, None, Cause::Manifests);
            self.send_plan(&id);
        }
        // Groups are whole only now that every host has its new desired state.
        self.judge_every_group(&Cause::Manifests);
        Ok(())
    }
}

/// Several controllers on one store each hold only some hosts' observations in memory, so a
/// group compared by one of them would be judged on part of it: a false "in sync" waiting to
/// happen. Until the store carries what groups need, a baseline is refused there, said plainly.
pub(super) fn refuse_baselines(set: &ManifestSet) -> Result<(), Vec<Diagnostic>> {
    let refused: Vec<Diagnostic> = set
        .manifests()
        .iter()
        .filter_map(|m| m.baseline.as_ref())
        .map(|b| Diagnostic {
            file: b.declared_at.file.clone(),
            line: Some(b.declared_at.line),
            column: None,
            message: "baselines are not compared on a store several controllers share yet".into(),
            hint: Some(
                "run one controller on this store, or declare the values the hosts should have"
                    .into(),
            ),
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused)
    }
}
