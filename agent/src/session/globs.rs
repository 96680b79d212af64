//! A plan's globs (`PathSpec.expand`): expanded when the plan comes, each match observed as
//! a path of the plan; walked again when a directory they reach changes (or at a rescan), so
//! that a path that comes to match is observed and sent. A path that stops matching stays in
//! the plan until the next one, observed absent.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::collect::expand::{Expanded, MAX_MATCHES, expand};
use crate::collect::files::{Ignore, Request};

/// Kept only while the plan has globs.
pub(super) struct Expansion {
    /// The plan's own paths, which matches join.
    literal: Vec<Request>,
    globs: Vec<Request>,
    /// Every path matched since the plan came, with the glob that matched it.
    matched: BTreeMap<String, usize>,
    /// The directories the walks entered: watched, and a change to one walks again.
    pub(super) dirs: BTreeSet<String>,
    /// Globs with more matches than are observed: said in the coverage.
    pub(super) over: Vec<String>,
}

impl Expansion {
    /// The plan's requests and the matches, each observed as its glob says.
    fn requests(&self) -> Requests {
        let matches = self.matched.iter().map(|(path, &i)| Request {
            path: path.as_str().into(),
            ignore: Ignore::default(),
            ..self.globs[i].clone()
        });
        Requests::new(self.literal.iter().cloned().chain(matches).collect())
    }
}

impl State {
    /// The plan's requests with what its globs match now (`self.expansion` set for later).
    pub(super) async fn expand_plan(
        &mut self,
        requests: Requests,
        globs: Vec<Request>,
    ) -> anyhow::Result<Requests> {
        let found = self.walk(globs.clone()).await?;
        let expansion = Expansion {
            literal: requests.to_vec(),
            globs,
            matched: found.paths.into_iter().collect(),
            dirs: found.dirs,
            over: found.over,
        };
        let requests = expansion.requests();
        self.expansion = Some(Box::new(expansion));
        Ok(requests)
    }

    async fn walk(&self, globs: Vec<Request>) -> anyhow::Result<Expanded> {
        let root = self.cfg.root.clone();
        self.blocking(move || expand(&root, &globs)).await
    }

    /// Whether a directory the globs reach changed (it is among `dirty`).
    pub(super) fn globs_moved(&self) -> bool {
        self.expansion
            .as_ref()
            .is_some_and(|e| self.dirty.iter().any(|d| e.dirs.contains(d)))
    }

    /// Walks the globs again: new matches join the plan (observed and sent with what else
    /// changed), and the watches follow the directories. A directory that appeared is
    /// watched, then walked once more: what was made in it before its watch was armed sent
    /// no event to anyone.
    pub(super) async fn reexpand(&mut self) -> anyhow::Result<()> {
        for _ in 0..8 {
            let Some(globs) = self.expansion.as_ref().map(|e| e.globs.clone()) else {
                return Ok(());
            };
            let found = self.walk(globs).await?;
            let Some(e) = self.expansion.as_mut() else {
                return Ok(());
            };
            let mut added: Vec<(String, usize)> = found
                .paths
                .into_iter()
                .filter(|(p, _)| !e.matched.contains_key(p))
                .collect();
            let mut over = found.over;
            // Paths that stopped matching stay in the plan: churn of new names must not
            // grow it without end.
            let room = (MAX_MATCHES * e.globs.len()).saturating_sub(e.matched.len());
            if added.len() > room {
                added.truncate(room);
                over.push(format!(
                    "more than {} paths matched the plan's globs since it came; new ones are not observed until the next plan",
                    MAX_MATCHES * e.globs.len()
                ));
            }
            let dirs_moved = found.dirs != e.dirs;
            e.dirs = found.dirs;
            if e.over != over {
                e.over = over;
                self.coverage_due = true;
            }
            let grew = !added.is_empty();
            if grew {
                tracing::info!(added = added.len(), "new paths match the plan's globs");
                for (path, i) in &added {
                    e.matched.insert(path.clone(), *i);
                }
                let old = std::mem::replace(&mut self.requests, Arc::new(e.requests()));
                self.last_sent = self
                    .requests
                    .iter()
                    .map(|r| old.index(r.path).and_then(|i| self.last_sent[i]))
                    .collect();
                self.summaries.clear();
                if let Some(a) = self.attribution.attributor() {
                    a.plan(self.requests.clone());
                }
                self.dirty.extend(added.into_iter().map(|(p, _)| p));
            }
            if grew || dirs_moved {
                self.rewatch();
                self.coverage_due = true;
            }
            if !dirs_moved {
                break;
            }
        }
        Ok(())
    }
}
