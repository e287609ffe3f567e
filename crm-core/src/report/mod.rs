//! The visual report: one self-contained HTML page of a programme's figures.
//!
//! Two steps, both pure:
//!
//! 1. [`Engine::report_page`] gathers [`PageData`] in one call from the
//!    existing reports and views ([`Engine::report`], tier and stage
//!    distributions, [`Engine::stage_transitions`]) and the RFM scores of
//!    the stored paid orders ([`mod@crate::analytics::rfm`]);
//! 2. [`render_html`] draws it, with an optional what-if [`Comparison`], as
//!    an HTML document whose charts are inline SVG ([`svg`]) and whose text
//!    is English or Chinese ([`Lang`]). [`render_fragment`] gives the same
//!    content as one `<div>` for notebooks (Jupyter's `_repr_html_`).
//!
//! The page loads nothing: no scripts, fonts or images, and a
//! Content-Security-Policy that forbids fetching them, so it opens offline
//! and can be mailed as an attachment. The same data renders to the same
//! bytes.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use crm_core::report::{render_html, Lang, PageOptions};
//! use crm_core::{Engine, MemoryStore, Order, Program};
//! use rust_decimal::Decimal;
//!
//! let engine = Engine::new(Program::default_demo(), MemoryStore::new());
//! let t = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
//! engine.record_order(Order::paid("o-1", "alice", t, Decimal::new(12_999, 2)), t)?;
//! let page = engine.report_page(&PageOptions::at(t))?;
//! assert_eq!(page.report.members, 1);
//! let html = render_html(&page, Lang::Zh, None);
//! assert!(html.starts_with("<!DOCTYPE html>") && html.contains("会员数"));
//! # Ok::<(), crm_core::CrmError>(())
//! ```

mod html;
pub mod i18n;
pub mod svg;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::analytics::orders::{day_of_date, Day};
use crate::analytics::{rfm, RfmGroup};
use crate::engine::{Engine, Report, TransitionMatrix};
use crate::error::{CrmError, Result};
use crate::lifecycle::Stage;
use crate::store::Store;
use crate::time::{local_date, sub_local_months};
use crate::whatif::Comparison;

pub use html::{render_fragment, render_html};
pub use i18n::Lang;

/// What to gather for the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageOptions {
    /// The instant every figure is taken at.
    pub at: DateTime<Utc>,
    /// Start of the stage-flow window; default: 12 months before `to` in
    /// the programme's zone.
    pub flows_from: Option<DateTime<Utc>>,
    /// End of the stage-flow window; default: `at`.
    pub flows_to: Option<DateTime<Utc>>,
}

impl PageOptions {
    /// Figures at `at`, stage flows over the year before it.
    pub fn at(at: DateTime<Utc>) -> PageOptions {
        PageOptions { at, flows_from: None, flows_to: None }
    }
}

/// Members of one tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierCount {
    pub id: String,
    /// Display name (the id when the programme gives none).
    pub name: String,
    pub members: u64,
}

/// Buyers by RFM score.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RfmGrid {
    /// Buyers scored (members with a paid order up to `at`).
    pub buyers: u64,
    /// `counts[r - 1][f - 1]`: buyers with recency score `r` and frequency
    /// score `f` (5 × 5).
    pub counts: Vec<Vec<u64>>,
    /// Buyers per named group (every group listed).
    pub groups: BTreeMap<RfmGroup, u64>,
}

/// Everything the page shows, gathered at one instant (serde: the page's
/// data for a host that draws its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageData {
    /// The programme's name, currency and zone.
    pub programme: String,
    pub currency: String,
    pub timezone: String,
    pub at: DateTime<Utc>,
    /// Members, buyers, repurchase rate, liability, cohorts, channels.
    pub report: Report,
    /// Members in the `new`, `active` or `reactivated` stage at `at` (they
    /// bought recently), and their share of the members.
    pub active_members: u64,
    pub active_share: Decimal,
    /// Members per tier in ladder order; empty without a tier ladder.
    pub tiers: Vec<TierCount>,
    /// Members per lifecycle stage at `at`.
    pub stages: BTreeMap<Stage, u64>,
    /// Stage at `flows.from` against stage at `flows.to`.
    pub flows: TransitionMatrix,
    pub rfm: RfmGrid,
}

/// The stages counted as active in [`PageData::active_share`].
pub const ACTIVE_STAGES: [Stage; 3] = [Stage::New, Stage::Active, Stage::Reactivated];

impl<S: Store> Engine<S> {
    /// Gather the report page's data at `options.at`: [`Engine::report`],
    /// the tier and stage distributions, the stage flows and the RFM grid.
    /// Fails (field `flows_to`) when the flow window ends before it starts.
    pub fn report_page(&self, options: &PageOptions) -> Result<PageData> {
        let program = self.program();
        let at = options.at;
        let to = options.flows_to.unwrap_or(at);
        let from = options.flows_from.unwrap_or_else(|| sub_local_months(program.timezone, to, 12));
        if to < from {
            return Err(CrmError::invalid("flows_to", "must not be before flows_from"));
        }
        let report = self.report(at)?;
        let stages = self.stage_distribution(at)?;
        let active_members: u64 = ACTIVE_STAGES.iter().map(|s| stages.get(s).copied().unwrap_or(0)).sum();
        let active_share = if report.members == 0 {
            Decimal::ZERO
        } else {
            (Decimal::from(active_members) / Decimal::from(report.members)).round_dp(4)
        };
        let tiers = match &program.tiers {
            Some(ladder) => {
                let mut counts = self.tier_distribution(at)?;
                ladder
                    .levels
                    .iter()
                    .map(|t| TierCount {
                        id: t.id.clone(),
                        name: t.display_name().to_string(),
                        members: counts.remove(&t.id).unwrap_or(0),
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let flows = self.stage_transitions(from, to)?;
        let rfm = self.rfm_grid(at)?;
        Ok(PageData {
            programme: program.name.clone(),
            currency: program.currency.clone(),
            timezone: program.timezone.name().to_string(),
            at,
            report,
            active_members,
            active_share,
            tiers,
            stages,
            flows,
            rfm,
        })
    }

    /// RFM scores of the members' paid orders up to `at` (net of refunds,
    /// in the currency's minor units, days in the programme's zone).
    fn rfm_grid(&self, at: DateTime<Utc>) -> Result<RfmGrid> {
        let tz = self.program().timezone;
        let scale = crate::money::minor_unit(&self.program().currency);
        let (mut member, mut day, mut amount) = (Vec::new(), Vec::<Day>::new(), Vec::new());
        let mut members = 0u32;
        self.store().inspect_all(&mut |st| {
            if !st.is_active() || st.created_at > at {
                return Ok(());
            }
            let mut any = false;
            for o in st.orders.values().filter(|o| o.order.status.earns() && o.order.earned_at() <= at) {
                let net = (o.order.amount - o.refunded).max(Decimal::ZERO);
                let mut minor = net.round_dp(scale);
                minor.rescale(scale);
                let minor = i64::try_from(minor.mantissa())
                    .map_err(|_| CrmError::invalid("order.amount", "too large for the RFM grid"))?;
                member.push(members);
                day.push(day_of_date(local_date(tz, o.order.earned_at())));
                amount.push(minor);
                any = true;
            }
            if any {
                members += 1;
            }
            Ok(())
        })?;
        let table = rfm(&member, &day, &amount, members as usize, scale, day_of_date(local_date(tz, at)))?;
        let mut grid = RfmGrid {
            buyers: table.len() as u64,
            counts: vec![vec![0; 5]; 5],
            groups: RfmGroup::ALL.iter().map(|g| (*g, 0)).collect(),
        };
        for i in 0..table.len() {
            let (r, f) = (usize::from(table.r_score[i].clamp(1, 5)) - 1, usize::from(table.f_score[i].clamp(1, 5)) - 1);
            grid.counts[r][f] += 1;
            *grid.groups.entry(table.group(i)).or_insert(0) += 1;
        }
        Ok(grid)
    }
}

/// Read a what-if [`Comparison`] from JSON: the whole text, or else its
/// last non-empty line (the `whatif` example prints it last, after its
/// table). Unknown keys (`elapsed_ms`) are ignored.
pub fn comparison_from_json(text: &str) -> Result<Comparison> {
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    serde_json::from_str(text)
        .or_else(|_| serde_json::from_str(last))
        .map_err(|e| CrmError::invalid("whatif", format!("not a what-if comparison: {e}")))
}
