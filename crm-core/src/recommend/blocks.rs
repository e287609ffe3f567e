//! Deterministic parallel work over `0..n` in fixed blocks.
//!
//! The fit and the batch both do independent work per sku or per member. The range is cut
//! into blocks of a fixed size (not one per thread: the work per sku is very uneven, a
//! bestseller co-occurs with everything), threads take the next free block, and the
//! results are put back in block order. Which thread did a block never shows in the
//! result, so it does not depend on the thread count.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `work(scratch, block)` for every block of `0..n` (blocks of `block` indices), on up to
/// `threads` threads, each with its own `scratch` from `init`; the results in block
/// order. `None` when a thread panicked (the caller decides what to do about it).
pub(crate) fn map_blocks<S, T: Send>(
    n: usize,
    block: usize,
    threads: usize,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, Range<usize>) -> T + Sync,
) -> Option<Vec<T>> {
    let block = block.max(1);
    let blocks = n.div_ceil(block);
    let next = AtomicUsize::new(0);
    let run = || {
        let mut scratch = init();
        let mut done = Vec::new();
        loop {
            let b = next.fetch_add(1, Ordering::Relaxed);
            if b >= blocks {
                break;
            }
            done.push((b, work(&mut scratch, b * block..((b + 1) * block).min(n))));
        }
        done
    };
    let threads = threads.clamp(1, blocks.max(1));
    let parts: Vec<Vec<(usize, T)>> = if threads == 1 {
        vec![run()]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|_| scope.spawn(run)).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
        })
    };
    let mut parts: Vec<(usize, T)> = parts.into_iter().flatten().collect();
    if parts.len() != blocks {
        return None;
    }
    parts.sort_unstable_by_key(|p| p.0);
    Some(parts.into_iter().map(|p| p.1).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_block_order() {
        for threads in [1, 2, 5] {
            let sums = map_blocks(
                10,
                3,
                threads,
                || 0u32,
                |calls, r| {
                    *calls += 1;
                    r.sum::<usize>()
                },
            );
            assert_eq!(sums, Some(vec![3, 12, 21, 9]));
        }
        assert_eq!(map_blocks(0, 3, 2, || (), |_, r| r.len()), Some(vec![]));
    }
}
