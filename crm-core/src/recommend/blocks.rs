//! Deterministic parallel work over `0..n` in fixed blocks.
//!
//! The fit and the batch both do independent work per sku or per member. The range is cut
//! into blocks of a fixed size (not one per thread: the work per sku is very uneven, a
//! bestseller co-occurs with everything), threads take the next free block, and the
//! results are put back in block order. Which thread did a block never shows in the
//! result, so it does not depend on the thread count.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A block of rows: the length of every row, and the rows' `(score, item)` pairs end to end.
pub(crate) type RowBlock = (Vec<u32>, Vec<(f32, u32)>);

/// Per-block rows, each block as the length of every row and the rows' `(score, item)`
/// pairs end to end, joined in block order into one compressed table: row `r` is
/// `offsets[r]..offsets[r + 1]` of `items` and `scores`. `rows` is the number of rows.
pub(crate) fn join_rows(rows: usize, blocks: Vec<RowBlock>) -> (Vec<usize>, Vec<u32>, Vec<f32>) {
    let total: usize = blocks.iter().map(|b| b.1.len()).sum();
    let mut offsets = Vec::with_capacity(rows + 1);
    let (mut items, mut scores) = (Vec::with_capacity(total), Vec::with_capacity(total));
    offsets.push(0);
    for (lens, pairs) in blocks {
        for l in lens {
            offsets.push(offsets[offsets.len() - 1] + l as usize);
        }
        items.extend(pairs.iter().map(|p| p.1));
        scores.extend(pairs.iter().map(|p| p.0));
    }
    (offsets, items, scores)
}

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
