//! A list shared between snapshots that grows at its end in place.
//!
//! Why: a member's activity only grows, nearly always at its end (facts
//! arrive in time order), and every command appends to it. As a
//! [`Shared`](crate::shared::Shared) `Vec` the first append of a command
//! copied the whole list, because the store's snapshot still held it, and
//! the commit freed the copy it replaced: an order cost time in proportion
//! to the member's history (README "Long member histories"). A
//! [`SharedList`] is a length over a buffer that every version of the list
//! shares. Appending to the longest version writes the next slot of the
//! buffer, which no shorter version ever reads, so the store's snapshot and
//! the command's working copy stay valid side by side and nothing is
//! copied. Appending to a version that is not the longest (a command that
//! will fail its version check), inserting before the end and running out
//! of room copy the list, as before.
//!
//! It reads as a slice (`Deref<Target = [T]>`), and its serde form is the
//! sequence, so stored snapshots decode unchanged.
//!
//! ```
//! use crm_core::shared_list::SharedList;
//! let mut with_room = Vec::with_capacity(8);
//! with_room.extend([1, 2, 3]);
//! let stored: SharedList<u32> = SharedList::from(with_room);
//! let mut working = stored.clone();
//! working.push(4); // written in place: `stored` still reads three
//! assert!(SharedList::shares_buffer(&stored, &working));
//! assert_eq!((&stored[..], &working[..]), (&[1, 2, 3][..], &[1, 2, 3, 4][..]));
//! let mut stale = stored.clone();
//! stale.push(5); // the buffer's next slot is taken: this one copies
//! assert!(!SharedList::shares_buffer(&stored, &stale));
//! assert_eq!((&stale[..], &working[..]), (&[1, 2, 3, 5][..], &[1, 2, 3, 4][..]));
//! ```

use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Spare slots a copy gets at least: a command appends one to three
/// entries (an order, the points it earns, a bonus), and the next command
/// then appends in place.
const MIN_ROOM: usize = 4;

/// See the module docs.
pub struct SharedList<T> {
    /// `None` for an empty list that was never appended to (no allocation).
    buf: Option<Arc<Buffer<T>>>,
    /// How many of the buffer's slots this version holds.
    len: usize,
}

/// Slots written once each, in order.
///
/// Invariants: `filled` only grows; a slot below `filled` is written by
/// the one `push` that raised `filled` past it, right after raising it and
/// before that `push` returns; a [`SharedList`] of length `len` over this
/// buffer exists only once its `push` (or its construction) has written
/// every slot below `len`, and reaches another thread only through
/// something that synchronises (a lock, a channel, a scope's join).
struct Buffer<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    /// Slots taken so far: the length of the longest version.
    filled: AtomicUsize,
}

// SAFETY: slots are written once, by the thread that took them with
// `filled`'s compare-exchange, while no version long enough to read them
// exists; afterwards they are only read (shared `&T`). So sharing the buffer
// across threads is sharing `&T`s (needs `T: Sync`) and dropping the values
// on whichever thread drops the last version (needs `T: Send`).
unsafe impl<T: Send + Sync> Send for Buffer<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Buffer<T> {}

impl<T> Buffer<T> {
    fn with_room(capacity: usize) -> Buffer<T> {
        Buffer { slots: (0..capacity).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect(), filled: 0.into() }
    }
}

impl<T> Drop for Buffer<T> {
    fn drop(&mut self) {
        let filled = *self.filled.get_mut();
        for slot in &mut self.slots[..filled] {
            // SAFETY: every slot below `filled` was written (see `Buffer`);
            // `&mut self` means no version reads it any more.
            unsafe { slot.get_mut().assume_init_drop() };
        }
    }
}

impl<T> SharedList<T> {
    /// An empty list (allocates nothing).
    pub const fn new() -> SharedList<T> {
        SharedList { buf: None, len: 0 }
    }

    /// Whether two versions share one buffer (appends did not copy).
    pub fn shares_buffer(a: &SharedList<T>, b: &SharedList<T>) -> bool {
        match (&a.buf, &b.buf) {
            (Some(x), Some(y)) => Arc::ptr_eq(x, y),
            _ => false,
        }
    }

    /// Append `value`: in place when this version is the buffer's longest
    /// and the buffer has room, else into a copy (see the module docs).
    pub fn push(&mut self, value: T)
    where
        T: Clone,
    {
        if let Some(buf) = &self.buf {
            let taken = self.len < buf.slots.len()
                && buf.filled.compare_exchange(self.len, self.len + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok();
            if taken {
                // SAFETY: the compare-exchange gave this call slot `len`
                // alone, and no version of length above `len` exists yet.
                unsafe { (*buf.slots[self.len].get()).write(value) };
                self.len += 1;
                return;
            }
        }
        *self = SharedList::collect(self.iter().cloned().chain(std::iter::once(value)), room(self.len + 1));
    }

    /// Insert `value` at `index` (`push` at the end; before it the list is
    /// copied).
    ///
    /// # Panics
    /// If `index > len`, as `Vec::insert`.
    pub fn insert(&mut self, index: usize, value: T)
    where
        T: Clone,
    {
        if index == self.len {
            return self.push(value);
        }
        let (before, after) = self.split_at(index);
        let values = before.iter().cloned().chain(std::iter::once(value)).chain(after.iter().cloned());
        *self = SharedList::collect(values, room(self.len + 1));
    }

    /// A list of `values` in a new buffer of `capacity` slots (at least as
    /// many as there are values): each value written once, straight into
    /// its slot.
    fn collect(values: impl IntoIterator<Item = T>, capacity: usize) -> SharedList<T> {
        let mut buf = Buffer::with_room(capacity);
        let mut len = 0;
        for (slot, value) in buf.slots.iter_mut().zip(values) {
            slot.get_mut().write(value);
            len += 1;
            // Counted as written at once: if the next value's clone panics,
            // the buffer still drops the values written so far.
            *buf.filled.get_mut() = len;
        }
        if len == 0 {
            return SharedList::new();
        }
        SharedList { buf: Some(Arc::new(buf)), len }
    }

    /// Empty this version (the others keep their values).
    pub fn clear(&mut self) {
        *self = SharedList::new();
    }
}

/// The capacity of a copy holding `len` values: a quarter more, at least
/// [`MIN_ROOM`] more, so appends copy a long list once per quarter of its
/// length and a short one every few commands.
fn room(len: usize) -> usize {
    len + (len / 4).max(MIN_ROOM)
}

impl<T> From<Vec<T>> for SharedList<T> {
    /// Takes the values over, with the vector's spare room (none when it
    /// has none).
    fn from(list: Vec<T>) -> SharedList<T> {
        if list.is_empty() {
            return SharedList::new();
        }
        let capacity = list.capacity();
        SharedList::collect(list, capacity)
    }
}

impl<T> Deref for SharedList<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match &self.buf {
            // SAFETY: the slots below `len` are written (see `Buffer`) and
            // never written again; `UnsafeCell<MaybeUninit<T>>` has `T`'s
            // layout.
            Some(buf) => unsafe { std::slice::from_raw_parts(buf.slots.as_ptr().cast::<T>(), self.len) },
            None => &[],
        }
    }
}

impl<T> Clone for SharedList<T> {
    /// Another version of the same length over the same buffer: no copy.
    fn clone(&self) -> Self {
        SharedList { buf: self.buf.clone(), len: self.len }
    }
}

impl<T> Default for SharedList<T> {
    fn default() -> Self {
        SharedList::new()
    }
}

impl<T: PartialEq> PartialEq for SharedList<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq> Eq for SharedList<T> {}

impl<T: fmt::Debug> fmt::Debug for SharedList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<'a, T> IntoIterator for &'a SharedList<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Serialize> Serialize for SharedList<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SharedList<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut list = Vec::<T>::deserialize(d)?;
        list.shrink_to_fit();
        Ok(SharedList::from(list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn versions_read_their_own_length_while_the_longest_appends() {
        let mut room = Vec::with_capacity(4);
        room.push(String::from("x"));
        let a = SharedList::from(room);
        let mut b = a.clone();
        b.push("y".into());
        let mut c = b.clone();
        c.push("z".into());
        assert!(SharedList::shares_buffer(&a, &c), "appended in place");
        assert_eq!(*a, ["x"]);
        assert_eq!(*b, ["x", "y"]);
        assert_eq!(*c, ["x", "y", "z"]);
        // `b` is not the longest any more: its append copies.
        b.push("w".into());
        assert!(!SharedList::shares_buffer(&b, &c));
        assert_eq!(*b, ["x", "y", "w"]);
        assert_eq!(*c, ["x", "y", "z"]);
        drop(c);
        assert_eq!(&a[..], ["x"]);
    }

    #[test]
    fn a_copy_gets_a_quarter_more_room_and_at_least_a_few_slots() {
        for len in [0, 1, 10, 64, 1_000] {
            let stored = SharedList::from((0..len as u32).collect::<Vec<_>>());
            let mut working = stored.clone();
            working.push(0);
            let slots = working.buf.as_ref().map(|b| b.slots.len()).unwrap();
            assert_eq!(slots, len + 1 + ((len + 1) / 4).max(MIN_ROOM), "{len}");
            for i in 1..(slots - len) {
                let at = working.clone();
                working.push(i as u32);
                assert!(SharedList::shares_buffer(&at, &working), "in place at {len} + {i}");
            }
            assert_eq!(stored.len(), len);
            assert!(stored.iter().copied().eq(0..len as u32));
        }
    }

    #[test]
    fn the_serde_form_is_the_sequence() {
        let v = SharedList::from(vec![1u8, 2]);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "[1,2]");
        assert_eq!(serde_json::from_str::<SharedList<u8>>(&json).unwrap(), v);
        assert_eq!(serde_json::from_str::<SharedList<u8>>("[]").unwrap(), SharedList::new());
    }

    #[test]
    fn versions_on_other_threads_read_what_they_were_given() {
        let mut list = SharedList::from((0..100u64).map(|i| i.to_string()).collect::<Vec<_>>());
        std::thread::scope(|s| {
            for round in 0..8u64 {
                let given = list.clone();
                s.spawn(move || {
                    let mut mine = given.clone();
                    mine.push(format!("t{round}"));
                    assert_eq!(given.len() + 1, mine.len());
                    assert!(given.iter().zip(0..).take(100).all(|(v, i)| *v == i.to_string()));
                });
                list.push(format!("m{round}"));
            }
        });
        assert_eq!(list.len(), 108);
        assert_eq!(list.last().map(String::as_str), Some("m7"));
    }

    /// Operations on a list and its versions, each version checked against
    /// a `Vec` copied at every clone.
    #[derive(Debug, Clone)]
    enum Op {
        Push(usize, u16),
        Insert(usize, usize, u16),
        Clone(usize),
        Clear(usize),
        Drop(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<usize>(), any::<u16>()).prop_map(|(v, x)| Op::Push(v, x)),
            1 => (any::<usize>(), any::<usize>(), any::<u16>()).prop_map(|(v, i, x)| Op::Insert(v, i, x)),
            3 => any::<usize>().prop_map(Op::Clone),
            1 => any::<usize>().prop_map(Op::Clear),
            1 => any::<usize>().prop_map(Op::Drop),
        ]
    }

    proptest! {
        #[test]
        fn every_version_reads_as_a_vector_copied_at_each_clone(
            start in proptest::collection::vec(any::<u16>(), 0..80),
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            // Boxed values, so a value read after it was dropped or never
            // written shows (and leaks or double frees are the allocator's).
            let mut lists = vec![SharedList::from(start.iter().map(|&x| Box::new(x)).collect::<Vec<_>>())];
            let mut models = vec![start.clone()];
            for op in ops {
                let n = lists.len();
                match op {
                    Op::Push(v, x) => {
                        lists[v % n].push(Box::new(x));
                        models[v % n].push(x);
                    }
                    Op::Insert(v, i, x) => {
                        let at = i % (models[v % n].len() + 1);
                        lists[v % n].insert(at, Box::new(x));
                        models[v % n].insert(at, x);
                    }
                    Op::Clone(v) => {
                        lists.push(lists[v % n].clone());
                        models.push(models[v % n].clone());
                    }
                    Op::Clear(v) => {
                        lists[v % n].clear();
                        models[v % n].clear();
                    }
                    Op::Drop(v) if n > 1 => {
                        lists.remove(v % n);
                        models.remove(v % n);
                    }
                    Op::Drop(_) => {}
                }
                for (list, model) in lists.iter().zip(&models) {
                    prop_assert!(list.iter().map(|b| **b).eq(model.iter().copied()));
                }
            }
        }
    }
}
