//! The best `k` of a stream of (score, item) candidates, in a bounded heap.
//!
//! Both the fit (the `neighbours` most similar skus of a sku, out of up to every sku) and
//! the batch (the top `k` of a member, out of every neighbour of every sku they have) see
//! far more candidates than they keep. Keeping a heap of the `k` best, whose root is the
//! worst kept, rejects most candidates with one comparison and writes nothing for them;
//! collecting every candidate and selecting afterwards wrote each one out first.
//!
//! The order is total (score descending by [`f32::total_cmp`], then item ascending), so
//! the kept set and its order do not depend on the order the candidates come in.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// `a` ranks before `b`: higher score, then smaller item.
pub(crate) fn better(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// A candidate ordered so that the heap's maximum is the worst candidate kept.
#[derive(Debug, Clone, Copy)]
struct Ranked((f32, u32));

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        better(&self.0, &other.0)
    }
}

/// The `k` best candidates offered so far (reused between lists: [`TopK::reset`]).
#[derive(Debug, Default)]
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Ranked>,
}

impl TopK {
    /// Start a new list keeping at most `k` candidates.
    pub(crate) fn reset(&mut self, k: usize) {
        self.k = k;
        self.heap.clear();
    }

    /// Offer a candidate; kept when fewer than `k` are kept or it ranks before the worst.
    #[inline]
    pub(crate) fn offer(&mut self, score: f32, item: u32) {
        let c = Ranked((score, item));
        if self.heap.len() < self.k {
            self.heap.push(c);
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if c < *worst {
                *worst = c;
            }
        }
    }

    /// The kept candidates, best first, appended to `out` (the heap is emptied).
    pub(crate) fn drain_sorted_into(&mut self, out: &mut Vec<(f32, u32)>) {
        let start = out.len();
        out.extend(self.heap.drain().map(|r| r.0));
        out[start..].sort_unstable_by(better);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_in_order_whatever_the_input_order() {
        let cands = [(0.5, 7), (0.9, 3), (0.5, 2), (0.1, 1), (0.9, 1), (0.7, 9)];
        let mut expected = cands.to_vec();
        expected.sort_unstable_by(better);
        expected.truncate(4);
        let mut t = TopK::default();
        for rot in 0..cands.len() {
            t.reset(4);
            let mut c = cands;
            c.rotate_left(rot);
            for (s, i) in c {
                t.offer(s, i);
            }
            let mut out = vec![(9.9, 99)];
            t.drain_sorted_into(&mut out);
            assert_eq!(out[1..], expected[..]);
        }
        t.reset(0);
        t.offer(1.0, 1);
        let mut out = Vec::new();
        t.drain_sorted_into(&mut out);
        assert!(out.is_empty());
    }
}
