//! Blocking work spread over a few threads: each takes one item at a time, so one large file
//! does not hold up the rest, and the results come back in the order of the items.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` of each of `items` on up to `threads` threads (the caller's among them), keeping the
/// results that are `Some`, in the order of `items`. A helper thread that cannot be started
/// leaves its share to the others; a panic in `f` is the caller's.
pub(crate) fn map_ordered<T: Sync, R: Send>(
    threads: usize,
    items: &[T],
    f: impl Fn(&T) -> Option<R> + Sync,
) -> Vec<R> {
    map_ordered_ahead(threads, items, |_| {}, f)
}

/// `map_ordered`, calling `soon` once on each item but the first, ahead of the threads: on
/// the item `read_ahead::AHEAD` places on as a thread takes one (and on the first few at the
/// start), so `soon` can ask for what that item will read while the threads work on the ones
/// before it. A hint: with several threads, one may reach an item before it was asked for.
pub(crate) fn map_ordered_ahead<T: Sync, R: Send>(
    threads: usize,
    items: &[T],
    soon: impl Fn(&T) + Sync,
    f: impl Fn(&T) -> Option<R> + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut got = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(k) else {
                return got;
            };
            items[super::read_ahead::ahead_of(k, items.len())]
                .iter()
                .for_each(&soon);
            if let Some(r) = f(item) {
                got.push((k, r));
            }
        }
    };
    let threads = threads.min(items.len());
    let mut all = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("plumb-scan".into())
                    .spawn_scoped(scope, work)
                    .ok()
            })
            .collect();
        let mut all = work();
        for helper in helpers {
            all.extend(
                helper
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        all
    });
    all.sort_unstable_by_key(|(k, _)| *k);
    all.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::{map_ordered, map_ordered_ahead};

    #[test]
    fn results_in_the_order_of_the_items_whatever_the_threads() {
        let items: Vec<u64> = (0..1000).collect();
        // Uneven work, so threads finish out of order.
        let f = |&n: &u64| (n % 7 != 0).then(|| (0..(n % 13) * 1000).fold(n, |a, b| a ^ b));
        let one = map_ordered(1, &items, f);
        assert_eq!(one.len(), 1000 - 143);
        for threads in [2, 3, 64] {
            assert_eq!(map_ordered(threads, &items, f), one, "{threads} threads");
        }
        assert!(map_ordered(4, &[] as &[u64], f).is_empty());
    }

    #[test]
    fn each_item_is_asked_for_once_ahead_of_the_threads() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let items: Vec<usize> = (0..500).collect();
        for threads in [1, 2, 8] {
            let asked: Vec<AtomicU32> = items.iter().map(|_| AtomicU32::new(0)).collect();
            let seen = map_ordered_ahead(
                threads,
                &items,
                |&k| {
                    asked[k].fetch_add(1, Ordering::SeqCst);
                },
                |&k| Some(asked[k].load(Ordering::SeqCst)),
            );
            assert_eq!(seen.len(), items.len());
            // The first is taken at once; every other is asked for once. One thread always
            // asks before it takes; several may overtake the one that was to ask (a hint).
            assert!(asked.iter().skip(1).all(|n| n.load(Ordering::SeqCst) == 1));
            if threads == 1 {
                assert!(seen.iter().skip(1).all(|&n| n == 1), "{seen:?}");
            }
        }
    }

    #[test]
    fn work_is_shared_among_the_threads() {
        // Each item waits until both threads hold one: with one thread taking everything
        // this would never finish, so the test passing shows two threads at work.
        let started = std::sync::Barrier::new(2);
        let names = map_ordered(2, &[0, 1], |_| {
            started.wait();
            std::thread::current().name().map(str::to_owned)
        });
        assert_eq!(names.len(), 2);
        assert!(names.iter().any(|n| n == "plumb-scan"), "{names:?}");
    }
}
