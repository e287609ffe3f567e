//! A plain bitset over member positions: the result of a batch evaluation,
//! and the operand of `and` / `or` / `not`, which become word-wise loops.

/// One bit per member position (bit `i % 64` of word `i / 64`); bits past
/// `len` are always zero.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Bitmap {
    words: Vec<u64>,
    len: usize,
}

impl Bitmap {
    /// `len` zero bits.
    pub fn zeros(len: usize) -> Bitmap {
        Bitmap { words: vec![0; len.div_ceil(64)], len }
    }

    /// `len` one bits.
    pub fn ones(len: usize) -> Bitmap {
        let mut b = Bitmap { words: vec![u64::MAX; len.div_ceil(64)], len };
        b.clear_tail();
        b
    }

    /// A bitmap from per-position booleans.
    pub fn from_bools(bits: impl IntoIterator<Item = bool>) -> Bitmap {
        let mut b = Bitmap::default();
        for bit in bits {
            b.push(bit);
        }
        b
    }

    /// Pack `pred(value)` for each value, 64 at a time, so the compiler can
    /// vectorise the comparison.
    pub(crate) fn from_fn<T>(values: &[T], pred: impl Fn(&T) -> bool) -> Bitmap {
        let mut words = Vec::with_capacity(values.len().div_ceil(64));
        let chunks = values.chunks_exact(64);
        let rest = chunks.remainder();
        // A fixed trip count of 64 lets LLVM unroll and vectorise the test.
        for chunk in chunks {
            let mut w = 0u64;
            for (j, v) in chunk.iter().enumerate() {
                w |= u64::from(pred(v)) << j;
            }
            words.push(w);
        }
        if !rest.is_empty() {
            let mut w = 0u64;
            for (j, v) in rest.iter().enumerate() {
                w |= u64::from(pred(v)) << j;
            }
            words.push(w);
        }
        Bitmap { words, len: values.len() }
    }

    /// Number of positions (members), not of set bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no positions at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bit at `i` (false past the end).
    pub fn get(&self, i: usize) -> bool {
        i < self.len && self.words[i / 64] >> (i % 64) & 1 == 1
    }

    /// Set bit `i`; ignored past the end.
    pub fn set(&mut self, i: usize, bit: bool) {
        if i < self.len {
            let mask = 1u64 << (i % 64);
            if bit {
                self.words[i / 64] |= mask;
            } else {
                self.words[i / 64] &= !mask;
            }
        }
    }

    /// Append one position.
    pub fn push(&mut self, bit: bool) {
        if self.len % 64 == 0 {
            self.words.push(0);
        }
        self.len += 1;
        self.set(self.len - 1, bit);
    }

    /// Number of set bits (members in the segment).
    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Positions of the set bits, ascending.
    pub fn ones_iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(k, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(k * 64 + bit)
            })
        })
    }

    /// The raw words (bit `i % 64` of word `i / 64`), e.g. to hand to a binding.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// `self &= other` (positions past the shorter length become zero).
    pub fn and_with(&mut self, other: &Bitmap) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= other.words.get(i).copied().unwrap_or(0);
        }
    }

    /// `self |= other` (over `self`'s length).
    pub fn or_with(&mut self, other: &Bitmap) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
        self.clear_tail();
    }

    /// `self &= !other`.
    pub fn and_not_with(&mut self, other: &Bitmap) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w &= !o;
        }
    }

    /// Flip every bit.
    pub fn negate(&mut self) {
        for w in &mut self.words {
            *w = !*w;
        }
        self.clear_tail();
    }

    fn clear_tail(&mut self) {
        let rem = self.len % 64;
        if rem != 0 {
            if let Some(last) = self.words.last_mut() {
                *last &= (1u64 << rem) - 1;
            }
        }
    }
}
