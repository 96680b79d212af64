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
    let next = AtomicUsize::new(0);
    let work = || {
        let mut got = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(k) else {
                return got;
            };
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
    use super::map_ordered;

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
