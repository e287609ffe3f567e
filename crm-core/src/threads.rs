//! Parallel helpers that keep to a thread budget.
//!
//! Why: a host caps the threads `run_due` may use
//! ([`Store::decision_workers`](crate::store::Store::decision_workers),
//! [`MemoryStore::with_decision_workers`](crate::store::MemoryStore::with_decision_workers)),
//! for example to leave cores to its web workers. Rayon's parallel
//! iterators run on the global pool, one thread per core, whatever the cap;
//! [`within`] runs them on a pool of the capped size instead when the
//! global one is larger.

/// `parallel(input)` with rayon's parallel iterators on at most `threads`
/// threads: on the global pool when it is no larger, else on a pool of
/// `threads` built for the call. `sequential(input)` when that pool cannot
/// be built (no thread could be started) or `threads` is 1 or less.
pub(crate) fn within<T: Send, R: Send>(
    threads: usize,
    input: T,
    parallel: impl FnOnce(T) -> R + Send,
    sequential: impl FnOnce(T) -> R,
) -> R {
    if threads <= 1 {
        return sequential(input);
    }
    if threads >= rayon::current_num_threads() {
        return parallel(input);
    }
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(|| parallel(input)),
        Err(_) => sequential(input),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads of the pool `parallel` runs on, with a budget of `threads`.
    fn pool_size(threads: usize) -> usize {
        within(threads, (), |()| rayon::current_num_threads(), |()| 0)
    }

    #[test]
    fn parallel_work_keeps_to_the_budget() {
        // Called from a pool of four (as from a machine of four cores).
        let four = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        four.install(|| {
            assert_eq!(pool_size(2), 2, "a budget below the pool gets a pool of its own size");
            assert_eq!(pool_size(3), 3);
            assert_eq!(pool_size(4), 4, "a budget the size of the pool uses it");
            assert_eq!(pool_size(9), 4, "a larger budget still uses the pool there is");
            assert_eq!(pool_size(1), 0, "one thread: sequential");
            assert_eq!(pool_size(0), 0);
        });
    }

    #[test]
    fn the_input_reaches_either_side() {
        let mut v = vec![3, 1, 2];
        within(1, &mut v[..], |s: &mut [i32]| s.reverse(), <[i32]>::sort_unstable);
        assert_eq!(v, [1, 2, 3]);
        within(2, &mut v[..], |s: &mut [i32]| s.reverse(), <[i32]>::sort_unstable);
        assert_eq!(v, [3, 2, 1]);
    }
}
