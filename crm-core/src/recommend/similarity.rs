//! The `neighbours` most similar skus of every sku (cosine of their member vectors).
//!
//! One sku's row of the co-occurrence matrix at a time: for sku `i`, every member who
//! has `i`, every sku `j` of that member adds `v_mi·v_mj` to a dense accumulator indexed
//! by sku, and the skus touched are remembered in a list (so clearing costs what was
//! touched, not the catalogue). The work is `Σ_m n_m²` (`n_m`: skus of member `m`), about
//! 110 million additions for the 10M-line benchmark, nearly all of them in that loop, so:
//!
//! - when every value is the same (binary purchases, the default, with no engagements),
//!   the accumulator counts co-occurrences in `u32` and the dot product is the count
//!   times the value squared: the accumulator is half the size (it stays in the core's
//!   cache for a 100k-sku catalogue) and the member values are not read at all;
//! - a sku is added to the touched list without a branch (written at the list's end,
//!   which only grows when the accumulator was zero), as whether a sku was seen before
//!   is a coin toss the branch predictor loses;
//! - the best `neighbours` are kept in a bounded heap as the touched skus are read
//!   ([`TopK`]), instead of collecting every touched sku and selecting.
//!
//! Sums are integers, so a row is exact whatever order its members come in; rows are
//! computed in fixed blocks of skus ([`map_blocks`]): the result does not depend on the
//! thread count.

use super::blocks::map_blocks;
use super::topk::TopK;

/// Member-major and sku-major views of the (member, sku, value) matrix.
pub(crate) struct Matrix<'a> {
    /// Member-major: the skus of a member ascending, with their values.
    pub user_item: &'a [u32],
    pub user_int: &'a [u32],
    /// Sku-major: `item_ptr[i]..item_ptr[i + 1]` are the members who have sku `i`, each
    /// as the span of their skus in `user_item` (so the loop goes from a sku to its
    /// members' skus in one dependent read, not two), with the value of `i` alongside.
    pub item_ptr: &'a [usize],
    pub item_span: &'a [(u32, u32)],
    pub item_int: &'a [u32],
}

/// Item -> neighbours, best first: `items[ptr[i]..ptr[i + 1]]` with `sims` alongside.
pub(crate) struct Neighbours {
    pub ptr: Vec<usize>,
    pub items: Vec<u32>,
    pub sims: Vec<f32>,
}

/// An accumulator of dot products: a co-occurrence count (every value the same) or a
/// sum of products of values.
trait Dot: Copy + PartialEq + Send {
    const ZERO: Self;
    /// Whether `add` needs the values (else they are not read).
    const WEIGHTED: bool;
    fn add(self, vi: u32, vj: u32) -> Self;
    /// The dot product, `unit2` being the square of the common value when counting.
    fn dot(self, unit2: u64) -> u64;
}

impl Dot for u32 {
    const ZERO: u32 = 0;
    const WEIGHTED: bool = false;
    #[inline(always)]
    fn add(self, _: u32, _: u32) -> u32 {
        self.saturating_add(1)
    }
    #[inline(always)]
    fn dot(self, unit2: u64) -> u64 {
        u64::from(self).saturating_mul(unit2)
    }
}

impl Dot for u64 {
    const ZERO: u64 = 0;
    const WEIGHTED: bool = true;
    #[inline(always)]
    fn add(self, vi: u32, vj: u32) -> u64 {
        self.saturating_add(u64::from(vi) * u64::from(vj))
    }
    #[inline(always)]
    fn dot(self, _: u64) -> u64 {
        self
    }
}

/// Items per block handed to a thread.
const BLOCK: usize = 64;

/// The `keep` most similar items of each of the `n_items` items (ties: smaller item);
/// `None` when a thread failed.
pub(crate) fn neighbours(m: &Matrix<'_>, n_items: usize, keep: usize, threads: usize) -> Option<Neighbours> {
    let norm: Vec<f64> = (0..n_items)
        .map(|i| {
            let ss: u64 =
                m.item_int[m.item_ptr[i]..m.item_ptr[i + 1]].iter().map(|&v| u64::from(v) * u64::from(v)).sum();
            (ss as f64).sqrt()
        })
        .collect();
    let common = m.user_int.first().copied().filter(|&v| m.user_int.iter().all(|&w| w == v));
    let blocks = match common {
        Some(v) => rows::<u32>(m, &norm, n_items, keep, threads, u64::from(v) * u64::from(v)),
        None => rows::<u64>(m, &norm, n_items, keep, threads, 0),
    }?;
    let (ptr, items, sims) = super::blocks::join_rows(n_items, blocks);
    Some(Neighbours { ptr, items, sims })
}

/// Per-thread state of [`rows`].
struct Scratch<A> {
    acc: Vec<A>,
    /// Touched items; one slot more than the items, for the branch-free append.
    touched: Vec<u32>,
    top: TopK,
}

/// The neighbour lists of a block of items: (list lengths, (sim, item) best first).
type Block = super::blocks::RowBlock;

/// The neighbour lists of every item, by blocks.
fn rows<A: Dot>(
    m: &Matrix<'_>,
    norm: &[f64],
    n_items: usize,
    keep: usize,
    threads: usize,
    unit2: u64,
) -> Option<Vec<Block>> {
    let init = || Scratch { acc: vec![A::ZERO; n_items], touched: vec![0u32; n_items + 1], top: TopK::default() };
    map_blocks(n_items, BLOCK, threads, init, |s, block| {
        let (mut lens, mut kept) = (Vec::with_capacity(block.len()), Vec::with_capacity(block.len() * keep));
        for i in block {
            let mut n = 0;
            for q in m.item_ptr[i]..m.item_ptr[i + 1] {
                let ((a, b), vi) = (m.item_span[q], m.item_int[q]);
                let r = a as usize..b as usize;
                if A::WEIGHTED {
                    for (&j, &vj) in m.user_item[r.clone()].iter().zip(&m.user_int[r]) {
                        let a = s.acc[j as usize];
                        s.touched[n] = j;
                        n += usize::from(a == A::ZERO);
                        s.acc[j as usize] = a.add(vi, vj);
                    }
                } else {
                    for &j in &m.user_item[r] {
                        let a = s.acc[j as usize];
                        s.touched[n] = j;
                        n += usize::from(a == A::ZERO);
                        s.acc[j as usize] = a.add(vi, 0);
                    }
                }
            }
            s.top.reset(keep);
            for &j in &s.touched[..n] {
                let dot = std::mem::replace(&mut s.acc[j as usize], A::ZERO).dot(unit2);
                if j as usize != i {
                    s.top.offer((dot as f64 / (norm[i] * norm[j as usize])) as f32, j);
                }
            }
            let before = kept.len();
            s.top.drain_sorted_into(&mut kept);
            lens.push((kept.len() - before) as u32);
        }
        (lens, kept)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// user_item, user_int, item_ptr, item_span, item_int.
    type Views = (Vec<u32>, Vec<u32>, Vec<usize>, Vec<(u32, u32)>, Vec<u32>);

    /// The two views of `(member, item, value)` triples (one per pair: later ones ignored).
    fn views(n_members: usize, n_items: usize, triples: &[(u32, u32, u32)]) -> Views {
        let mut t = triples.to_vec();
        t.sort_unstable_by_key(|&(m, i, _)| (m, i));
        t.dedup_by_key(|&mut (m, i, _)| (m, i));
        let mut user_ptr = vec![0usize; n_members + 1];
        for &(m, _, _) in &t {
            user_ptr[m as usize + 1] += 1;
        }
        for m in 0..n_members {
            user_ptr[m + 1] += user_ptr[m];
        }
        let (user_item, user_int): (Vec<u32>, Vec<u32>) = t.iter().map(|&(_, i, v)| (i, v)).unzip();
        let mut by_item: Vec<(u32, u32, u32)> = t.iter().map(|&(m, i, v)| (i, m, v)).collect();
        by_item.sort_unstable();
        let mut item_ptr = vec![0usize; n_items + 1];
        for &(i, _, _) in &by_item {
            item_ptr[i as usize + 1] += 1;
        }
        for i in 0..n_items {
            item_ptr[i + 1] += item_ptr[i];
        }
        let span = |m: u32| (user_ptr[m as usize] as u32, user_ptr[m as usize + 1] as u32);
        let item_span = by_item.iter().map(|&(_, m, _)| span(m)).collect();
        let item_int = by_item.iter().map(|&(_, _, v)| v).collect();
        (user_item, user_int, item_ptr, item_span, item_int)
    }

    /// Every pair's cosine by brute force, the best `keep` of each item.
    fn naive(n_items: usize, triples: &[(u32, u32, u32)], keep: usize) -> Vec<Vec<(f32, u32)>> {
        let mut t = triples.to_vec();
        t.sort_unstable_by_key(|&(m, i, _)| (m, i));
        t.dedup_by_key(|&mut (m, i, _)| (m, i));
        let vec_of =
            |i: u32| -> Vec<(u32, u64)> { t.iter().filter(|x| x.1 == i).map(|x| (x.0, u64::from(x.2))).collect() };
        let vecs: Vec<_> = (0..n_items as u32).map(vec_of).collect();
        let norm: Vec<f64> = vecs.iter().map(|v| (v.iter().map(|x| x.1 * x.1).sum::<u64>() as f64).sqrt()).collect();
        (0..n_items)
            .map(|i| {
                let mut c: Vec<(f32, u32)> = (0..n_items)
                    .filter(|&j| j != i)
                    .filter_map(|j| {
                        let dot: u64 =
                            vecs[i].iter().filter_map(|a| vecs[j].iter().find(|b| b.0 == a.0).map(|b| a.1 * b.1)).sum();
                        (dot > 0).then(|| ((dot as f64 / (norm[i] * norm[j])) as f32, j as u32))
                    })
                    .collect();
                c.sort_unstable_by(crate::recommend::topk::better);
                c.truncate(keep);
                c
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// The fast rows (counting or weighted accumulator, any thread count, several
        /// blocks) are the brute-force cosine's best `keep`, exactly.
        #[test]
        fn rows_match_brute_force(
            raw in prop::collection::vec((0u32..40, 0u32..150, 1u32..4), 0..400),
            uniform in any::<bool>(),
            keep in 1usize..6,
            threads in 1usize..4,
        ) {
            let triples: Vec<(u32, u32, u32)> =
                raw.iter().map(|&(m, i, v)| (m, i, if uniform { 100 } else { v * 100 })).collect();
            let (n_members, n_items) = (40, 150);
            let (user_item, user_int, item_ptr, item_span, item_int) = views(n_members, n_items, &triples);
            let m = Matrix { user_item: &user_item, user_int: &user_int, item_ptr: &item_ptr, item_span: &item_span, item_int: &item_int };
            let nb = neighbours(&m, n_items, keep, threads).unwrap();
            let expected = naive(n_items, &triples, keep);
            for (i, want) in expected.iter().enumerate() {
                let r = nb.ptr[i]..nb.ptr[i + 1];
                let got: Vec<(f32, u32)> = nb.sims[r.clone()].iter().copied().zip(nb.items[r].iter().copied()).collect();
                prop_assert_eq!(&got, want, "item {}", i);
            }
        }
    }
}
