//! What-if replay: the same history under several programmes, side by side.
//!
//! [`compare`] replays one history (orders, refunds and, optionally, recorded
//! redemptions) under each programme and returns the figures of each
//! ([`ProgrammeFigures`]) and the members whose final tier differs from the
//! first programme's ([`Movers`]). [`compare_parts`] does the same for
//! orders held in several parts, without joining them.
//!
//! The replay is the same for every programme: facts in time order (orders
//! before refunds before redemptions at the same instant, then input order),
//! each refund and redemption at its own instant, `run_due` at the first
//! instant of every month in the programme's zone (so expiry, tier reviews,
//! stage changes and outreach happen on the way) and finally at `until`.
//! Redemptions take what the balance allows at their instant; the rest is
//! counted as a shortfall. An order whose id was recorded before is not
//! recorded again (counted in `orders_rejected`).
//!
//! Members do not meet in a replayed history (no merges), so by default each
//! member's facts are applied on their own, member after member, with the
//! `run_due` instants in between, by the engine's own transaction code
//! without a store ([`crate::engine`]'s `scratch` module): no receipts, no
//! commits, one member in memory at a time. Members are dealt to
//! [`Options::shards`] sets by a fixed hash of their id, and the shards run
//! on all cores with `std::thread::scope`, each member replayed under every
//! programme (that accepts the same orders) before the next, while its facts
//! are in cache; the figures are sums over members, the same for any number
//! of shards or threads. A
//! programme whose trigger coupons have a programme-wide stock or budget
//! links its members (who gets the last coupon depends on everyone before),
//! so it replays through one [`Engine`] over a [`MemoryStore`] in time
//! order, orders in batches of [`Options::batch`] through
//! [`Engine::record_orders`]; [`Options::through_engine`] asks for that for
//! every programme. Both give the same figures (a property test holds them
//! to it).
//!
//! The result is deterministic: only ordered maps and sorted lists, so the
//! same inputs serialise to byte-identical JSON.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use crm_core::whatif::{compare, Options};
//! use crm_core::{Order, Program};
//! use rust_decimal::Decimal;
//!
//! let t = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
//! let orders = vec![Order::paid("o-1", "alice", t, Decimal::new(12_999, 2))];
//! let mut double = Program::default_demo();
//! double.earn.rules[0].points_per_unit = Decimal::TWO;
//! let programs = vec![("default".to_string(), Program::default_demo()), ("double".to_string(), double)];
//! let c = compare(&orders, &[], &programs, &Options::default())?;
//! assert_eq!(c.programmes[0].points_issued, 129);
//! assert_eq!(c.programmes[1].points_issued, 259);
//! # Ok::<(), crm_core::CrmError>(())
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use rust_decimal::Decimal;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::command::Outcome;
use crate::engine::{Engine, HistoryStore, LiabilityCount, MemberReplay, Owners, StageCount, TierCount};
use crate::error::{CrmError, Result};
use crate::facts::{Order, Refund};
use crate::ledger::Balance;
use crate::lifecycle::Stage;
use crate::member::{MemberId, MemberStatus};
use crate::program::Program;
use crate::state::MemberState;
use crate::store::{MemoryStore, Store};
use crate::threads;
use crate::time::{first_of_month_after, local_date, start_of_day};

/// Orders per `record_orders` call unless told otherwise (the `replay` example's default).
pub const DEFAULT_BATCH: usize = 1_000;
/// Shards per programme replayed member by member unless told otherwise:
/// units of work for the threads (a thread takes the next shard when it is
/// done), small enough that the cores finish together.
pub const DEFAULT_SHARDS: usize = 64;
/// Example member ids listed per direction in [`Movers`].
pub const MOVER_EXAMPLES: usize = 20;

/// A redemption as it was recorded: replayed where the balance allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRedemption {
    pub member_id: MemberId,
    pub points: i64,
    pub at: DateTime<Utc>,
}

/// How to replay.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The instant the replay ends at (the last `run_due` and every figure);
    /// default: the latest event of the history. Later events are left out.
    pub until: Option<DateTime<Utc>>,
    /// Orders per `record_orders` call when replaying through the engine;
    /// 0 means [`DEFAULT_BATCH`].
    pub batch: usize,
    /// Recorded redemptions, taken from the programme's first spendable point type.
    pub redemptions: Vec<RecordedRedemption>,
    /// Worker threads; 0 means every available core.
    pub threads: usize,
    /// Sets of members (by a fixed hash of the member id) a programme
    /// replayed member by member is cut into, for the threads; 0 means
    /// [`DEFAULT_SHARDS`]. The figures do not depend on it.
    pub shards: usize,
    /// Replay every programme through one [`Engine`] over a [`MemoryStore`],
    /// command by command in time order, instead of member by member. The
    /// figures are the same (this is the reference the member-by-member
    /// replay is tested against), only slower. A programme whose trigger
    /// coupons have a programme-wide stock or budget always replays this
    /// way: who gets the last coupons depends on every member before.
    pub through_engine: bool,
}

/// The figures of one programme after the replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgrammeFigures {
    /// The label the programme was given.
    pub label: String,
    /// The programme's own name.
    pub programme: String,
    pub currency: String,
    /// Orders recorded / rejected by the engine.
    pub orders: u64,
    pub orders_rejected: u64,
    /// Refunds recorded / rejected.
    pub refunds: u64,
    pub refunds_rejected: u64,
    /// Member records at `until` (merged-away ones not counted).
    pub members: u64,
    /// Spendable points earned on orders (bonuses included).
    pub points_issued: i64,
    /// Points earned on orders per point type (non-spendable types included).
    pub issued_by_type: BTreeMap<String, i64>,
    /// Spendable points taken back by refunds (from lots or as debt).
    pub points_clawed_back: i64,
    /// Spendable points redeemed by the replayed redemptions.
    pub points_redeemed: i64,
    /// Recorded redemptions replayed, and those the balance could not cover in full.
    pub redemptions: u64,
    pub redemptions_short: u64,
    /// Points the balance could not cover.
    pub redemption_shortfall: i64,
    /// Points expired by the `run_due` runs (every point type).
    pub points_expired: i64,
    /// Outstanding (available + pending − debt) per spendable point type at `until`.
    pub outstanding: BTreeMap<String, i64>,
    /// Sum of `outstanding`.
    pub points_outstanding: i64,
    /// Money value of the outstanding points (`value_per_point`).
    pub liability_value: Decimal,
    /// Members per tier at `until`; `None` when the programme has no tiers.
    pub tier_distribution: Option<BTreeMap<String, u64>>,
    /// Members per lifecycle stage at `until`.
    pub stage_distribution: BTreeMap<Stage, u64>,
    /// Tier and stage changes recorded by the `run_due` runs.
    pub tier_changes: u64,
    pub stage_changes: u64,
    /// Outreach items per trigger, summed over the runs (every trigger listed).
    pub outreach: BTreeMap<String, u64>,
    /// Occurrences not sent (no consent, frequency cap).
    pub outreach_suppressed: u64,
    /// Face value of the coupons the programme's triggers handed out in the
    /// replay (the most they can cost: the history has no coupon use).
    pub coupon_cost: Decimal,
    /// `run_due` runs (month ends and the final one).
    pub run_due_runs: u64,
}

/// Members whose final tier under `to` differs from the one under `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movers {
    pub from: String,
    pub to: String,
    /// Members ranked higher / lower on `to`'s ladder than on `from`'s.
    pub up: u64,
    pub down: u64,
    /// Up to [`MOVER_EXAMPLES`] member ids each, sorted.
    pub up_examples: Vec<String>,
    pub down_examples: Vec<String>,
}

/// The outcome of [`compare`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The instant every figure is taken at.
    pub until: DateTime<Utc>,
    /// Orders, refunds and redemptions in the history up to `until`.
    pub history: HistoryCounts,
    /// One entry per programme, in the order given.
    pub programmes: Vec<ProgrammeFigures>,
    /// The first programme against each other one.
    pub movers: Vec<Movers>,
    pub notes: Vec<String>,
}

/// Size of the replayed history (up to `until`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryCounts {
    pub orders: u64,
    pub refunds: u64,
    pub redemptions: u64,
}

/// Replay `orders` and `refunds` under each of `programs` (`(label, programme)`)
/// and compare. Fails when no programme is given, a label repeats, the history
/// is empty without an `until`, or the engine fails (not when it rejects an order).
pub fn compare(
    orders: &[Order],
    refunds: &[Refund],
    programs: &[(String, Program)],
    options: &Options,
) -> Result<Comparison> {
    compare_parts(&[orders], refunds, programs, options)
}

/// [`compare`] for orders held in several parts, in order: the same
/// comparison, byte for byte, as for the parts joined into one list.
///
/// Why: a large history is often read in parts (a CSV parsed on every core,
/// a database read page by page), and joining ten million orders into one
/// list copies gigabytes into fresh memory before anything is replayed; on
/// a virtual machine the fresh pages cost more than the copy. The replay
/// only refers to each order where it lies.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use crm_core::whatif::{compare, compare_parts, Options};
/// use crm_core::{Order, Program};
/// use rust_decimal::Decimal;
///
/// let t = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
/// let first = vec![Order::paid("o-1", "alice", t, Decimal::new(12_999, 2))];
/// let second = vec![Order::paid("o-2", "bob", t, Decimal::new(500, 2))];
/// let programs = vec![("default".to_string(), Program::default_demo())];
/// let joined: Vec<Order> = first.iter().chain(&second).cloned().collect();
/// let parts = compare_parts(&[&first, &second], &[], &programs, &Options::default())?;
/// assert_eq!(parts, compare(&joined, &[], &programs, &Options::default())?);
/// assert_eq!(parts.programmes[0].points_issued, 134);
/// # Ok::<(), crm_core::CrmError>(())
/// ```
pub fn compare_parts(
    orders: &[&[Order]],
    refunds: &[Refund],
    programs: &[(String, Program)],
    options: &Options,
) -> Result<Comparison> {
    if programs.is_empty() {
        return Err(CrmError::invalid("programs", "at least one programme is needed"));
    }
    for (i, (label, _)) in programs.iter().enumerate() {
        if programs[..i].iter().any(|(l, _)| l == label) {
            return Err(CrmError::invalid("programs", format!("the label {label:?} is used twice")));
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let budget = if options.threads == 0 { cores } else { options.threads };
    let prepare = |prep: Prep| timeline(orders, refunds, &options.redemptions, prep);
    let steps = threads::within(budget, Prep(true), prepare, |_| prepare(Prep(false)));
    let until = match options.until {
        Some(u) => u,
        None => steps.last().map(|s| s.at).ok_or_else(|| CrmError::invalid("until", "no history and no until"))?,
    };
    let steps: Vec<Step<'_>> = steps.into_iter().filter(|s| s.at <= until).collect();
    let history = HistoryCounts {
        orders: steps.iter().filter(|s| matches!(s.what, What::Order(_))).count() as u64,
        refunds: steps.iter().filter(|s| matches!(s.what, What::Refund(_))).count() as u64,
        redemptions: steps.iter().filter(|s| matches!(s.what, What::Redeem(..))).count() as u64,
    };
    let batch = if options.batch == 0 { DEFAULT_BATCH } else { options.batch };
    let start = steps.first().map_or(until, |s| s.at);

    // A programme replays member by member (each member's facts in time
    // order, `run_due` at the same instants in between) unless told
    // otherwise or a coupon tally links its members: then through one
    // engine, in time order. Members of one programme are dealt to shards
    // by a fixed hash of their id; the shards run on all cores.
    let by_member: Vec<bool> = programs.iter().map(|(_, p)| !options.through_engine && !shares_tallies(p)).collect();
    let shards = if options.shards == 0 { DEFAULT_SHARDS } else { options.shards };
    // Programmes that accept the same orders share the map of order owners
    // and the split by member (the owner of a refunded order decides its member).
    let accepts_as = |i: usize, j: usize| {
        let (p, q) = (&programs[i].1, &programs[j].1);
        p.auto_enroll == q.auto_enroll && p.currency == q.currency
    };
    let map_of: Vec<usize> = (0..programs.len())
        .map(|i| (0..programs.len()).find(|&j| by_member[j] && accepts_as(i, j)).unwrap_or(i))
        .collect();
    let mut split_by: Vec<Option<(Owners<'_>, Vec<Vec<Fact>>)>> = Vec::with_capacity(programs.len());
    for (i, (_, p)) in programs.iter().enumerate() {
        split_by.push((by_member[i] && map_of[i] == i).then(|| {
            let prepare = |prep: Prep| {
                let owners = owners(&steps, p, prep);
                let parts = split(&steps, shards, &owners, prep);
                (owners, parts)
            };
            threads::within(budget, Prep(true), prepare, |_| prepare(Prep(false)))
        }));
    }
    // One task per shard of each group of programmes sharing a split: a
    // member's facts are read from memory once and replayed under every
    // programme of the group while they are in cache (at 10,000,000 orders
    // the history is gigabytes, and each fact is a few random reads).
    // A programme replayed through an engine is one long task: first, so
    // that the shards fill the other cores meanwhile.
    let mut tasks: Vec<Task> = (0..programs.len()).filter(|&i| !by_member[i]).map(Task::Engine).collect();
    for group in (0..programs.len()).filter(|&i| by_member[i] && map_of[i] == i) {
        tasks.extend((0..shards).map(|shard| Task::Members { group, shard }));
    }
    let threads = budget.clamp(1, tasks.len());
    let next = AtomicUsize::new(0);
    type Done = Result<Vec<(usize, Replayed)>>;
    let results: Mutex<Vec<Option<Done>>> = Mutex::new((0..tasks.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= tasks.len() {
                    break;
                }
                let r: Done = match tasks[k] {
                    Task::Members { group, shard } => {
                        let (owners, parts) = split_by[group].as_ref().expect("a split for every group");
                        let members: Vec<usize> =
                            (0..programs.len()).filter(|&i| by_member[i] && map_of[i] == group).collect();
                        let lanes: Vec<(&str, &Program)> =
                            members.iter().map(|&i| (programs[i].0.as_str(), &programs[i].1)).collect();
                        replay_members(&lanes, &steps, &parts[shard], owners, start, until)
                            .map(|r| members.into_iter().zip(r).collect())
                    }
                    Task::Engine(i) => {
                        let (label, program) = &programs[i];
                        replay_engine(label, program, &steps, batch, start, until).map(|r| vec![(i, r)])
                    }
                };
                results.lock().unwrap_or_else(|e| e.into_inner())[k] = Some(r);
            });
        }
    });
    // Each programme's shards are absorbed in shard order.
    let mut by_programme: Vec<Option<Replayed>> = (0..programs.len()).map(|_| None).collect();
    for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        for (i, r) in r.expect("every task ran")? {
            match &mut by_programme[i] {
                Some(done) => done.absorb(r),
                empty => *empty = Some(r),
            }
        }
    }
    let replayed: Vec<Replayed> = by_programme.into_iter().map(|r| r.expect("every programme was replayed")).collect();

    let movers = replayed[1..].iter().map(|b| movers(&replayed[0], b)).collect();
    let notes = vec![
        "coupon_cost is the face value of the coupons triggers handed out (the most they can cost); the history records no coupon use, so none is redeemed"
            .to_string(),
        "movers compare ranks on each programme's own ladder; a programme without tiers ranks everyone at the base"
            .to_string(),
    ];
    Ok(Comparison { until, history, programmes: replayed.into_iter().map(|r| r.figures).collect(), movers, notes })
}

/// Whether a coupon a trigger hands out has a programme-wide stock or
/// budget: then whether a member gets one depends on the members before it.
fn shares_tallies(program: &Program) -> bool {
    let Some(outreach) = &program.outreach else { return false };
    outreach.triggers.iter().filter_map(|t| t.coupon.as_deref()).any(|id| {
        program
            .coupons
            .iter()
            .flat_map(|c| &c.templates)
            .any(|t| t.id == id && (t.total_limit.is_some() || t.budget.is_some()))
    })
}

/// A unit of work for the threads.
#[derive(Clone, Copy)]
enum Task {
    /// One shard of the programmes replayed member by member that share the
    /// split of programme `group`.
    Members { group: usize, shard: usize },
    /// One programme replayed through an engine.
    Engine(usize),
}

#[derive(Clone, Copy)]
enum What<'a> {
    Order(&'a Order),
    Refund(&'a Refund),
    Redeem(usize, &'a RecordedRedemption),
}

struct Step<'a> {
    at: DateTime<Utc>,
    what: What<'a>,
}

/// The history in replay order: by instant, then orders, refunds, redemptions, then input order.
/// `orders` in parts, in input order (see [`compare_parts`]). On rayon's
/// pool when `prep` says so (see [`Prep`]).
fn timeline<'a>(
    orders: &[&'a [Order]],
    refunds: &'a [Refund],
    redemptions: &'a [RecordedRedemption],
    prep: Prep,
) -> Vec<Step<'a>> {
    let count = orders.iter().map(|p| p.len()).sum::<usize>() + refunds.len() + redemptions.len();
    let mut steps: Vec<Step<'a>> = Vec::with_capacity(count);
    let orders = orders.iter().flat_map(|p| p.iter());
    steps.extend(orders.map(|o| Step { at: o.placed_at, what: What::Order(o) }));
    steps.extend(refunds.iter().map(|r| Step { at: r.at, what: What::Refund(r) }));
    steps.extend(redemptions.iter().enumerate().map(|(i, r)| Step { at: r.at, what: What::Redeem(i, r) }));
    // Built in input order within each kind, kinds in replay order: a
    // stable sort by instant and kind keeps that order among equals, on
    // any number of threads, without a copy of the list with its positions.
    let key = |s: &Step<'a>| {
        let kind: u8 = match s.what {
            What::Order(_) => 0,
            What::Refund(_) => 1,
            What::Redeem(..) => 2,
        };
        (s.at, kind)
    };
    if prep.0 {
        steps.par_sort_by_key(key);
    } else {
        steps.sort_by_key(key);
    }
    steps
}

/// Whether the preparation of a replay (the timeline, the owners of order
/// ids, the split by member) runs on rayon's pool. Why: at 10,000,000
/// orders it took seconds on one core while the others waited for it;
/// [`compare_parts`] runs it within the thread budget
/// ([`Options::threads`], see [`threads::within`]). The results are the
/// same either way (stable sorts or unique keys; collects keep their order).
#[derive(Clone, Copy)]
struct Prep(bool);

impl Prep {
    /// `f(position, step)` of every step that gives something, in order.
    fn filter_map<'s, 'a, R: Send>(
        self,
        steps: &'s [Step<'a>],
        f: impl Fn(usize, &'s Step<'a>) -> Option<R> + Sync + Send,
    ) -> Vec<R> {
        if self.0 {
            steps.par_iter().enumerate().filter_map(|(p, s)| f(p, s)).collect()
        } else {
            steps.iter().enumerate().filter_map(|(p, s)| f(p, s)).collect()
        }
    }

    fn sort<T: Ord + Send>(self, v: &mut [T]) {
        if self.0 {
            v.par_sort_unstable();
        } else {
            v.sort_unstable();
        }
    }
}

/// The owner of each order id the engine records under `program`: the
/// first order with that id (in replay order) that it accepts. An order
/// whose id was recorded before is refused, and a refund goes to the
/// owner of its order.
///
/// Nearly every order id appears once, and then the order owns it without
/// a lookup (`Owners::owning`). So the map holds only the ids something
/// looks up: those repeated, found by sorting (hash, position) pairs,
/// and those refunds name. At 10,000,000 orders a map of every id took
/// seconds on one thread before any member was replayed.
fn owners<'a>(steps: &[Step<'a>], program: &Program, prep: Prep) -> Owners<'a> {
    if !program.auto_enroll {
        // No member exists in a replay: every order is refused.
        return Owners::default();
    }
    let currency = program.currency.as_str();
    let mut accepted: Vec<(u64, usize)> = prep.filter_map(steps, |position, s| match s.what {
        What::Order(o) if o.validate(currency).is_ok() => Some((fnv1a(o.id.as_bytes()), position)),
        _ => None,
    });
    let refunded: FxHashSet<&str> = prep
        .filter_map(steps, |_, s| match s.what {
            What::Refund(r) => Some(r.order_id.as_str()),
            _ => None,
        })
        .into_iter()
        .collect();
    let refunded_hashes: FxHashSet<u64> = refunded.iter().map(|id| fnv1a(id.as_bytes())).collect();
    prep.sort(&mut accepted);
    let order_at = |position: usize| match steps[position].what {
        What::Order(o) => o,
        _ => unreachable!("only orders are accepted"),
    };
    let mut by_id = FxHashMap::default();
    let mut owning = vec![false; steps.len()];
    let mut group: Vec<(&'a str, usize)> = Vec::new();
    for same_hash in accepted.chunk_by(|a, b| a.0 == b.0) {
        if let [(hash, only)] = same_hash {
            if !refunded_hashes.contains(hash) {
                // Alone with its hash and no refund names it: it owns its id,
                // and nothing needs the id itself (not read: a random access
                // per order at ten million).
                owning[*only] = true;
                continue;
            }
        }
        group.clear();
        group.extend(same_hash.iter().map(|&(_, p)| (order_at(p).id.as_str(), p)));
        if group.len() > 1 {
            group.sort_unstable();
        }
        for same_id in group.chunk_by(|a, b| a.0 == b.0) {
            let (id, first) = same_id[0];
            owning[first] = true;
            if same_id.len() > 1 || refunded.contains(id) {
                by_id.insert(id, (order_at(first).member_id.0.as_str(), first));
            }
        }
    }
    Owners { by_id, owning }
}

/// A fact of a shard: the hash of its member's id, and its position in
/// the replay order. Sorted, a shard's facts are grouped by member (equal
/// hashes; different members sharing a hash are told apart when replayed)
/// and in replay order within a member, without looking at the facts.
type Fact = (u64, usize);

/// Deal the steps to `shards` lists by member (a refund goes with its
/// order's owner), each sorted (see [`Fact`]).
fn split(steps: &[Step<'_>], shards: usize, owners: &Owners<'_>, prep: Prep) -> Vec<Vec<Fact>> {
    let hashes: Vec<u64> = prep.filter_map(steps, |_, s| Some(fnv1a(member_of(s, owners).as_bytes())));
    let mut parts: Vec<Vec<Fact>> = (0..shards).map(|_| Vec::new()).collect();
    for (position, hash) in hashes.into_iter().enumerate() {
        parts[(hash % shards as u64) as usize].push((hash, position));
    }
    for part in &mut parts {
        prep.sort(part);
    }
    parts
}

/// The member whose history a step belongs to ("" for a refund of an order no one owns).
fn member_of<'a>(step: &Step<'a>, owners: &Owners<'a>) -> &'a str {
    match step.what {
        What::Order(o) => o.member_id.0.as_str(),
        What::Refund(r) => owners.by_id.get(r.order_id.as_str()).map_or("", |(m, _)| m),
        What::Redeem(_, r) => r.member_id.0.as_str(),
    }
}

/// FNV-1a: a fixed hash, so the split is the same in every run.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

struct Replayed {
    figures: ProgrammeFigures,
    /// Ladder rank at `until` of every active member above the base tier
    /// (a member not listed ranks at the base).
    ranks: BTreeMap<MemberId, usize>,
}

fn spendable(program: &Program, point_type: &str) -> bool {
    program.point_types.iter().any(|t| t.id == point_type && t.spendable)
}

/// Count an order's outcome.
fn count_order(f: &mut ProgrammeFigures, program: &Program, outcome: Result<Outcome>) {
    match outcome {
        Ok(Outcome::Order { earned, .. }) => {
            f.orders += 1;
            for (t, p) in earned {
                if spendable(program, &t) {
                    f.points_issued += p;
                }
                *f.issued_by_type.entry(t).or_insert(0) += p;
            }
        }
        Ok(_) | Err(_) => f.orders_rejected += 1,
    }
}

/// Count a refund's outcome; a store failure stops the replay.
fn count_refund(f: &mut ProgrammeFigures, program: &Program, outcome: Result<Outcome>) -> Result<()> {
    match outcome {
        Ok(Outcome::Refund { clawbacks, .. }) => {
            f.refunds += 1;
            let taken: i64 =
                clawbacks.iter().filter(|c| spendable(program, &c.point_type)).map(|c| c.taken + c.debt).sum();
            f.points_clawed_back += taken;
        }
        Ok(_) => f.refunds += 1,
        Err(e) if is_rejection(&e) => f.refunds_rejected += 1,
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Count what a `run_due` did.
fn count_due(f: &mut ProgrammeFigures, program: &Program, outcome: Outcome) {
    if let Outcome::Due { expired, tier_changes, stage_changes, outreach, suppressed, .. } = outcome {
        f.points_expired += expired;
        f.tier_changes += tier_changes;
        f.stage_changes += stage_changes;
        f.outreach_suppressed += suppressed;
        for item in outreach {
            let template = item.payload.get("coupon").and_then(|c| c.get("template")).and_then(|t| t.as_str());
            if let Some(t) = program.coupons.iter().flat_map(|c| &c.templates).find(|t| Some(t.id.as_str()) == template)
            {
                f.coupon_cost += t.face_value().unwrap_or_default();
            }
            *f.outreach.entry(item.trigger).or_insert(0) += 1;
        }
    }
}

/// The point type recorded redemptions take: the programme's first spendable one.
fn redemption_type(program: &Program) -> Option<&str> {
    program.point_types.iter().find(|t| t.spendable).map(|t| t.id.as_str())
}

/// Replay a recorded redemption: take what `balance` (of
/// [`redemption_type`] at its instant; a rejection or `None` counting as
/// nothing) allows with `redeem`, count the rest short.
fn redeem_as_recorded(
    f: &mut ProgrammeFigures,
    program: &Program,
    r: &RecordedRedemption,
    balance: Result<Option<Balance>>,
    redeem: impl FnOnce(&str, i64) -> Result<Outcome>,
) -> Result<()> {
    f.redemptions += 1;
    let point_type = redemption_type(program);
    let available = match balance {
        Ok(b) => b.map_or(0, |b| b.available.max(0)),
        Err(e) if is_rejection(&e) => 0,
        Err(e) => return Err(e),
    };
    let take = r.points.max(0).min(available);
    if take < r.points {
        f.redemptions_short += 1;
        f.redemption_shortfall += r.points - take;
    }
    if let (Some(t), true) = (point_type, take > 0) {
        match redeem(t, take) {
            Ok(_) => f.points_redeemed += take,
            Err(e) if is_rejection(&e) => {
                f.redemptions_short += u64::from(take == r.points);
                f.redemption_shortfall += take;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The idempotency key of the `i`-th recorded redemption.
fn redemption_key(i: usize) -> String {
    format!("whatif-redeem:{i}")
}

/// Errors that reject one input (bad data, unknown member or order) rather than stop the replay.
fn is_rejection(e: &CrmError) -> bool {
    !matches!(e, CrmError::Store(..) | CrmError::Conflict { .. })
}

fn first_of_next_month(program: &Program, t: DateTime<Utc>) -> DateTime<Utc> {
    let tz = program.timezone;
    start_of_day(tz, first_of_month_after(local_date(tz, t), 1))
}

/// The `run_due` instants: the first of every month in the programme's
/// zone after `start` and before `until`, then `until`.
fn schedule(program: &Program, start: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut runs = Vec::new();
    let mut t = first_of_next_month(program, start);
    while t < until {
        runs.push(t);
        t = first_of_next_month(program, t);
    }
    runs.push(until);
    runs
}

/// Figures with nothing counted yet.
fn empty_figures(label: &str, program: &Program) -> ProgrammeFigures {
    ProgrammeFigures {
        label: label.to_string(),
        programme: program.name.clone(),
        currency: program.currency.clone(),
        orders: 0,
        orders_rejected: 0,
        refunds: 0,
        refunds_rejected: 0,
        members: 0,
        points_issued: 0,
        issued_by_type: program.point_types.iter().map(|t| (t.id.clone(), 0)).collect(),
        points_clawed_back: 0,
        points_redeemed: 0,
        redemptions: 0,
        redemptions_short: 0,
        redemption_shortfall: 0,
        points_expired: 0,
        outstanding: BTreeMap::new(),
        points_outstanding: 0,
        liability_value: Decimal::ZERO,
        tier_distribution: None,
        stage_distribution: BTreeMap::new(),
        tier_changes: 0,
        stage_changes: 0,
        outreach: program.outreach.iter().flat_map(|o| o.triggers.iter().map(|t| (t.id.clone(), 0))).collect(),
        outreach_suppressed: 0,
        coupon_cost: Decimal::ZERO,
        run_due_runs: 0,
    }
}

/// The figures at `until`, counted member by member.
struct Closing<'p> {
    program: &'p Program,
    until: DateTime<Utc>,
    liability: LiabilityCount<'p>,
    tiers: Option<TierCount<'p>>,
    stages: StageCount,
    ranks: BTreeMap<MemberId, usize>,
}

impl<'p> Closing<'p> {
    fn new(program: &'p Program, until: DateTime<Utc>) -> Self {
        Closing {
            program,
            until,
            liability: LiabilityCount::new(program, until),
            tiers: program.tiers.as_ref().map(|l| TierCount::new(l, until)),
            stages: StageCount::new(program, until),
            ranks: BTreeMap::new(),
        }
    }

    fn add(&mut self, st: &MemberState) {
        self.liability.add(st);
        if let Some(t) = self.tiers.as_mut() {
            t.add(st);
        }
        self.stages.add(st);
        let until = self.until;
        if !st.is_active() || st.created_at > until || matches!(st.status, MemberStatus::Merged { .. }) {
            return;
        }
        let rank = self.program.tiers.as_ref().map_or(0, |ladder| {
            let tier = st.tier_history.iter().rev().find(|c| c.at <= until).map(|c| c.to.as_str());
            tier.and_then(|id| ladder.levels.iter().position(|l| l.id == id)).unwrap_or(0)
        });
        if rank > 0 {
            self.ranks.insert(st.id.clone(), rank);
        }
    }

    fn finish(self, mut f: ProgrammeFigures) -> Replayed {
        let liability = self.liability.finish();
        f.members = liability.members;
        for t in liability.point_types.iter().filter(|t| t.spendable) {
            f.outstanding.insert(t.point_type.clone(), t.outstanding);
            f.points_outstanding += t.outstanding;
        }
        f.liability_value = liability.value;
        f.tier_distribution = self.tiers.map(TierCount::finish);
        f.stage_distribution = self.stages.finish();
        Replayed { figures: f, ranks: self.ranks }
    }
}

/// Replay one shard's members (`facts`, see [`Fact`]) one member at a
/// time (see [`MemberReplay`]) under each of `programs` (`(label,
/// programme)`), one member under all of them before the next.
fn replay_members(
    programs: &[(&str, &Program)],
    steps: &[Step<'_>],
    facts: &[Fact],
    owners: &Owners<'_>,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Replayed>> {
    let store = HistoryStore::new(owners);
    let mut lanes: Vec<Lane<'_>> =
        programs.iter().map(|&(label, program)| Lane::new(label, program, &store, start, until)).collect();
    // Each member's facts, in replay order: runs of one hash, sorted by
    // member id in the rare run that two members share.
    let mut run_facts: Vec<(&str, usize)> = Vec::new();
    for run in facts.chunk_by(|a, b| a.0 == b.0) {
        run_facts.clear();
        run_facts.extend(run.iter().map(|&(_, p)| (member_of(&steps[p], owners), p)));
        if run_facts.iter().any(|(m, _)| *m != run_facts[0].0) {
            run_facts.sort_unstable();
        }
        for history in run_facts.chunk_by(|a, b| a.0 == b.0) {
            let member = MemberId::from(history[0].0);
            for lane in &mut lanes {
                lane.member(&member, history, steps)?;
            }
        }
    }
    Ok(lanes.into_iter().map(|l| l.closing.finish(l.figures)).collect())
}

/// One programme's member-by-member replay within a shard.
struct Lane<'a> {
    program: &'a Program,
    /// The `run_due` instants ([`schedule`]).
    runs: Vec<DateTime<Utc>>,
    replay: MemberReplay<'a>,
    figures: ProgrammeFigures,
    closing: Closing<'a>,
}

impl<'a> Lane<'a> {
    fn new(
        label: &str,
        program: &'a Program,
        store: &'a HistoryStore<'a>,
        start: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Self {
        let runs = schedule(program, start, until);
        let mut figures = empty_figures(label, program);
        figures.run_due_runs = runs.len() as u64;
        Lane {
            program,
            runs,
            replay: MemberReplay::new(program, store),
            figures,
            closing: Closing::new(program, until),
        }
    }

    /// Replay one member's facts (`history`: (member, position) in replay
    /// order) with the `run_due` instants in between, and count it.
    fn member(&mut self, member: &MemberId, history: &[(&str, usize)], steps: &[Step<'_>]) -> Result<()> {
        let Lane { program, runs, replay, figures: f, closing } = self;
        let program: &Program = program;
        replay.clear();
        let mut next_run = 0;
        let due = |replay: &mut MemberReplay<'_>, f: &mut ProgrammeFigures, at: DateTime<Utc>| -> Result<()> {
            if let Some(outcome) = replay.run_due(member, at)? {
                count_due(f, program, outcome);
            }
            Ok(())
        };
        for &(_, p) in history {
            let step = &steps[p];
            // Month-start runs up to the fact (the final run comes after every fact).
            while next_run + 1 < runs.len() && runs[next_run] <= step.at {
                due(replay, f, runs[next_run])?;
                next_run += 1;
            }
            match step.what {
                What::Order(o) => count_order(f, program, replay.order(p, o)),
                What::Refund(r) => count_refund(f, program, replay.refund(p, r))?,
                What::Redeem(i, r) => {
                    let balance = Ok(redemption_type(program).and_then(|t| replay.balance(&r.member_id, t, r.at)));
                    redeem_as_recorded(f, program, r, balance, |t, take| {
                        replay.redeem(p, &redemption_key(i), &r.member_id, t, take, r.at)
                    })?;
                }
            }
        }
        for &at in &runs[next_run..] {
            due(replay, f, at)?;
        }
        if let Some(st) = replay.state(member) {
            closing.add(st);
        }
        Ok(())
    }
}

/// The same replay through one [`Engine`] over a [`MemoryStore`], command
/// by command in time order: orders in batches of `batch` through
/// [`Engine::record_orders`] (cut at every refund, redemption and run),
/// refunds and redemptions at their instants, `run_due` on [`schedule`].
fn replay_engine(
    label: &str,
    program: &Program,
    steps: &[Step<'_>],
    batch: usize,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Replayed> {
    let engine = Engine::new(program.clone(), MemoryStore::new());
    let runs = schedule(program, start, until);
    let mut f = empty_figures(label, program);
    f.run_due_runs = runs.len() as u64;
    let mut pending: Vec<Order> = Vec::with_capacity(batch);
    // The engine answers an order repeated under its id with the first
    // outcome (an idempotent retry): counted here as not recorded, as the
    // member-by-member replay, which refuses it, counts it.
    let mut recorded: FxHashSet<String> = FxHashSet::default();
    let mut flush = |pending: &mut Vec<Order>, f: &mut ProgrammeFigures| -> Result<()> {
        let Some(now) = pending.iter().map(|o| o.placed_at).max() else { return Ok(()) };
        for r in engine.record_orders(pending, now)? {
            let r = match r {
                Ok(Outcome::Order { order_id, .. }) if recorded.contains(&order_id) => {
                    Err(CrmError::conflict(format!("order {order_id} was already recorded")))
                }
                Ok(Outcome::Order { order_id, earned, lots, member_id }) => {
                    recorded.insert(order_id.clone());
                    Ok(Outcome::Order { order_id, earned, lots, member_id })
                }
                other => other,
            };
            count_order(f, program, r);
        }
        pending.clear();
        Ok(())
    };
    let mut next_run = 0;
    for step in steps {
        while next_run + 1 < runs.len() && runs[next_run] <= step.at {
            flush(&mut pending, &mut f)?;
            count_due(&mut f, program, engine.run_due(runs[next_run])?);
            next_run += 1;
        }
        match step.what {
            What::Order(o) => {
                pending.push(o.clone());
                if pending.len() >= batch {
                    flush(&mut pending, &mut f)?;
                }
            }
            What::Refund(r) => {
                flush(&mut pending, &mut f)?;
                count_refund(&mut f, program, engine.record_refund(r.clone(), r.at))?;
            }
            What::Redeem(i, r) => {
                flush(&mut pending, &mut f)?;
                let balance = redemption_type(program).map(|t| engine.balance(&r.member_id, t, r.at)).transpose();
                redeem_as_recorded(&mut f, program, r, balance, |t, take| {
                    engine.redeem(&r.member_id, t, take, &redemption_key(i), r.at)
                })?;
            }
        }
    }
    flush(&mut pending, &mut f)?;
    for &at in &runs[next_run..] {
        count_due(&mut f, program, engine.run_due(at)?);
    }

    let mut closing = Closing::new(program, until);
    engine.store().inspect_all(&mut |st| {
        closing.add(st);
        Ok(())
    })?;
    Ok(closing.finish(f))
}

impl Replayed {
    /// Add the figures of another shard of the same programme.
    fn absorb(&mut self, other: Replayed) {
        fn add<K: Ord, V: std::ops::AddAssign + Default>(into: &mut BTreeMap<K, V>, from: BTreeMap<K, V>) {
            for (k, v) in from {
                *into.entry(k).or_default() += v;
            }
        }
        let (f, o) = (&mut self.figures, other.figures);
        f.orders += o.orders;
        f.orders_rejected += o.orders_rejected;
        f.refunds += o.refunds;
        f.refunds_rejected += o.refunds_rejected;
        f.members += o.members;
        f.points_issued += o.points_issued;
        add(&mut f.issued_by_type, o.issued_by_type);
        f.points_clawed_back += o.points_clawed_back;
        f.points_redeemed += o.points_redeemed;
        f.redemptions += o.redemptions;
        f.redemptions_short += o.redemptions_short;
        f.redemption_shortfall += o.redemption_shortfall;
        f.points_expired += o.points_expired;
        add(&mut f.outstanding, o.outstanding);
        f.points_outstanding += o.points_outstanding;
        f.liability_value += o.liability_value;
        if let (Some(into), Some(from)) = (f.tier_distribution.as_mut(), o.tier_distribution) {
            add(into, from);
        }
        add(&mut f.stage_distribution, o.stage_distribution);
        f.tier_changes += o.tier_changes;
        f.stage_changes += o.stage_changes;
        add(&mut f.outreach, o.outreach);
        f.outreach_suppressed += o.outreach_suppressed;
        f.coupon_cost += o.coupon_cost;
        // Every shard runs the same schedule: `run_due_runs` is that of one.
        self.ranks.extend(other.ranks);
    }
}

fn movers(a: &Replayed, b: &Replayed) -> Movers {
    let mut m = Movers {
        from: a.figures.label.clone(),
        to: b.figures.label.clone(),
        up: 0,
        down: 0,
        up_examples: Vec::new(),
        down_examples: Vec::new(),
    };
    // Members above the base on either side (both maps are sorted by id);
    // a member missing on one side ranks at its base there.
    let (mut x, mut y) = (a.ranks.iter().peekable(), b.ranks.iter().peekable());
    loop {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let side = match (x.peek(), y.peek()) {
            (None, None) => break,
            (Some((i, _)), Some((j, _))) => i.cmp(j),
            (Some(_), None) => Less,
            (None, Some(_)) => Greater,
        };
        let (id, from, to) = match side {
            Less => x.next().map(|(i, &r)| (i, r, 0)),
            Greater => y.next().map(|(j, &q)| (j, 0, q)),
            Equal => x.next().zip(y.next()).map(|((i, &r), (_, &q))| (i, r, q)),
        }
        .expect("peeked above");
        let (count, examples) = match to.cmp(&from) {
            Greater => (&mut m.up, &mut m.up_examples),
            Less => (&mut m.down, &mut m.down_examples),
            Equal => continue,
        };
        *count += 1;
        if examples.len() < MOVER_EXAMPLES {
            examples.push(id.0.clone());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Members whose ids share a hash (made to here; FNV-1a collisions are
    /// rare but possible) are still replayed each on their own.
    #[test]
    fn members_sharing_a_hash_are_replayed_apart() {
        let t = |d: u32| Utc.with_ymd_and_hms(2024, 1, d, 12, 0, 0).unwrap();
        let orders: Vec<Order> = (0..12u32)
            .map(|i| {
                Order::paid(format!("o{i}"), format!("m{}", i % 3), t(1 + 2 * i), Decimal::new(1_000 + i64::from(i), 2))
            })
            .collect();
        let program = Program::default_demo();
        let steps = timeline(&[&orders], &[], &[], Prep(false));
        let until = t(28);
        let owners = owners(&steps, &program, Prep(false));
        let fair = split(&steps, 1, &owners, Prep(false)).remove(0);
        let mut clashing: Vec<Fact> = fair.iter().map(|&(_, p)| (7, p)).collect();
        clashing.sort_unstable();
        let a = replay_members(&[("x", &program)], &steps, &fair, &owners, t(1), until).unwrap().remove(0);
        let b = replay_members(&[("x", &program)], &steps, &clashing, &owners, t(1), until).unwrap().remove(0);
        assert_eq!(a.figures, b.figures);
        assert_eq!(a.ranks, b.ranks);
        assert_eq!((b.figures.members, b.figures.orders, b.figures.points_issued), (3, 12, 6 * 10 + 6 * 10));
    }

    /// The preparation gives the same timeline, owners and split on rayon's
    /// pool as on one thread: many facts at one instant (the input order
    /// decides), repeated order ids, refunds of owned and unknown orders.
    #[test]
    fn preparing_in_parallel_changes_nothing() {
        let t = |h: u32| Utc.with_ymd_and_hms(2024, 1, 1, h % 24, 0, 0).unwrap();
        let orders: Vec<Order> = (0..5_000u32)
            .map(|i| Order::paid(format!("o{}", i % 4_000), format!("m{}", i % 97), t(i % 5), Decimal::new(500, 2)))
            .collect();
        let refunds: Vec<Refund> = (0..300u32)
            .map(|i| Refund {
                id: format!("r{i}"),
                order_id: format!("o{}", i * 17),
                at: t(i % 7),
                scope: crate::facts::RefundScope::Full,
            })
            .collect();
        let (first, second) = orders.split_at(1_234);
        let program = Program::default_demo();
        let prepare = |prep: Prep| {
            let steps = timeline(&[first, second], &refunds, &[], prep);
            let owners = owners(&steps, &program, prep);
            let parts = split(&steps, 7, &owners, prep);
            let facts: Vec<(DateTime<Utc>, usize)> = steps
                .iter()
                .map(|s| match s.what {
                    What::Order(o) => (s.at, o as *const Order as usize),
                    What::Refund(r) => (s.at, r as *const Refund as usize),
                    What::Redeem(_, r) => (s.at, r as *const RecordedRedemption as usize),
                })
                .collect();
            (facts, owners.by_id, owners.owning, parts)
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        let parallel = pool.install(|| prepare(Prep(true)));
        let sequential = prepare(Prep(false));
        assert!(parallel.1.len() > 900, "repeated and refunded ids are mapped: {}", parallel.1.len());
        assert_eq!(parallel, sequential);
    }
}
