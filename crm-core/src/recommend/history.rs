//! Interactions from an engine's stored history: the order lines of paid and completed
//! orders (net of returned quantities) and the engagement events recorded with
//! [`crate::Command::RecordEngagement`], in one pass over the member snapshots
//! ([`Store::inspect_all`]).

use std::collections::BTreeMap;

use super::{InteractionOptions, Interactions};
use crate::error::Result;
use crate::store::Store;

/// Build [`Interactions`] from every member of `store`.
///
/// - Orders count when their status earns points (paid, completed); each sku counts with
///   its quantity over the order's lines less what was returned (nothing left: no purchase).
///   A cancelled or fully returned order says nothing about taste.
/// - Engagements count when they name a sku and their kind has a weight in `options`;
///   other kinds (reviews, check-ins, host-defined kinds) are skipped. A member keeps only
///   their most recent engagements (see [`crate::state::MemberState::engagements`]).
/// - Every member is listed, with or without history (`recommend_all` then gives the
///   newcomers popular skus).
pub fn interactions_from_store<S: Store + ?Sized>(store: &S, options: InteractionOptions) -> Result<Interactions> {
    let mut x = Interactions::new(options)?;
    store.inspect_all(&mut |state| {
        let member = state.id.as_str();
        x.add_member(member)?;
        for ledger in state.orders.values().filter(|l| l.order.status.earns()) {
            let mut bought: BTreeMap<&str, (u32, Option<&str>)> = BTreeMap::new();
            for item in &ledger.order.items {
                let e = bought.entry(item.sku.as_str()).or_insert((0, None));
                e.0 = e.0.saturating_add(item.qty);
                e.1 = e.1.or(item.category.as_deref());
            }
            for (sku, (qty, category)) in bought {
                let left = qty.saturating_sub(ledger.returned.get(sku).copied().unwrap_or(0));
                if left > 0 && !sku.is_empty() {
                    x.add_purchase(member, sku, category, left)?;
                }
            }
        }
        for e in &state.engagements {
            if let Some(sku) = e.sku.as_deref().filter(|s| !s.is_empty()) {
                if x.knows_kind(&e.kind) {
                    x.add_engagement(member, sku, &e.kind)?;
                }
            }
        }
        Ok(())
    })?;
    Ok(x)
}
