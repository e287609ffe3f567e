//! What-if replay: the same history under several programmes, side by side.
//!
//! [`compare`] replays one history (orders, refunds and, optionally, recorded
//! redemptions) into fresh in-memory [`Engine`]s per programme and returns
//! the figures of each ([`ProgrammeFigures`]) and the members whose final tier
//! differs from the first programme's ([`Movers`]). Members are independent in
//! a replayed history, so each programme runs as [`Options::shards`] engines
//! over disjoint sets of members (a fixed hash of the member id), and the
//! (programme, shard) pairs run in parallel on all cores with
//! `std::thread::scope`; the figures are sums over members, the same for any
//! number of shards or threads.
//!
//! The replay is the same for every programme: events in time order (orders
//! before refunds before redemptions at the same instant, then input order);
//! orders in batches of [`Options::batch`] through [`Engine::record_orders`]
//! with `now` = the latest `placed_at` of the batch (as the `replay` example
//! does, per shard); a batch is cut at every refund, redemption and month end; each
//! refund at its own `at`; `run_due` at the first instant of every month in
//! the programme's zone (so expiry, tier reviews, stage changes and outreach
//! happen on the way) and finally at `until`. Redemptions take what the
//! balance allows at their instant; the rest is counted as a shortfall.
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

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::command::Outcome;
use crate::engine::Engine;
use crate::error::{CrmError, Result};
use crate::facts::{Order, Refund};
use crate::lifecycle::Stage;
use crate::member::{MemberId, MemberStatus};
use crate::program::Program;
use crate::store::{MemoryStore, Store};
use crate::time::{first_of_month_after, local_date, start_of_day};

/// Orders per `record_orders` call unless told otherwise (the `replay` example's default).
pub const DEFAULT_BATCH: usize = 1_000;
/// Engines per programme unless told otherwise. Many small engines replay
/// faster than one large one (CDNOW, two programmes, 2 cores: 1 shard 12.9 s,
/// 4 shards 10.4 s, 16 shards 6.7–7.6 s, 64 shards 5.2 s), and they spread over the cores.
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
    /// Orders per `record_orders` call; 0 means [`DEFAULT_BATCH`].
    pub batch: usize,
    /// Recorded redemptions, taken from the programme's first spendable point type.
    pub redemptions: Vec<RecordedRedemption>,
    /// Worker threads; 0 means every available core.
    pub threads: usize,
    /// Engines per programme, each over a disjoint set of members (by a hash
    /// of the member id); 0 means [`DEFAULT_SHARDS`]. The figures do not
    /// depend on it.
    pub shards: usize,
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
    if programs.is_empty() {
        return Err(CrmError::invalid("programs", "at least one programme is needed"));
    }
    for (i, (label, _)) in programs.iter().enumerate() {
        if programs[..i].iter().any(|(l, _)| l == label) {
            return Err(CrmError::invalid("programs", format!("the label {label:?} is used twice")));
        }
    }
    let steps = timeline(orders, refunds, &options.redemptions);
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

    // Members are independent (no merges in a replayed history), so each
    // programme runs as `shards` engines over disjoint sets of members; the
    // figures are sums over members and do not depend on the split.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shards = if options.shards == 0 { DEFAULT_SHARDS } else { options.shards };
    let start = steps.first().map_or(until, |s| s.at);
    let parts = split(&steps, shards);
    let tasks = programs.len() * shards;
    let threads = if options.threads == 0 { cores } else { options.threads }.clamp(1, tasks);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Replayed>>>> = Mutex::new((0..tasks).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= tasks {
                    break;
                }
                let (label, program) = &programs[k / shards];
                let r = replay(label, program, &parts[k % shards], batch, start, until);
                results.lock().unwrap_or_else(|e| e.into_inner())[k] = Some(r);
            });
        }
    });
    let mut replayed: Vec<Replayed> = Vec::with_capacity(programs.len());
    for (k, r) in results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().enumerate() {
        let r = r.expect("every task ran")?;
        if k % shards == 0 {
            replayed.push(r);
        } else {
            replayed.last_mut().expect("shard 0 comes first").absorb(r);
        }
    }

    let movers = replayed[1..].iter().map(|b| movers(&replayed[0], b)).collect();
    let notes = vec![
        "coupon_cost is the face value of the coupons triggers handed out (the most they can cost); the history records no coupon use, so none is redeemed"
            .to_string(),
        "movers compare ranks on each programme's own ladder; a programme without tiers ranks everyone at the base"
            .to_string(),
    ];
    Ok(Comparison { until, history, programmes: replayed.into_iter().map(|r| r.figures).collect(), movers, notes })
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
fn timeline<'a>(orders: &'a [Order], refunds: &'a [Refund], redemptions: &'a [RecordedRedemption]) -> Vec<Step<'a>> {
    let mut steps: Vec<(u8, usize, Step<'a>)> = Vec::with_capacity(orders.len() + refunds.len() + redemptions.len());
    steps.extend(orders.iter().enumerate().map(|(i, o)| (0, i, Step { at: o.placed_at, what: What::Order(o) })));
    steps.extend(refunds.iter().enumerate().map(|(i, r)| (1, i, Step { at: r.at, what: What::Refund(r) })));
    steps.extend(redemptions.iter().enumerate().map(|(i, r)| (2, i, Step { at: r.at, what: What::Redeem(i, r) })));
    steps.sort_unstable_by_key(|s| (s.2.at, s.0, s.1));
    steps.into_iter().map(|(_, _, s)| s).collect()
}

/// Deal the steps to `shards` lists by member (a refund goes with its order's member).
fn split<'a>(steps: &[Step<'a>], shards: usize) -> Vec<Vec<Step<'a>>> {
    let owner: HashMap<&str, &str> = steps
        .iter()
        .filter_map(|s| match s.what {
            What::Order(o) => Some((o.id.as_str(), o.member_id.0.as_str())),
            _ => None,
        })
        .collect();
    let mut parts: Vec<Vec<Step<'a>>> = (0..shards).map(|_| Vec::new()).collect();
    for s in steps {
        let member = match s.what {
            What::Order(o) => o.member_id.0.as_str(),
            What::Refund(r) => owner.get(r.order_id.as_str()).copied().unwrap_or(""),
            What::Redeem(_, r) => r.member_id.0.as_str(),
        };
        let shard = (fnv1a(member.as_bytes()) % shards as u64) as usize;
        parts[shard].push(Step { at: s.at, what: s.what });
    }
    parts
}

/// FNV-1a: a fixed hash, so the split is the same in every run.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

struct Replayed {
    figures: ProgrammeFigures,
    /// Ladder rank at `until` of every active member.
    ranks: BTreeMap<MemberId, usize>,
}

struct Run<'p> {
    engine: Engine<MemoryStore>,
    program: &'p Program,
    f: ProgrammeFigures,
    pending: Vec<Order>,
    batch: usize,
}

impl Run<'_> {
    fn spendable(&self, point_type: &str) -> bool {
        self.program.point_types.iter().any(|t| t.id == point_type && t.spendable)
    }

    fn flush(&mut self) -> Result<()> {
        let Some(now) = self.pending.iter().map(|o| o.placed_at).max() else { return Ok(()) };
        let results = self.engine.record_orders(&self.pending, now)?;
        self.pending.clear();
        for r in results {
            match r {
                Ok(Outcome::Order { earned, .. }) => {
                    self.f.orders += 1;
                    for (t, p) in earned {
                        if self.spendable(&t) {
                            self.f.points_issued += p;
                        }
                        *self.f.issued_by_type.entry(t).or_insert(0) += p;
                    }
                }
                Ok(_) | Err(_) => self.f.orders_rejected += 1,
            }
        }
        Ok(())
    }

    fn run_due(&mut self, now: DateTime<Utc>) -> Result<()> {
        self.flush()?;
        if let Outcome::Due { expired, tier_changes, stage_changes, outreach, suppressed, .. } =
            self.engine.run_due(now)?
        {
            self.f.points_expired += expired;
            self.f.tier_changes += tier_changes;
            self.f.stage_changes += stage_changes;
            self.f.outreach_suppressed += suppressed;
            for item in outreach {
                let template = item.payload.get("coupon").and_then(|c| c.get("template")).and_then(|t| t.as_str());
                if let Some(t) =
                    self.program.coupons.iter().flat_map(|c| &c.templates).find(|t| Some(t.id.as_str()) == template)
                {
                    self.f.coupon_cost += t.face_value().unwrap_or_default();
                }
                *self.f.outreach.entry(item.trigger).or_insert(0) += 1;
            }
        }
        self.f.run_due_runs += 1;
        Ok(())
    }

    fn refund(&mut self, refund: &Refund) -> Result<()> {
        self.flush()?;
        match self.engine.record_refund(refund.clone(), refund.at) {
            Ok(Outcome::Refund { clawbacks, .. }) => {
                self.f.refunds += 1;
                let taken: i64 =
                    clawbacks.iter().filter(|c| self.spendable(&c.point_type)).map(|c| c.taken + c.debt).sum();
                self.f.points_clawed_back += taken;
            }
            Ok(_) => self.f.refunds += 1,
            Err(e) if is_rejection(&e) => self.f.refunds_rejected += 1,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn redeem(&mut self, i: usize, r: &RecordedRedemption) -> Result<()> {
        self.flush()?;
        self.f.redemptions += 1;
        let point_type = self.program.point_types.iter().find(|t| t.spendable).map(|t| t.id.clone());
        let available = match &point_type {
            Some(t) => match self.engine.balance(&r.member_id, t, r.at) {
                Ok(b) => b.available.max(0),
                Err(e) if is_rejection(&e) => 0,
                Err(e) => return Err(e),
            },
            None => 0,
        };
        let take = r.points.max(0).min(available);
        if take < r.points {
            self.f.redemptions_short += 1;
            self.f.redemption_shortfall += r.points - take;
        }
        if let (Some(t), true) = (point_type, take > 0) {
            match self.engine.redeem(&r.member_id, &t, take, &format!("whatif-redeem:{i}"), r.at) {
                Ok(_) => self.f.points_redeemed += take,
                Err(e) if is_rejection(&e) => {
                    self.f.redemptions_short += u64::from(take == r.points);
                    self.f.redemption_shortfall += take;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Errors that reject one input (bad data, unknown member or order) rather than stop the replay.
fn is_rejection(e: &CrmError) -> bool {
    !matches!(e, CrmError::Store(..) | CrmError::Conflict { .. })
}

fn first_of_next_month(program: &Program, t: DateTime<Utc>) -> DateTime<Utc> {
    let tz = program.timezone;
    start_of_day(tz, first_of_month_after(local_date(tz, t), 1))
}

fn replay(
    label: &str,
    program: &Program,
    steps: &[Step<'_>],
    batch: usize,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Replayed> {
    let f = ProgrammeFigures {
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
    };
    let engine = Engine::new(program.clone(), MemoryStore::new());
    let mut run = Run { engine, program, f, pending: Vec::with_capacity(batch), batch };
    let mut month_end = first_of_next_month(program, start);
    for step in steps {
        while month_end <= step.at && month_end < until {
            run.run_due(month_end)?;
            month_end = first_of_next_month(program, month_end);
        }
        match step.what {
            What::Order(o) => {
                run.pending.push(o.clone());
                if run.pending.len() >= run.batch {
                    run.flush()?;
                }
            }
            What::Refund(r) => run.refund(r)?,
            What::Redeem(i, r) => run.redeem(i, r)?,
        }
    }
    while month_end < until {
        run.run_due(month_end)?;
        month_end = first_of_next_month(program, month_end);
    }
    run.run_due(until)?;

    let Run { engine, mut f, .. } = run;
    let liability = engine.liability(until)?;
    f.members = liability.members;
    for t in liability.point_types.iter().filter(|t| t.spendable) {
        f.outstanding.insert(t.point_type.clone(), t.outstanding);
        f.points_outstanding += t.outstanding;
    }
    f.liability_value = liability.value;
    if program.tiers.is_some() {
        f.tier_distribution = Some(engine.tier_distribution(until)?);
    }
    f.stage_distribution = engine.stage_distribution(until)?;

    let mut ranks = BTreeMap::new();
    engine.store().inspect_all(&mut |st| {
        if !st.is_active() || st.created_at > until || matches!(st.status, MemberStatus::Merged { .. }) {
            return Ok(());
        }
        let rank = program.tiers.as_ref().map_or(0, |ladder| {
            let tier = st.tier_history.iter().rev().find(|c| c.at <= until).map(|c| c.to.as_str());
            tier.and_then(|id| ladder.levels.iter().position(|l| l.id == id)).unwrap_or(0)
        });
        ranks.insert(st.id.clone(), rank);
        Ok(())
    })?;
    Ok(Replayed { figures: f, ranks })
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
    // Members known to either side; a member missing on one side ranks at its base.
    let mut ids: Vec<&MemberId> = a.ranks.keys().chain(b.ranks.keys()).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let from = a.ranks.get(id).copied().unwrap_or(0);
        let to = b.ranks.get(id).copied().unwrap_or(0);
        let (count, examples) = match to.cmp(&from) {
            std::cmp::Ordering::Greater => (&mut m.up, &mut m.up_examples),
            std::cmp::Ordering::Less => (&mut m.down, &mut m.down_examples),
            std::cmp::Ordering::Equal => continue,
        };
        *count += 1;
        if examples.len() < MOVER_EXAMPLES {
            examples.push(id.0.clone());
        }
    }
    m
}
