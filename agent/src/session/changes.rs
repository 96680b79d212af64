//! What the session sends once in sync: the paths and packages that changed, observed again
//! and compared with what was last sent (a fingerprint per path), in Delta parts.

use super::*;

impl State {
    /// Observes what changed and sends a Delta with the paths whose state differs.
    pub(super) async fn send_changes(&mut self) -> anyhow::Result<()> {
        if self.watch.take_overflow() {
            tracing::warn!("watch queue overflowed; rescanning every path");
            self.overflows += 1;
            self.rescan = true;
        }
        if self.rescan || !self.touched.is_empty() {
            let touched = std::mem::take(&mut self.touched);
            self.watch.rearm(&touched);
            self.follow_watches();
            self.coverage_due = true;
        }
        if self.rescan {
            self.last_full_scan_ms = now_ms();
        }
        self.packages.claim(&mut self.dirty, &self.requests);
        if self.rescan || self.globs_moved() {
            self.reexpand().await?;
        }
        let which: Vec<usize> = if std::mem::take(&mut self.rescan) {
            self.dirty.clear();
            self.packages.dirty = true;
            (0..self.requests.len()).collect()
        } else {
            std::mem::take(&mut self.dirty)
                .iter()
                .filter_map(|p| self.requests.index(p))
                .collect()
        };
        let mut packages = self.poll_packages().await?;
        // Who changed each package, from the package managers' own logs: no capability needed.
        let mut package_who = if packages.is_empty() {
            std::collections::BTreeMap::new()
        } else {
            let (root, changed) = (self.cfg.root.clone(), packages.clone());
            self.blocking(move || {
                changed
                    .iter()
                    .map(|p| {
                        let who =
                            crate::collect::packages::changed_by::who(&root, &p.name, &p.instances);
                        (p.name.clone(), who)
                    })
                    .collect::<std::collections::BTreeMap<_, _>>()
            })
            .await?
        };
        // Where a log names no one (dpkg.log, dnf.rpm.log, pacman.log, apk's none), the
        // process that wrote the package database, if attribution saw it: who ran the manager.
        if let Some(a) = self.attribution.attributor()
            && !package_who.is_empty()
        {
            a.sync();
            if let Some(writer) = a.package_writer() {
                for who in package_who.values_mut() {
                    let nameless = match who {
                        Who::Unknown(_) => true,
                        Who::Package(t) => t.user.is_empty() && t.uid.is_none(),
                        Who::Process(_) => false,
                    };
                    if nameless {
                        *who = writer.clone();
                    }
                }
            }
        }
        // What waits is observed again when it is due: it stays dirty.
        self.held_until = None;
        let now = Instant::now();
        // A part at a time: a rescan holds PART observations, not the whole plan.
        for part in which.chunks(PART) {
            let mut changed: Vec<(usize, Observation)> = Vec::new();
            let observed = self.observe(part.to_vec()).await?;
            // Every change these observations show happened before they were made, so its
            // event is queued by now.
            let attributor = self.attribution.attributor();
            if let Some(a) = attributor {
                a.sync();
            }
            let mut who = std::collections::BTreeMap::new();
            for (i, o) in observed {
                // Taken whether or not it changed: a writer that changed nothing (a touch, the
                // same bytes) is not kept for a later change by someone else.
                let writer = attributor.map(|a| {
                    a.take(
                        &o.path,
                        self.requests.get(i).is_some_and(|r| r.list_entries),
                    )
                });
                if self.last_sent[i] == Some(self.fingerprint(&o)) {
                    continue;
                }
                if let Some(writer) = writer {
                    who.insert(o.path.clone(), writer);
                }
                if let Some(until) = self.summaries.hold(i, self.summary_rest(&o), now) {
                    self.dirty.insert(o.path);
                    self.held_until = Some(self.held_until.map_or(until, |t| t.min(until)));
                    continue;
                }
                changed.push((i, o));
            }
            if !changed.is_empty() {
                let packages = std::mem::take(&mut packages);
                who.retain(|path, _| changed.iter().any(|(_, o)| &o.path == path));
                who.append(&mut package_who);
                self.send_delta(changed, packages, who).await?;
            }
        }
        if let Some(a) = self.attribution.attributor() {
            a.end_batch();
        }
        if !packages.is_empty() {
            self.send_delta(Vec::new(), packages, package_who).await?;
        }
        Ok(())
    }

    /// The package states that changed, or nothing (see `Packages::poll`); rearms the
    /// watches if the packages' own files moved.
    pub(super) async fn poll_packages(&mut self) -> anyhow::Result<Vec<PackageObservation>> {
        let (out, every) = (self.out.clone(), self.heartbeat_every);
        let packages = beating(&out, every, self.packages.poll(&self.cfg.root)).await??;
        if std::mem::take(&mut self.packages.rewatch) {
            self.rewatch();
        }
        Ok(packages)
    }

    pub(super) async fn send_delta(
        &mut self,
        changed: Vec<(usize, Observation)>,
        packages: Vec<PackageObservation>,
        who: std::collections::BTreeMap<String, Who>,
    ) -> anyhow::Result<()> {
        let count = changed.len();
        let files = self.sent(changed);
        let report = Report {
            generation: self.generation,
            seq: 0,
            files,
            packages,
            who,
        };
        // A large change in messages of a bounded size, each a delta of its own.
        for mut report in wire::split(report, REPORT_BYTES) {
            report.seq = self.next_seq();
            tracing::debug!(seq = report.seq, changed = count, "delta");
            send(&self.out, Outgoing::Delta(report)).await?;
        }
        Ok(())
    }

    /// What `last_sent` keeps of an observation: 64 bits, never 0, so that "not sent" (`None`)
    /// costs no extra space.
    pub(super) fn fingerprint(&self, o: &Observation) -> NonZeroU64 {
        NonZeroU64::MIN | self.fingerprints.hash_one(o)
    }

    /// For a directory listed in summary (more undeclared entries than are listed), a
    /// fingerprint of all but its entries; `None` for anything else.
    pub(super) fn summary_rest(&self, o: &Observation) -> Option<NonZeroU64> {
        (o.entries_total > MAX_LISTED_ENTRIES as u64).then(|| {
            self.fingerprint(&Observation {
                entries: Vec::new(),
                entries_total: 0,
                ..o.clone()
            })
        })
    }

    /// Records observations as sent (by fingerprint), for a report.
    pub(super) fn sent(&mut self, observed: Vec<(usize, Observation)>) -> Vec<Observation> {
        let now = Instant::now();
        observed
            .into_iter()
            .map(|(i, o)| {
                self.last_sent[i] = Some(self.fingerprint(&o));
                self.summaries.sent(i, self.summary_rest(&o), now);
                o
            })
            .collect()
    }

    /// Observes the plan's paths at positions `which` off the runtime (stat, hashing), on
    /// `--scan-threads` threads.
    pub(super) async fn observe(
        &mut self,
        which: Vec<usize>,
    ) -> anyhow::Result<Vec<(usize, Observation)>> {
        let requests = self.requests.clone();
        let root = self.cfg.root.clone();
        let mut ids = std::mem::take(&mut self.ids);
        let (ids, observed) = self
            .blocking(move || {
                let names = ids.get(&root);
                let observed = observe_many(&root, &requests, &which, &names);
                (ids, observed)
            })
            .await?;
        self.ids = ids;
        Ok(observed)
    }
}
