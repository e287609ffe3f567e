//! Copy-on-write parts of a member snapshot.
//!
//! Why: every command loads the member's snapshot from the store, changes
//! it, and commits the new one in place of the old. With plain collections
//! the load copied every order, lot, outreach record and tier change of the
//! member, and the commit freed the replaced copy — for the monthly member
//! day, where half a million members each gain one outreach record, that
//! copying and freeing was most of the work. A [`Shared`] part is cloned by
//! bumping a reference count; the first write through it copies that part
//! only (`Arc::make_mut`), so a command pays for what it changes, and the
//! store's snapshot and the engine's working copy share everything else.
//!
//! `Shared<T>` reads as `T` (`Deref`) and writes as `T` (`DerefMut`, which
//! un-shares first), and its serde form is `T`'s, so stored snapshots and
//! events decode unchanged.
//!
//! ```
//! use crm_core::shared::Shared;
//! let store: Shared<Vec<u32>> = Shared::new(vec![1, 2, 3]);
//! let mut working = store.clone(); // no copy yet
//! assert!(Shared::ptr_eq(&store, &working));
//! working.push(4); // copies this part, once
//! assert_eq!((store.len(), working.len()), (3, 4));
//! assert!(!Shared::ptr_eq(&store, &working));
//! ```

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value shared between snapshots until one of them changes it (see the
/// module docs).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    pub fn new(value: T) -> Shared<T> {
        Shared(Arc::new(value))
    }

    /// Whether two handles still share one value (nothing was copied).
    pub fn ptr_eq(a: &Shared<T>, b: &Shared<T>) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// The value to change in place, or `None` while another handle shares
    /// it (when a change that rebuilds it anyway should not copy it first).
    pub fn get_mut(this: &mut Shared<T>) -> Option<&mut T> {
        Arc::get_mut(&mut this.0)
    }
}

impl<T: Clone> Shared<T> {
    /// The value, copied only if another handle still shares it.
    pub fn into_inner(this: Shared<T>) -> T {
        Arc::unwrap_or_clone(this.0)
    }
}

impl<T: Clone> Shared<Vec<T>> {
    /// The list to change in place, with room for `additional` more
    /// elements. While the list is shared, the copy is made with that room,
    /// where writing through `DerefMut` would copy it at its length and then
    /// move it to a buffer twice as large to grow it: one allocation and
    /// one copy of every element less, and a stored list that holds no
    /// spare half.
    pub fn with_room(&mut self, additional: usize) -> &mut Vec<T> {
        if Arc::get_mut(&mut self.0).is_none() {
            let mut list = Vec::with_capacity(self.0.len() + additional);
            list.extend_from_slice(&self.0);
            self.0 = Arc::new(list);
        }
        let list = Arc::get_mut(&mut self.0).expect("not shared: copied above");
        list.reserve(additional);
        list
    }

    /// Append `value` (see [`Shared::with_room`]).
    ///
    /// ```
    /// use crm_core::shared::Shared;
    /// let stored: Shared<Vec<u32>> = Shared::new(vec![1, 2, 3]);
    /// let mut working = stored.clone();
    /// working.push(4);
    /// assert_eq!((stored.len(), working.len(), working.capacity()), (3, 4, 4));
    /// ```
    pub fn push(&mut self, value: T) {
        self.with_room(1).push(value);
    }

    /// Insert `value` at `index` (see [`Shared::with_room`]).
    pub fn insert(&mut self, index: usize, value: T) {
        self.with_room(1).insert(index, value);
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Shared::new(value)
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Writing un-shares: the first write after a clone copies the value.
impl<T: Clone> DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Shared::new)
    }
}

/// Consumes the value (copied only if still shared).
impl<T: Clone + IntoIterator> IntoIterator for Shared<T> {
    type Item = T::Item;
    type IntoIter = T::IntoIter;
    fn into_iter(self) -> Self::IntoIter {
        Shared::into_inner(self).into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Shared<T>
where
    &'a T: IntoIterator,
{
    type Item = <&'a T as IntoIterator>::Item;
    type IntoIter = <&'a T as IntoIterator>::IntoIter;
    fn into_iter(self) -> Self::IntoIter {
        (**self).into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_copies_only_the_written_handle() {
        let a = Shared::new(vec![String::from("x")]);
        let mut b = a.clone();
        b[0].push('y');
        assert_eq!(a[0], "x");
        assert_eq!(b[0], "xy");
    }

    #[test]
    fn a_push_to_a_shared_list_copies_it_once_with_room() {
        let a = Shared::new(vec![String::from("x"), String::from("y")]);
        let mut b = a.clone();
        b.push(String::from("z"));
        assert_eq!(*a, ["x", "y"]);
        assert_eq!(*b, ["x", "y", "z"]);
        assert_eq!(b.capacity(), 3);
        let mut c = b.clone();
        c.insert(0, String::from("w"));
        assert_eq!((c.len(), c.capacity()), (4, 4));
        assert_eq!(*c, ["w", "x", "y", "z"]);
        // Not shared any more: the next push is in place.
        assert!(Shared::get_mut(&mut b).is_some());
        b.push(String::from("w"));
        assert_eq!(*b, ["x", "y", "z", "w"]);
        assert_eq!(*a, ["x", "y"]);
    }

    #[test]
    fn the_serde_form_is_the_inner_value() {
        let v: Shared<Vec<u8>> = Shared::new(vec![1, 2]);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "[1,2]");
        assert_eq!(serde_json::from_str::<Shared<Vec<u8>>>(&json).unwrap(), v);
    }
}
