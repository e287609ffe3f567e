//! Order histories as columns: one contiguous array per field and dense member
//! indices, so batch analytics over millions of orders touch no per-member heap
//! objects. Member ids live once, in one string arena ([`MemberIds`]).

use std::cmp::Ordering;

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::error::{CrmError, Result};

/// Days since 1970-01-01 (UTC calendar days): the time axis of the analytics.
pub type Day = i32;

/// The day number of a calendar date.
pub fn day_of_date(date: NaiveDate) -> Day {
    // 1970-01-01 is day 719,163 counted from 0001-01-01 (day 1).
    date.num_days_from_ce() - 719_163
}

/// The UTC calendar day of an instant.
pub fn day_of_instant(t: DateTime<Utc>) -> Day {
    t.timestamp().div_euclid(86_400) as Day
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm):
/// integer arithmetic only, for the hot path of the CSV reader.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> Day {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) as Day
}

/// Member ids interned to dense indices `0..len()`, all in one string arena.
#[derive(Debug, Clone, Default)]
pub struct MemberIds {
    arena: Vec<u8>,
    /// `ends[i]` is the end of id `i` in `arena` (its start is `ends[i - 1]`, or 0).
    ends: Vec<usize>,
    /// Open addressing table, load factor at most 1/2.
    slots: Vec<Slot>,
    /// Integer ids of up to 9 digits, indexed by value: `(digits << 28) | (index + 1)`,
    /// 0 when free. Dense integer ids (the usual member numbers) skip hashing and hit a
    /// small array instead of a large table; see [`MemberIds::intern`].
    direct: Vec<u32>,
    /// Integer ids of up to 9 digits that went to `slots` instead (beyond the direct
    /// range when first seen, or a second spelling of a value, `"07"` after `"7"`).
    hashed_numeric: usize,
    /// Values below this go to the direct table whatever the number of ids (see
    /// [`MemberIds::with_direct_range`]); the default is [`DIRECT_BASE`].
    direct_floor: usize,
}

/// The direct table covers values below this plus four per interned id.
const DIRECT_BASE: usize = 1 << 20;
/// Largest index the direct table can hold (28 bits, minus the free marker).
const DIRECT_MAX_INDEX: u32 = (1 << 28) - 2;

/// The value of an id of 1 to 9 ASCII digits.
fn small_integer(id: &[u8]) -> Option<usize> {
    if id.is_empty() || id.len() > 9 {
        return None;
    }
    id.iter().try_fold(0usize, |v, &c| c.is_ascii_digit().then(|| v * 10 + usize::from(c - b'0')))
}

/// One slot of the id table. Ids of up to 8 bytes (the common case: numeric or
/// short codes) are compared on `key` alone, so a lookup touches one cache line;
/// longer ids keep their hash in `key` and are confirmed against the arena.
#[derive(Debug, Clone, Copy)]
struct Slot {
    key: u64,
    len: u32,
    /// `EMPTY`, or the id's index.
    index: u32,
}

const EMPTY: u32 = u32::MAX;
const FREE: Slot = Slot { key: 0, len: 0, index: EMPTY };

/// The first 8 bytes of an id, zero-padded, big-endian (so keys order like the bytes).
pub(crate) fn prefix(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    let n = bytes.len().min(8);
    w[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(w)
}

/// FxHash-style multiplicative hash over 8-byte words: member ids are short and
/// trusted (they come from the host's own files), so speed beats DoS resistance.
fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = bytes.len() as u64;
    for c in bytes.chunks(8) {
        h = (h.rotate_left(5) ^ prefix(c)).wrapping_mul(K);
    }
    // Final avalanche so the low bits (the slot) depend on every byte.
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 32)
}

/// The table key of an id: the id itself when short, else its hash.
fn key(bytes: &[u8], h: u64) -> u64 {
    if bytes.len() <= 8 {
        prefix(bytes)
    } else {
        h
    }
}

impl MemberIds {
    /// An empty set of ids.
    pub fn new() -> MemberIds {
        MemberIds::default()
    }

    /// An empty set whose integer ids below `values` are indexed directly (no hashing)
    /// however few ids there are; at most 4 bytes per value up to the largest id seen.
    ///
    /// By default the direct range grows with the number of ids, so that one large id
    /// cannot make a small set allocate much. A reader of a large input knows better: the
    /// second half of an order file starts at order ids in the millions with no ids yet,
    /// and would hash them all. `values` proportional to the input size keeps the memory
    /// proportional to it too.
    pub(crate) fn with_direct_range(values: usize) -> MemberIds {
        MemberIds { direct_floor: values, ..MemberIds::default() }
    }

    /// Number of distinct ids.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when no id was interned.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The id of index `i`.
    pub fn get(&self, i: u32) -> &str {
        // Only valid UTF-8 is interned (checked in `intern`).
        std::str::from_utf8(self.bytes(i)).unwrap_or_default()
    }

    /// The UTF-8 bytes of the id of index `i` (no validation: for writers).
    pub fn bytes(&self, i: u32) -> &[u8] {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.arena[start..self.ends[i]]
    }

    /// Probe for `id`: `Ok(index)` when present, else `Err(free slot)`.
    fn probe(&self, id: &[u8]) -> std::result::Result<u32, usize> {
        let h = hash(id);
        let (k, len) = (key(id, h), id.len() as u32);
        let mask = self.slots.len() - 1;
        let mut slot = h as usize & mask;
        loop {
            let s = self.slots[slot];
            if s.index == EMPTY {
                return Err(slot);
            }
            if s.key == k && s.len == len && (len <= 8 || self.bytes(s.index) == id) {
                return Ok(s.index);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The index of `id`, adding it when new. Fails on invalid UTF-8 or when
    /// more than `u32::MAX - 1` ids are interned.
    pub fn intern(&mut self, id: &[u8]) -> Result<u32> {
        let limit = self.direct_floor.max(DIRECT_BASE) + 4 * self.len();
        let direct = small_integer(id).filter(|&v| v < limit);
        if let Some(v) = direct {
            match self.direct.get(v).copied().unwrap_or(0) {
                0 if self.hashed_numeric == 0 || self.probe_slots(id).is_none() => {
                    if let Ok(index) = u32::try_from(self.len()) {
                        if index <= DIRECT_MAX_INDEX {
                            if v >= self.direct.len() {
                                let size = (v + 1).next_power_of_two().min(limit + 1).max(v + 1);
                                self.direct.resize(size, 0);
                            }
                            self.push(id)?;
                            self.direct[v] = ((id.len() as u32) << 28) | (index + 1);
                            return Ok(index);
                        }
                    }
                }
                e if (e >> 28) as usize == id.len() => return Ok((e & 0x0fff_ffff) - 1),
                _ => {}
            }
        }
        if self.slots.len() < 2 * (self.ends.len() + 1) {
            self.grow();
        }
        let slot = match self.probe(id) {
            Ok(index) => return Ok(index),
            Err(slot) => slot,
        };
        let len = u32::try_from(id.len()).map_err(|_| CrmError::invalid("member_id", "longer than 4 GiB"))?;
        let index = self.push(id)?;
        self.slots[slot] = Slot { key: key(id, hash(id)), len, index };
        if small_integer(id).is_some() {
            self.hashed_numeric += 1;
        }
        Ok(index)
    }

    /// Append a new id to the arena.
    fn push(&mut self, id: &[u8]) -> Result<u32> {
        if std::str::from_utf8(id).is_err() {
            return Err(CrmError::invalid("member_id", "is not valid UTF-8"));
        }
        let index = u32::try_from(self.ends.len())
            .ok()
            .filter(|&i| i < EMPTY)
            .ok_or_else(|| CrmError::invalid("member_id", "more than 4,294,967,294 distinct members"))?;
        self.arena.extend_from_slice(id);
        self.ends.push(self.arena.len());
        Ok(index)
    }

    fn probe_slots(&self, id: &[u8]) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        self.probe(id).ok()
    }

    /// The index of `id`, if interned.
    pub fn find(&self, id: &str) -> Option<u32> {
        let id = id.as_bytes();
        if let Some(&e) = small_integer(id).and_then(|v| self.direct.get(v)) {
            if e != 0 && (e >> 28) as usize == id.len() {
                return Some((e & 0x0fff_ffff) - 1);
            }
        }
        self.probe_slots(id)
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.slots, vec![FREE; size]);
        let mask = size - 1;
        for s in old.into_iter().filter(|s| s.index != EMPTY) {
            let mut slot = hash(self.bytes(s.index)) as usize & mask;
            while self.slots[slot].index != EMPTY {
                slot = (slot + 1) & mask;
            }
            self.slots[slot] = s;
        }
    }

    /// True when every id is a non-empty run of ASCII digits.
    pub fn all_numeric(&self) -> bool {
        (0..self.len() as u32).all(|i| {
            let b = self.bytes(i);
            !b.is_empty() && b.iter().all(u8::is_ascii_digit)
        })
    }

    /// Compare two ids in their natural order: numerically when `numeric`
    /// (any length, leading zeros ignored, ties broken by the text), else by bytes.
    pub fn compare(&self, a: u32, b: u32, numeric: bool) -> Ordering {
        let (x, y) = (self.bytes(a), self.bytes(b));
        if numeric {
            let digits = |s: &[u8]| s.len() - s.iter().take_while(|&&c| c == b'0').count();
            let (lx, ly) = (digits(x), digits(y));
            lx.cmp(&ly).then_with(|| x[x.len() - lx..].cmp(&y[y.len() - ly..])).then_with(|| x.cmp(y))
        } else {
            x.cmp(y)
        }
    }

    /// Sort `items` by the natural order of their ids (`id` gives an item's id
    /// index): numeric when all ids of the set are integers (`"9" < "10"`,
    /// `"007"` next to `"7"`), else lexicographic by UTF-8 bytes.
    ///
    /// Items are sorted on a precomputed 64-bit key (the value of a numeric id
    /// up to 19 digits, else the first 8 bytes), and only key ties look at the
    /// ids themselves, so a million ids sort without a million string compares.
    pub fn sort_natural_by<T: Copy>(&self, items: &mut [T], id: impl Fn(&T) -> u32) {
        let numeric = self.all_numeric();
        let sort_key = |i: u32| -> u64 {
            let b = self.bytes(i);
            let digits = &b[b.iter().take_while(|&&c| c == b'0').count()..];
            if !numeric {
                prefix(b)
            } else if digits.len() <= 19 {
                digits.iter().fold(0u64, |v, &c| v * 10 + u64::from(c - b'0'))
            } else {
                u64::MAX
            }
        };
        let mut keyed: Vec<(u64, u32, usize)> =
            items.iter().enumerate().map(|(pos, item)| (sort_key(id(item)), id(item), pos)).collect();
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| self.compare(a.1, b.1, numeric)));
        let sorted: Vec<T> = keyed.iter().map(|k| items[k.2]).collect();
        items.copy_from_slice(&sorted);
    }
}

/// An order history as columns: row `i` is one order of member `member[i]` on
/// day `day[i]` for `amount[i]` minor units (`amount / 10^scale` in currency units).
#[derive(Debug, Clone, Default)]
pub struct Orders {
    /// Dense member index per order (into `ids`).
    pub member: Vec<u32>,
    /// UTC calendar day of each order.
    pub day: Vec<Day>,
    /// Amount of each order in minor units (exact; e.g. cents when `scale` is 2).
    pub amount: Vec<i64>,
    /// Digits after the decimal point of `amount`.
    pub scale: u32,
    /// The member ids behind the indices.
    pub ids: MemberIds,
}

impl Orders {
    /// Number of orders.
    pub fn len(&self) -> usize {
        self.member.len()
    }

    /// True when there are no orders.
    pub fn is_empty(&self) -> bool {
        self.member.is_empty()
    }

    /// Check that the columns have one length and the indices point into `ids`.
    pub fn validate(&self) -> Result<()> {
        check_columns(&self.member, &self.day, &self.amount, self.ids.len())
    }
}

/// The shared column checks of every batch function: equal lengths, member indices below `members`.
pub(crate) fn check_columns(member: &[u32], day: &[Day], amount: &[i64], members: usize) -> Result<()> {
    if day.len() != member.len() {
        return Err(CrmError::invalid("day", format!("has {} rows, member has {}", day.len(), member.len())));
    }
    if amount.len() != member.len() {
        return Err(CrmError::invalid("amount", format!("has {} rows, member has {}", amount.len(), member.len())));
    }
    if let Some(i) = member.iter().position(|&m| m as usize >= members) {
        return Err(CrmError::invalid(
            format!("member[{i}]"),
            format!("index {} is not below the member count {members}", member[i]),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_match_chrono() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let mut d = NaiveDate::from_ymd_opt(1899, 12, 25).unwrap();
        while d < NaiveDate::from_ymd_opt(2101, 3, 2).unwrap() {
            assert_eq!(day_of_date(d) as i64, (d - epoch).num_days(), "{d}");
            assert_eq!(days_from_civil(d.year().into(), d.month(), d.day()), day_of_date(d), "{d}");
            d = d.succ_opt().unwrap();
        }
    }

    #[test]
    fn interning_is_dense_and_stable() {
        let mut ids = MemberIds::new();
        let n = 5_000;
        for i in 0..n {
            assert_eq!(ids.intern(format!("m{i}").as_bytes()).unwrap(), i);
        }
        for i in (0..n).rev() {
            assert_eq!(ids.intern(format!("m{i}").as_bytes()).unwrap(), i);
            assert_eq!(ids.get(i), format!("m{i}"));
        }
        assert_eq!(ids.find("m42"), Some(42));
        assert_eq!(ids.find("nope"), None);
        assert!(ids.intern(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn a_direct_range_indexes_large_ids_from_the_start() {
        let mut ids = MemberIds::with_direct_range(8_000_000);
        for (i, v) in (5_000_000..5_010_000u32).enumerate() {
            assert_eq!(ids.intern(v.to_string().as_bytes()).unwrap(), i as u32);
        }
        assert_eq!(ids.hashed_numeric, 0);
        assert_eq!(ids.intern(b"0005000001").unwrap(), 10_000); // another spelling: hashed
        assert_eq!(ids.find("5000001"), Some(1));
        assert_eq!(ids.find("0005000001"), Some(10_000));
        // Without it, the same ids are hashed until the range has grown past them.
        let mut ids = MemberIds::new();
        for v in 5_000_000..5_010_000u32 {
            ids.intern(v.to_string().as_bytes()).unwrap();
        }
        assert_eq!(ids.hashed_numeric, 10_000);
    }

    #[test]
    fn integer_ids_with_several_spellings_stay_distinct() {
        let mut ids = MemberIds::new();
        // "5000000" is beyond the direct range when first seen, then the range grows past it.
        let spellings = ["7", "007", "07", "5000000", "0", "00", "123456789", "1234567890"];
        for (i, s) in spellings.iter().enumerate() {
            assert_eq!(ids.intern(s.as_bytes()).unwrap(), i as u32, "{s}");
        }
        for i in 0..2_000_000u32 {
            ids.intern(i.to_string().as_bytes()).unwrap();
        }
        for (i, s) in spellings.iter().enumerate() {
            assert_eq!(ids.intern(s.as_bytes()).unwrap(), i as u32, "{s}");
            assert_eq!(ids.find(s), Some(i as u32), "{s}");
            assert_eq!(ids.get(i as u32), *s);
        }
        assert_eq!(ids.len(), spellings.len() + 2_000_000 - 2); // "7" and "0" were there
        assert_eq!(ids.find("4999999"), None);
    }

    #[test]
    fn natural_order_is_numeric_for_integer_ids() {
        let mut ids = MemberIds::new();
        for s in ["10", "9", "007", "7", "100"] {
            ids.intern(s.as_bytes()).unwrap();
        }
        let mut order: Vec<u32> = (0..5).collect();
        ids.sort_natural_by(&mut order, |&i| i);
        let sorted: Vec<&str> = order.iter().map(|&i| ids.get(i)).collect();
        assert_eq!(sorted, ["007", "7", "9", "10", "100"]);
        ids.intern(b"a1").unwrap();
        let mut order: Vec<u32> = (0..6).collect();
        ids.sort_natural_by(&mut order, |&i| i);
        let sorted: Vec<&str> = order.iter().map(|&i| ids.get(i)).collect();
        assert_eq!(sorted, ["007", "10", "100", "7", "9", "a1"]);
    }
}
