//! The fleet at a past moment, as an auditor asks it: a store filled with N hosts and M log
//! entries over 30 days (drift opened, changed and resolved on 100 files a host, about 6 of
//! them drifted at a time; streams ended and begun again), written through the `Store` API as the fleet writes, then asked what stood
//! at moments early, midway and late in the period, and for one hour of the log. Prints the
//! fill's rate (each entry's spans are written with it) and each answer's time.

use std::time::Instant;

use plumb_controller::key::Key;
use plumb_controller::model::{DriftRecord, EventKind, HostInfo};
use plumb_controller::store::{Change, LogQuery, PostgresStore, SqliteStore, Store, Write};
use serde_json::{Value, json};

use crate::store::Store as Place;

const DAY_MS: i64 = 86_400_000;
const START_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const FILES: usize = 100;
/// Changes a write carries (one host, one moment), as a delta of several paths does.
const PER_WRITE: usize = 10;

/// xorshift64*: reproducible, and no dependency for it.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

fn record(file: usize, actual: &str, since_ms: i64) -> DriftRecord {
    DriftRecord {
        resource: format!("file:/etc/app/{file:03}.conf"),
        attribute: "sha256".into(),
        expected: "3f2a".repeat(16),
        actual: actual.repeat(16),
        since_ms,
        declared_at: "fleet.yaml:12:5".into(),
        evidence: Default::default(),
    }
}

/// Writes `hosts` hosts' streams and drift until the log holds `entries` entries, spread
/// evenly over 30 days; returns the entries written and how long it took.
fn fill(store: &mut dyn Store, hosts: usize, entries: usize) -> anyhow::Result<(usize, f64)> {
    let started = Instant::now();
    let step = (30 * DAY_MS / entries as i64).max(1);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Which files of each host are drifted now, and since when.
    let mut open: Vec<Vec<Option<i64>>> = vec![vec![None; FILES]; hosts];
    let mut online = vec![true; hosts];
    let mut written = 0;
    let mut now = START_MS;
    for h in 0..hosts {
        let info = HostInfo {
            host_id: format!("web-{h:05}"),
            hostname: format!("web-{h:05}.example"),
            ..HostInfo::default()
        };
        store.host_online(&info, now)?;
        written += 1;
    }
    while written < entries {
        now += step * PER_WRITE as i64;
        let h = rng.below(hosts);
        let host_id = format!("web-{h:05}");
        if rng.below(100) == 0 || !online[h] {
            // A stream ends, or begins again (a host's drift is written while it is online,
            // by the controller holding its stream).
            online[h] = !online[h];
            if online[h] {
                let info = HostInfo {
                    host_id,
                    ..HostInfo::default()
                };
                store.host_online(&info, now)?;
            } else {
                store.log(&host_id, now, EventKind::HostOffline, None)?;
            }
            written += 1;
            continue;
        }
        // A file touched is put right (4 in 5) or changed again if drifted, and drifts 1 time
        // in 20 if not: about 6 of a host's 100 files drifted at any time, a harsh fleet.
        let mut changes = Vec::with_capacity(PER_WRITE);
        let mut touched = [false; FILES];
        while changes.len() < PER_WRITE && touched.iter().any(|&t| !t) {
            let f = rng.below(FILES);
            if std::mem::replace(&mut touched[f], true) {
                continue;
            }
            let origin = Key::file(&format!("/etc/app/{f:03}.conf"));
            changes.push(match open[h][f] {
                None if rng.below(20) != 0 => continue,
                None => {
                    open[h][f] = Some(now);
                    Change::Open {
                        origin,
                        record: record(f, "a1b2", now),
                    }
                }
                Some(since) if rng.below(5) == 0 => Change::Change {
                    origin,
                    record: record(f, "c3d4", since),
                },
                Some(since) => {
                    open[h][f] = None;
                    Change::Resolve {
                        record: record(f, "c3d4", since),
                    }
                }
            });
        }
        if changes.is_empty() {
            continue;
        }
        written += changes.len();
        store.apply(&Write::Record {
            host_id,
            at_ms: now,
            observations: Vec::new(),
            changes,
        })?;
    }
    Ok((written, started.elapsed().as_secs_f64()))
}

/// The median of `runs` timings of `f`, in milliseconds, and its last answer.
fn timed<T>(runs: usize, mut f: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(f64, T)> {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f()?);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let answer = last.ok_or_else(|| anyhow::anyhow!("no runs"))?;
    Ok((times[times.len() / 2], answer))
}

pub(crate) fn run(hosts: usize, entries: usize, place: &str) -> anyhow::Result<Value> {
    let place = Place::parse(place)?;
    let tmp = tempfile::tempdir()?;
    let mut store: Box<dyn Store> = match place.fresh() {
        None => Box::new(SqliteStore::open(tmp.path())?),
        Some(url) => Box::new(PostgresStore::open(&url)?),
    };
    let (written, secs) = fill(store.as_mut(), hosts, entries)?;
    println!(
        "moment ({}): {written} entries of {hosts} hosts written in {secs:.1} s ({:.0} entries/s, spans with each)",
        place.label(),
        written as f64 / secs
    );
    let mut answers = Vec::new();
    for (label, fraction) in [
        ("day 2", 1.0 / 30.0),
        ("day 15", 0.5),
        ("day 29", 29.0 / 30.0),
    ] {
        let at = START_MS + (30.0 * DAY_MS as f64 * fraction) as i64;
        let (ms, standing) = timed(5, || Ok(store.standing(at)?))?;
        let moment = plumb_controller::moment::hosts(&standing);
        let drifted = moment.iter().filter(|h| !h.drift.is_empty()).count();
        let items: usize = moment.iter().map(|h| h.drift.len()).sum();
        println!(
            "  at {label}: {ms:.0} ms (median of 5) for {} hosts, {drifted} drifted, {items} drift items",
            moment.len()
        );
        answers.push(json!({"at": label, "median_ms": ms, "hosts": moment.len(), "drifted": drifted, "drift_items": items}));
    }
    let since = START_MS + 15 * DAY_MS;
    let (ms, page) = timed(5, || {
        Ok(store.page(&LogQuery {
            since_ms: Some(since),
            until_ms: Some(since + 3_600_000),
            limit: 1000,
            ..LogQuery::default()
        })?)
    })?;
    println!(
        "  history --between (one hour, day 15): {ms:.1} ms (median of 5) for {} entries",
        page.len()
    );
    Ok(json!({
        "store": place.label(), "hosts": hosts, "entries": written,
        "fill_entries_per_second": written as f64 / secs,
        "moments": answers, "hour_of_log_ms": ms, "hour_of_log_entries": page.len(),
    }))
}
