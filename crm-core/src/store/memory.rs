//! In-memory store: for tests, what-if runs and hosts that persist elsewhere.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use chrono::{DateTime, Utc};

use super::{Commit, CommitError, Receipt, Store, Versioned, VersionedTally};
use crate::error::CrmError;
use crate::member::{Identity, MemberId};
use crate::state::{Event, MemberState};

/// One member: its snapshot, where its events are in the [`Log`], and the
/// key it has in the due index (its [`MemberState::next_due_at`] when it was
/// last written).
struct Slot {
    state: MemberState,
    /// Its first and last event in the log ([`NO_EVENT`]: none yet).
    first: u32,
    last: u32,
    /// Events stored: the member's version.
    count: u64,
    due_at: Option<DateTime<Utc>>,
}

/// Fewest due members whose ids `due_members` copies on several threads.
const PARALLEL_IDS_FROM: usize = 1 << 16;

/// No event (the end of a member's chain).
const NO_EVENT: u32 = u32::MAX;
/// Events per log chunk (~2 MB): a chunk is allocated once, full size, and
/// never moves.
const CHUNK: usize = 1 << 14;

/// Every member's events in one append-only log of fixed-size chunks, each
/// event linked to the member's next one.
///
/// Why: with a `Vec<Event>` per member, a member's log was copied to a
/// buffer twice its size whenever it filled up — in a daily `run_due` over
/// half a million members that reallocation (and the fresh pages it
/// touched) was a fifth of the work. Appending here never copies an event;
/// reading a member's events (as-of queries, replay, erasure) follows its
/// chain, which only those rarer reads pay for.
#[derive(Default)]
struct Log {
    chunks: Vec<Vec<(Event, u32)>>,
    len: usize,
}

impl Log {
    fn get(&self, id: u32) -> &(Event, u32) {
        &self.chunks[id as usize / CHUNK][id as usize % CHUNK]
    }

    fn get_mut(&mut self, id: u32) -> &mut (Event, u32) {
        &mut self.chunks[id as usize / CHUNK][id as usize % CHUNK]
    }

    /// Append `event` as the member's newest.
    fn append(&mut self, slot: &mut Slot, event: Event) {
        if self.len % CHUNK == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let id = self.len as u32; // below NO_EVENT: checked by the commit
        self.chunks.last_mut().expect("a chunk with room").push((event, NO_EVENT));
        self.len += 1;
        match slot.last {
            NO_EVENT => slot.first = id,
            last => self.get_mut(last).1 = id,
        }
        slot.last = id;
        slot.count += 1;
    }

    /// The ids of a member's events, oldest first.
    fn chain<'a>(&'a self, slot: &Slot) -> impl Iterator<Item = u32> + 'a {
        std::iter::successors(Some(slot.first).filter(|&i| i != NO_EVENT), move |&i| {
            Some(self.get(i).1).filter(|&n| n != NO_EVENT)
        })
    }
}

#[derive(Default)]
struct Inner {
    /// Members by id: a position in `slots`. Slots are boxed so the table
    /// holds a small index (a million members would otherwise spend ~2 GB on
    /// the hash table's empty buckets sized for a whole snapshot).
    index: HashMap<MemberId, u32>,
    /// Boxed: growing the vector moves 8-byte pointers, not ~1 KB slots.
    #[allow(clippy::vec_box)]
    slots: Vec<Box<Slot>>,
    log: Log,
    /// `(next_due_at, slot)` of every member with something ahead: `run_due`
    /// reads the members due at `now` from here, O(due) instead of a scan.
    due: BTreeSet<(DateTime<Utc>, u32)>,
    identities: HashMap<Identity, MemberId>,
    orders: HashMap<String, MemberId>,
    receipt_index: HashMap<String, usize>,
    /// Receipts in commit order, each as its JSON encoding (the form the
    /// SQLite and PostgreSQL stores keep): ~400 bytes for an order's receipt
    /// instead of ~1.2 KB as a `Receipt` (the command's copy of the order and
    /// the outcome's maps). They are read back only for a repeated key,
    /// replay and erasure. Each is tagged with the slot of the member it is
    /// about (or [`NO_SLOT`], [`NO_MEMBER`]), so erasure finds a member's
    /// receipts without decoding the others.
    receipts: Vec<(u32, Box<[u8]>)>,
    tallies: HashMap<String, VersionedTally>,
}

impl Inner {
    fn slot(&self, id: &MemberId) -> Option<&Slot> {
        self.index.get(id).map(|&i| &*self.slots[i as usize])
    }
}

/// Receipt tag: about a member that was not stored when it was written.
const NO_SLOT: u32 = u32::MAX;
/// Receipt tag: about no member (`run_due`).
const NO_MEMBER: u32 = u32::MAX - 1;

/// A store that keeps everything in process memory behind one lock.
pub struct MemoryStore {
    inner: RwLock<Inner>,
    /// See [`Store::decision_workers`].
    workers: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store; `run_due` decides its chunks on every available core.
    pub fn new() -> MemoryStore {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        MemoryStore { inner: RwLock::default(), workers: cores }
    }

    /// An empty store whose `run_due` decides on at most `workers` threads
    /// (1: on the calling thread only). The outcome does not depend on it.
    pub fn with_decision_workers(workers: usize) -> MemoryStore {
        MemoryStore { workers: workers.max(1), ..MemoryStore::new() }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn load(&self, id: &MemberId) -> Result<Option<Versioned>, CrmError> {
        Ok(self.read().slot(id).map(|s| Versioned { state: s.state.clone(), version: s.count }))
    }

    /// All under one read lock: a writer waits once, not between members.
    fn load_many(&self, ids: &[MemberId]) -> Result<Vec<Option<Versioned>>, CrmError> {
        let g = self.read();
        Ok(ids.iter().map(|id| g.slot(id).map(|s| Versioned { state: s.state.clone(), version: s.count })).collect())
    }

    fn identity_owner(&self, identity: &Identity) -> Result<Option<MemberId>, CrmError> {
        Ok(self.read().identities.get(identity).cloned())
    }

    fn order_owner(&self, order_id: &str) -> Result<Option<MemberId>, CrmError> {
        Ok(self.read().orders.get(order_id).cloned())
    }

    fn receipt(&self, key: &str) -> Result<Option<Receipt>, CrmError> {
        let g = self.read();
        g.receipt_index.get(key).map(|&i| decode(&g.receipts[i].1)).transpose()
    }

    fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        // Encode (and redact) outside the lock.
        let erased = |m: &Option<MemberId>| m.as_ref().is_some_and(|m| commit.redact.contains(m));
        let encoded = commit
            .receipts
            .iter()
            .map(|r| if erased(&r.member_id) { encode(&redact(r.clone())) } else { encode(r) })
            .collect::<Result<Vec<_>, _>>()?;
        // The snapshots replaced, dropped after the lock is released (declared
        // before the guard, so dropped after it): freeing a member's maps and
        // strings need not hold up readers and other writers.
        let mut replaced = Vec::with_capacity(commit.members.len());
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        // Check everything first so a refused commit writes nothing.
        let new_events: usize = commit.members.iter().map(|w| w.events.len()).sum();
        if g.slots.len() + commit.members.len() >= NO_MEMBER as usize || g.log.len + new_events >= NO_EVENT as usize {
            return Err(CrmError::Store("the memory store is full".into()).into());
        }
        for w in &commit.members {
            let current = g.slot(&w.state.id).map_or(0, |s| s.count);
            if current != w.expected_version {
                return Err(CommitError::Stale { member: w.state.id.clone() });
            }
        }
        for t in &commit.tallies {
            if g.tallies.get(&t.key).map_or(0, |v| v.version) != t.expected_version {
                return Err(CommitError::StaleTally { key: t.key.clone() });
            }
        }
        for r in &commit.receipts {
            if g.receipt_index.contains_key(&r.key) {
                return Err(CommitError::DuplicateKey { key: r.key.clone() });
            }
        }
        let mut rewritten = Vec::new();
        for id in &commit.redact {
            let slot = g.index.get(id).copied();
            for (i, (tag, bytes)) in g.receipts.iter().enumerate() {
                if Some(*tag) == slot || *tag == NO_SLOT {
                    let r = decode(bytes)?;
                    if r.member_id.as_ref() == Some(id) {
                        rewritten.push((i, encode(&redact(r))?));
                    }
                }
            }
        }
        for (identity, owner) in &commit.identities {
            if let (Some(new), Some(old)) = (owner, g.identities.get(identity)) {
                let released = commit.identities.iter().any(|(i, o)| i == identity && o.is_none());
                if old != new && !released {
                    return Err(CommitError::IdentityTaken { identity: identity.clone(), owner: old.clone() });
                }
            }
        }
        let g = &mut *g;
        for w in commit.members {
            let due_at = w.state.next_due_at();
            let i = match g.index.get(&w.state.id) {
                Some(&i) => i,
                None => {
                    let i = g.slots.len() as u32; // below NO_MEMBER: checked above
                    g.index.insert(w.state.id.clone(), i);
                    let state = MemberState::new(w.state.id.clone(), w.state.created_at);
                    g.slots.push(Box::new(Slot { state, first: NO_EVENT, last: NO_EVENT, count: 0, due_at: None }));
                    i
                }
            };
            let slot = &mut *g.slots[i as usize];
            if slot.due_at != due_at {
                if let Some(old) = slot.due_at {
                    g.due.remove(&(old, i));
                }
                if let Some(new) = due_at {
                    g.due.insert((new, i));
                }
                slot.due_at = due_at;
            }
            replaced.push(std::mem::replace(&mut slot.state, w.state));
            for e in w.events {
                g.log.append(slot, e);
            }
        }
        for (identity, owner) in commit.identities {
            match owner {
                Some(m) => g.identities.insert(identity, m),
                None => g.identities.remove(&identity),
            };
        }
        for (order, member) in commit.orders {
            g.orders.insert(order, member);
        }
        for t in commit.tallies {
            g.tallies.insert(t.key, VersionedTally { tally: t.tally, version: t.expected_version + 1 });
        }
        for (r, bytes) in commit.receipts.into_iter().zip(encoded) {
            let i = g.receipts.len();
            let tag = match &r.member_id {
                None => NO_MEMBER,
                Some(m) => g.index.get(m).copied().unwrap_or(NO_SLOT),
            };
            g.receipt_index.insert(r.key, i);
            g.receipts.push((tag, bytes));
        }
        for (i, bytes) in rewritten {
            g.receipts[i].1 = bytes;
        }
        for id in &commit.redact {
            if let Some(&i) = g.index.get(id) {
                let chain: Vec<u32> = g.log.chain(&g.slots[i as usize]).collect();
                for e in chain {
                    let event = &mut g.log.get_mut(e).0;
                    *event = event.redacted();
                }
            }
        }
        Ok(())
    }

    fn tally(&self, key: &str) -> Result<Option<VersionedTally>, CrmError> {
        Ok(self.read().tallies.get(key).copied())
    }

    fn events(&self, id: &MemberId) -> Result<Vec<Event>, CrmError> {
        let g = self.read();
        Ok(g.slot(id).map(|s| g.log.chain(s).map(|e| g.log.get(e).0.clone()).collect()).unwrap_or_default())
    }

    fn scan(&self, visit: &mut dyn FnMut(Versioned) -> Result<(), CrmError>) -> Result<(), CrmError> {
        let snapshot: Vec<Versioned> =
            self.read().slots.iter().map(|s| Versioned { state: s.state.clone(), version: s.count }).collect();
        snapshot.into_iter().try_for_each(visit)
    }

    /// Lends every stored snapshot under the read lock (no copies).
    fn inspect_all(&self, view: &mut dyn FnMut(&MemberState) -> Result<(), CrmError>) -> Result<(), CrmError> {
        self.read().slots.iter().try_for_each(|s| view(&s.state))
    }

    /// Lends the stored snapshot under the read lock (no copy).
    fn inspect(&self, id: &MemberId, view: &mut dyn FnMut(&MemberState)) -> Result<bool, CrmError> {
        Ok(self.read().slot(id).map(|s| view(&s.state)).is_some())
    }

    fn decision_workers(&self) -> usize {
        self.workers
    }

    /// 128 members: a commit here costs no sync, and a chunk's vectors of
    /// whole snapshots (the writes and the snapshots they replace, ~500
    /// bytes a member each) stay small. At 1,000 the member day (half of
    /// 100,000 members messaged) took ~10 % more CPU, and its profile put
    /// those vectors first among the allocations the kernel had to zero
    /// fresh pages for.
    fn due_chunk(&self) -> usize {
        128
    }

    /// Reads the due index: O(members due), not a scan. A long list (a
    /// member day) copies its ids on the decision workers (at most
    /// [`MemoryStore::with_decision_workers`] threads): each id is a cache
    /// miss in a different member's snapshot.
    fn due_members(&self, now: DateTime<Utc>) -> Result<Vec<MemberId>, CrmError> {
        use rayon::prelude::*;
        let g = self.read();
        let slots: Vec<u32> = g.due.iter().take_while(|(at, _)| *at <= now).map(|&(_, i)| i).collect();
        let id = |&i: &u32| g.slots[i as usize].state.id.clone();
        let workers = if slots.len() >= PARALLEL_IDS_FROM { self.workers } else { 1 };
        Ok(crate::threads::within(
            workers,
            &slots,
            |slots| slots.par_iter().with_min_len(PARALLEL_IDS_FROM / 4).map(id).collect(),
            |slots| slots.iter().map(id).collect(),
        ))
    }

    fn receipts(&self, visit: &mut dyn FnMut(Receipt) -> Result<(), CrmError>) -> Result<(), CrmError> {
        let all = self.read().receipts.clone();
        all.iter().try_for_each(|(_, bytes)| visit(decode(bytes)?))
    }
}

fn encode(r: &Receipt) -> Result<Box<[u8]>, CrmError> {
    super::json::to_vec(r).map(Vec::into_boxed_slice).map_err(|e| CrmError::Store(format!("receipt {}: {e}", r.key)))
}

fn redact(mut r: Receipt) -> Receipt {
    r.command = r.command.redacted();
    r
}

fn decode(bytes: &[u8]) -> Result<Receipt, CrmError> {
    serde_json::from_slice(bytes).map_err(|e| CrmError::Store(format!("stored receipt: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> Slot {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        Slot {
            state: MemberState::new(MemberId("m".into()), at),
            first: NO_EVENT,
            last: NO_EVENT,
            count: 0,
            due_at: None,
        }
    }

    fn tag(e: &Event) -> &str {
        match e {
            Event::TagAdded { tag, .. } => tag,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A long due list (copied on several threads) holds the same ids in
    /// the same order as one copied on the calling thread, and only the
    /// members due.
    #[test]
    fn due_members_on_several_threads_match_one_thread() {
        use crate::store::MemberWrite;
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let n = 2 * PARALLEL_IDS_FROM;
        let members: Vec<MemberWrite> = (0..n)
            .map(|i| {
                let mut state = MemberState::new(MemberId(format!("m{}", (i * 7_919) % n)), t0);
                state.wake_at = Some(t0 + chrono::Duration::seconds((i % 3) as i64));
                MemberWrite { expected_version: 0, events: Vec::new(), state }
            })
            .collect();
        let (one, two) = (MemoryStore::with_decision_workers(1), MemoryStore::with_decision_workers(2));
        for s in [&one, &two] {
            s.commit(Commit { members: members.clone(), ..Commit::default() }).unwrap();
        }
        let now = t0 + chrono::Duration::seconds(1);
        let due = one.due_members(now).unwrap();
        assert_eq!(due.len(), n - n / 3, "due at 0 s and 1 s, not at 2 s");
        assert_eq!(two.due_members(now).unwrap(), due);
    }

    #[test]
    fn interleaved_members_read_back_their_own_events_in_order_across_chunks() {
        let (mut log, mut a, mut b) = (Log::default(), slot(), slot());
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let n = CHUNK + CHUNK / 2;
        for i in 0..n {
            log.append(&mut a, Event::TagAdded { at, tag: format!("a{i}") });
            if i % 3 == 0 {
                log.append(&mut b, Event::TagAdded { at, tag: format!("b{i}") });
            }
        }
        assert_eq!(log.chunks.len(), (log.len).div_ceil(CHUNK));
        assert!(log.chunks.iter().all(|c| c.capacity() == CHUNK), "a chunk never grows");
        let read = |s: &Slot| log.chain(s).map(|e| tag(&log.get(e).0).to_string()).collect::<Vec<_>>();
        assert_eq!(read(&a), (0..n).map(|i| format!("a{i}")).collect::<Vec<_>>());
        assert_eq!(read(&b), (0..n).step_by(3).map(|i| format!("b{i}")).collect::<Vec<_>>());
        assert_eq!((a.count, b.count), (n as u64, n.div_ceil(3) as u64));
        assert_eq!(log.chain(&slot()).count(), 0);
    }
}
