//! Coupons in the engine: issue (to one member, to a segment, or for
//! points), redeem on an order, return on refund, revoke; the member's
//! coupons and the checkout quote. The rules are in [`crate::coupon`].

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{check_ref, Engine, Tx};
use crate::command::{Command, Outcome};
use crate::coupon::{
    self, Cart, Coupon, CouponConfig, CouponStatus, CouponTemplate, CouponView, NotApplicable, Offer, Quote,
    TemplateUsage,
};
use crate::error::{CrmError, Result};
use crate::facts::OrderStatus;
use crate::ledger;
use crate::member::MemberId;
use crate::outreach::OutreachItem;
use crate::segment::Rule;
use crate::shared::Shared;
use crate::state::{CouponRedeemed, Event, RedemptionPoints};
use crate::store::Store;

fn config(cfg: &Option<CouponConfig>) -> Result<&CouponConfig> {
    cfg.as_ref().ok_or_else(|| CrmError::invalid("template", "the programme has no coupons"))
}

fn template<'p>(cfg: &'p Option<CouponConfig>, id: &str) -> Result<&'p CouponTemplate> {
    config(cfg)?
        .templates
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(|| CrmError::invalid("template", format!("no coupon template {id:?} in the programme")))
}

/// Whether `st` may be issued coupon `code` of `t` at `now`: a new code,
/// within the member's limit, still valid. Returns the validity window.
fn may_hold(
    st: &crate::state::MemberState,
    t: &CouponTemplate,
    code: &str,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    if st.coupons.contains_key(code) {
        return Err(CrmError::conflict(format!("coupon {code} was already issued")));
    }
    if let Some(limit) = t.per_member_limit {
        let held = st.coupons.values().filter(|c| c.template == t.id).count();
        if held >= limit as usize {
            return Err(CrmError::invalid(
                "template",
                format!("member {} already has {held} coupon(s) of {:?} (limit {limit})", st.id, t.id),
            ));
        }
    }
    let (valid_from, expires_at) = t.validity.window(tz, now);
    if expires_at <= now {
        return Err(CrmError::invalid("template", format!("coupons of {:?} are no longer valid", t.id)));
    }
    Ok((valid_from, expires_at))
}

/// The outcome of a redeemed coupon, from its stored use (first result of a repeat).
fn redeemed_outcome(member_id: &MemberId, c: &Coupon, t: Option<&CouponTemplate>) -> Outcome {
    let u = c.redeemed.as_ref().expect("redeemed coupon");
    Outcome::CouponRedeemed {
        member_id: member_id.clone(),
        code: c.code.clone(),
        template: c.template.clone(),
        order_id: u.order_id.clone(),
        discount: u.discount,
        cost: t.map_or(u.discount, |t| coupon::cost(t, u.discount)),
    }
}

impl<S: Store> Tx<'_, S> {
    pub(super) fn issue_coupon(
        &mut self,
        key: &str,
        member_id: &MemberId,
        template_id: &str,
        code: &str,
        for_points: bool,
        reason: &Option<String>,
    ) -> Result<(Outcome, Option<MemberId>)> {
        let t = template(&self.program.coupons, template_id)?;
        let code = coupon::check_code(code)?;
        let id = self.active(member_id, "member_id")?;
        let now = self.now;
        let (valid_from, expires_at) = may_hold(self.state(&id), t, &code, self.program.timezone, now)?;
        let st = self.state(&id);
        let (mut points, mut redemption_id) = (0, None);
        if for_points {
            let price = t
                .points_price
                .clone()
                .ok_or_else(|| CrmError::invalid("for_points", format!("{:?} has no points price", t.id)))?;
            let available = st.balance(&price.point_type, now).available;
            if available < price.points {
                return Err(CrmError::InsufficientPoints { requested: price.points, available: available.max(0) });
            }
            let (allocations, _) = ledger::allocate(st.open_lots(), &price.point_type, price.points, now);
            let rid = key.to_string();
            self.emit(
                &id,
                Event::PointsRedeemed(Box::new(RedemptionPoints {
                    at: now,
                    redemption_id: rid.clone(),
                    point_type: price.point_type.clone(),
                    points: price.points,
                    allocations,
                })),
            );
            self.extend_inactivity(&id, &price.point_type, now);
            points = price.points;
            redemption_id = Some(rid);
        }
        // After the member's own checks; a refusal here undoes the points above.
        self.grant_coupon(&id, t, &code, (valid_from, expires_at), redemption_id.clone(), reason.clone())?;
        let outcome = Outcome::CouponIssued {
            member_id: id.clone(),
            code,
            template: t.id.clone(),
            valid_from,
            expires_at,
            points,
            redemption_id,
        };
        Ok((outcome, Some(id)))
    }

    pub(super) fn redeem_coupon(
        &mut self,
        member_id: &MemberId,
        code: &str,
        order_id: &str,
    ) -> Result<(Outcome, Option<MemberId>)> {
        check_ref(order_id, "order_id")?;
        let code = coupon::check_code(code)?;
        let id = self.active(member_id, "member_id")?;
        let now = self.now;
        let st = self.state(&id);
        let c = st.coupons.get(&code).ok_or_else(|| CrmError::NotFound { entity: "coupon", id: code.clone() })?.clone();
        let t = template(&self.program.coupons, &c.template).ok();
        // Idempotent by order: this coupon on this order again is the first result.
        if c.redeemed.as_ref().is_some_and(|u| u.order_id == order_id) {
            return Ok((redeemed_outcome(&id, &c, t), Some(id)));
        }
        if let Some(other) = st.coupons.values().find(|o| o.redeemed.as_ref().is_some_and(|u| u.order_id == order_id)) {
            return Err(CrmError::conflict(format!("order {order_id} already used coupon {}", other.code)));
        }
        match c.status(now) {
            CouponStatus::Issued => {}
            CouponStatus::Redeemed => {
                let on = &c.redeemed.as_ref().expect("redeemed").order_id;
                return Err(CrmError::conflict(format!("coupon {code} was already redeemed on order {on}")));
            }
            CouponStatus::Expired => {
                return Err(CrmError::invalid("code", format!("coupon {code} expired at {}", c.expires_at)))
            }
            CouponStatus::Revoked => return Err(CrmError::invalid("code", format!("coupon {code} was revoked"))),
        }
        if now < c.valid_from {
            return Err(CrmError::invalid("code", format!("coupon {code} is valid from {}", c.valid_from)));
        }
        let t = t.ok_or_else(|| {
            CrmError::invalid("code", format!("the template {:?} is no longer in the programme", c.template))
        })?;
        let ledger = st
            .orders
            .get(order_id)
            .ok_or_else(|| CrmError::NotFound { entity: "order", id: format!("{order_id} of member {id}") })?;
        if ledger.order.status == OrderStatus::Cancelled {
            return Err(CrmError::invalid("order_id", format!("order {order_id} is cancelled")));
        }
        let cart = Cart {
            amount: ledger.order.amount - ledger.refunded,
            channel: ledger.order.channel.clone(),
            items: ledger.order.items.clone(),
        };
        let discount = coupon::discount(t, &cart).map_err(|reason| CrmError::invalid("order_id", reason))?;
        self.emit(
            &id,
            Event::CouponRedeemed(Box::new(CouponRedeemed {
                at: now,
                code: code.clone(),
                order_id: order_id.into(),
                discount,
            })),
        );
        let outcome = Outcome::CouponRedeemed {
            member_id: id.clone(),
            code,
            template: t.id.clone(),
            order_id: order_id.into(),
            discount,
            cost: coupon::cost(t, discount),
        };
        Ok((outcome, Some(id)))
    }

    pub(super) fn revoke_coupon(
        &mut self,
        member_id: &MemberId,
        code: &str,
        reason: &str,
    ) -> Result<(Outcome, Option<MemberId>)> {
        if reason.trim().is_empty() {
            return Err(CrmError::invalid("reason", "must not be empty"));
        }
        let code = coupon::check_code(code)?;
        let id = self.active(member_id, "member_id")?;
        let now = self.now;
        let c = self
            .state(&id)
            .coupons
            .get(&code)
            .ok_or_else(|| CrmError::NotFound { entity: "coupon", id: code.clone() })?
            .clone();
        match c.status(now) {
            CouponStatus::Issued | CouponStatus::Expired => {}
            CouponStatus::Redeemed => {
                return Err(CrmError::conflict(format!("coupon {code} is redeemed; refund the order instead")))
            }
            CouponStatus::Revoked => return Err(CrmError::conflict(format!("coupon {code} was already revoked"))),
        }
        let mut points = 0;
        if let Some(rid) = &c.redemption_id {
            if let Some(r) = self.state(&id).redemptions.get(rid).cloned().filter(|r| !r.reversed) {
                points = r.points;
                self.emit(
                    &id,
                    Event::RedemptionReversed(Box::new(RedemptionPoints {
                        at: now,
                        redemption_id: rid.clone(),
                        point_type: r.point_type.clone(),
                        points: r.points,
                        allocations: r.allocations,
                    })),
                );
            }
        }
        if let Some(t) = self.program.coupons.as_ref().and_then(|cfg| cfg.templates.iter().find(|t| t.id == c.template))
        {
            if t.total_limit.is_some() || t.budget.is_some() {
                self.add_to_tally(&t.tally_key(), -1, -t.face_value().unwrap_or_default())?;
            }
        }
        self.emit(&id, Event::CouponRevoked { at: now, code: code.clone(), reason: reason.into() });
        Ok((Outcome::CouponRevoked { member_id: id.clone(), code, points }, Some(id)))
    }

    /// Issue coupon `code` of `t` to `id`: take it from the template's stock
    /// and budget, then record it. The member's own checks ([`may_hold`])
    /// come first.
    fn grant_coupon(
        &mut self,
        id: &MemberId,
        t: &CouponTemplate,
        code: &str,
        (valid_from, expires_at): (DateTime<Utc>, DateTime<Utc>),
        redemption_id: Option<String>,
        reason: Option<String>,
    ) -> Result<()> {
        self.take_stock(t)?;
        let c = Coupon {
            code: code.to_string(),
            template: t.id.clone(),
            issued_at: self.now,
            valid_from,
            expires_at,
            redemption_id,
            reason,
            redeemed: None,
            revoked: None,
            returned: 0,
        };
        self.emit(id, Event::CouponIssued { at: self.now, coupon: Box::new(c) });
        Ok(())
    }

    /// The coupon a trigger hands out with a message, under the code a
    /// replayed run was given or one drawn now. `Ok(None)`: the member's
    /// limit, the template's stock or budget, or its validity rules it out
    /// (the message is then suppressed).
    pub(super) fn trigger_coupon(
        &mut self,
        id: &MemberId,
        template_id: &str,
        item: &OutreachItem,
    ) -> Result<Option<serde_json::Value>> {
        let program = self.program;
        let t = template(&program.coupons, template_id)?;
        let key = format!("{}/{}/{}", item.member_id, item.trigger, item.occurrence);
        let code = match self.codes.as_ref().and_then(|c| c.given.get(&key)) {
            Some(code) => coupon::check_code(code)?,
            None => coupon::generate_codes(1)?.remove(0),
        };
        let now = self.now;
        let window = match may_hold(self.state(id), t, &code, program.timezone, now) {
            Ok(w) => w,
            Err(CrmError::Validation { .. } | CrmError::Conflict { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let reason = Some(format!("trigger {}:{}", item.trigger, item.occurrence));
        // Stock and budget: a refusal leaves nothing behind (take_stock
        // changes the tally only when it passes).
        match self.grant_coupon(id, t, &code, window, None, reason) {
            Ok(()) => {}
            Err(CrmError::Validation { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        if let Some(book) = self.codes.as_mut() {
            book.drawn.insert(key, code.clone());
        }
        Ok(Some(serde_json::json!({
            "code": code,
            "template": t.id,
            "valid_from": window.0,
            "expires_at": window.1,
        })))
    }

    /// Take one coupon of `t` from the programme-wide stock and its face value
    /// from the budget, or refuse when either is used up. Templates without a
    /// total limit or budget keep no tally (no shared row to contend on).
    fn take_stock(&mut self, t: &CouponTemplate) -> Result<()> {
        if t.total_limit.is_none() && t.budget.is_none() {
            return Ok(());
        }
        let key = t.tally_key();
        let used = self.tally(&key)?;
        let face = t.face_value().unwrap_or_default();
        if let Some(limit) = t.total_limit {
            if used.count >= i64::from(limit) {
                return Err(CrmError::invalid(
                    "template",
                    format!("coupon template {:?} is out of stock: {} of {limit} issued", t.id, used.count),
                ));
            }
        }
        if let Some(budget) = t.budget {
            if used.amount + face > budget {
                return Err(CrmError::invalid(
                    "template",
                    format!(
                        "coupon template {:?} is over budget: {} of {budget} committed, a coupon is worth {face}",
                        t.id, used.amount
                    ),
                ));
            }
        }
        self.add_to_tally(&key, 1, face)
    }

    /// After a refund or a cancellation: a coupon used on an order that is now
    /// fully refunded or cancelled comes back (programme choice), unless expired.
    pub(super) fn return_coupon(&mut self, member: &Option<MemberId>, order_id: &str) {
        let (Some(id), Some(cfg)) = (member, &self.program.coupons) else { return };
        if !cfg.return_on_refund {
            return;
        }
        let st = self.state(id);
        let Some(o) = st.orders.get(order_id) else { return };
        let gone = o.order.status == OrderStatus::Cancelled || o.refunded_in_full();
        if !gone {
            return;
        }
        let now = self.now;
        let codes: Vec<String> = st
            .coupons
            .values()
            .filter(|c| c.redeemed.as_ref().is_some_and(|u| u.order_id == order_id) && c.expires_at > now)
            .map(|c| c.code.clone())
            .collect();
        for code in codes {
            self.emit(id, Event::CouponReturned { at: now, code, order_id: order_id.into() });
        }
    }
}

impl<S: Store> Engine<S> {
    /// Issue a coupon of `template` under a fresh code from the operating
    /// system's random source; the key defaults to `coupon:<code>`.
    pub fn issue_coupon(
        &self,
        key: Option<&str>,
        member_id: &MemberId,
        template: &str,
        for_points: bool,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        // A retry under the same key returns the first result (the new code is not used).
        if let Some(outcome) = self.issued_before(key, member_id, template)? {
            return Ok(outcome);
        }
        let code = coupon::generate_codes(1)?.remove(0);
        let cmd =
            Command::IssueCoupon { member_id: member_id.clone(), template: template.into(), code, for_points, reason };
        self.submit(key, cmd, now)
    }

    /// The stored outcome of an issue of `template` to `member_id` under `key`.
    fn issued_before(&self, key: Option<&str>, member_id: &MemberId, template: &str) -> Result<Option<Outcome>> {
        let Some(key) = key else { return Ok(None) };
        Ok(self.store.receipt(key)?.and_then(|r| match &r.command {
            Command::IssueCoupon { member_id: m, template: t, .. } if m == member_id && t == template => {
                Some(r.outcome)
            }
            _ => None,
        }))
    }

    /// Issue one coupon of `template` to every member matching `rule` at `now`. Each member's issue is its own command keyed
    /// `coupon_batch:<batch>:<member>`, so re-running a batch issues nothing twice;
    /// members over the template's limit are skipped and counted.
    pub fn issue_coupons_to_segment(
        &self,
        batch: &str,
        rule: &Rule,
        template: &str,
        now: DateTime<Utc>,
    ) -> Result<BatchIssue> {
        check_ref(batch, "batch")?;
        let tpl = self::template(&self.program.coupons, template)?;
        let members = self.segment(rule, now)?;
        let codes = coupon::generate_codes(members.len())?;
        let mut out = BatchIssue::default();
        for (m, code) in members.iter().zip(codes) {
            let key = format!("coupon_batch:{batch}:{m}");
            if let Some(Outcome::CouponIssued { code, .. }) = self.issued_before(Some(&key), m, &tpl.id)? {
                out.issued.push((m.clone(), code));
                continue;
            }
            let cmd = Command::IssueCoupon {
                member_id: m.clone(),
                template: tpl.id.clone(),
                code,
                for_points: false,
                reason: Some(format!("batch {batch}")),
            };
            match self.execute(&key, cmd, now) {
                Ok(Outcome::CouponIssued { code, .. }) => out.issued.push((m.clone(), code)),
                Ok(_) => {}
                Err(CrmError::Validation { field, .. }) if field == "template" => {
                    if self.coupon_usage(&tpl.id)?.is_exhausted(tpl.face_value()) {
                        out.exhausted = true;
                        break;
                    }
                    out.skipped += 1
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// How much of a template's programme-wide stock and budget is taken.
    pub fn coupon_usage(&self, template: &str) -> Result<TemplateUsage> {
        let t = self::template(&self.program.coupons, template)?;
        let used = self.store.tally(&t.tally_key())?.unwrap_or_default().tally;
        let issued = used.count.max(0) as u64;
        Ok(TemplateUsage {
            template: t.id.clone(),
            issued,
            total_limit: t.total_limit,
            remaining: t.total_limit.map(|l| u64::from(l).saturating_sub(issued)),
            committed: used.amount,
            budget: t.budget,
            budget_remaining: t.budget.map(|b| (b - used.amount).max(Decimal::ZERO)),
        })
    }

    /// The member's coupons with their status at `now`, soonest expiry first.
    pub fn coupons(&self, member_id: &MemberId, now: DateTime<Utc>) -> Result<Vec<CouponView>> {
        let st = self.resolve(member_id)?;
        let mut out: Vec<CouponView> = Shared::into_inner(st.coupons)
            .into_values()
            .map(|coupon| CouponView { status: coupon.status(now), coupon })
            .collect();
        out.sort_by(|a, b| a.coupon.expires_at.cmp(&b.coupon.expires_at).then(a.coupon.code.cmp(&b.coupon.code)));
        Ok(out)
    }

    /// What checkout can offer for `cart`: the coupons that apply (best
    /// first) and why the others do not, and the points that may be spent on
    /// what is left after the best coupon.
    pub fn quote(&self, member_id: &MemberId, cart: &Cart, now: DateTime<Utc>) -> Result<Quote> {
        crate::facts::check_amount(cart.amount, "cart.amount")?;
        let cfg = config(&self.program.coupons)?;
        let st = self.resolve(member_id)?;
        let (mut offers, mut not_applicable) = (Vec::new(), Vec::new());
        for c in st.coupons.values().filter(|c| c.status(now) == CouponStatus::Issued) {
            let no = |reason: String| NotApplicable { code: c.code.clone(), template: c.template.clone(), reason };
            let Some(t) = cfg.templates.iter().find(|t| t.id == c.template) else {
                not_applicable.push(no("its template is no longer in the programme".into()));
                continue;
            };
            if now < c.valid_from {
                not_applicable.push(no(format!("valid from {}", c.valid_from)));
                continue;
            }
            match coupon::discount(t, cart) {
                Ok(discount) => offers.push(Offer {
                    code: c.code.clone(),
                    template: t.id.clone(),
                    discount,
                    benefit: t.benefit.clone(),
                    expires_at: c.expires_at,
                }),
                Err(reason) => not_applicable.push(no(reason)),
            }
        }
        coupon::rank(&mut offers);
        let best = offers.first().map(|o| o.code.clone());
        let amount_after_coupon = cart.amount - offers.first().map_or(Decimal::ZERO, |o| o.discount);
        let point_type = cfg
            .checkout
            .point_type
            .clone()
            .or_else(|| self.program.point_types.iter().find(|t| t.spendable).map(|t| t.id.clone()));
        let points = point_type.map(|pt| {
            let available = st.balance(&pt, now).available.max(0);
            let vpp = self.program.value_per_point;
            let max_points = coupon::points_cap(amount_after_coupon, cfg.checkout.max_points_share, vpp, available);
            coupon::PointsOffer { point_type: pt, available, max_points, value: Decimal::from(max_points) * vpp }
        });
        Ok(Quote { coupons: offers, not_applicable, best, amount_after_coupon, points })
    }
}

/// What [`Engine::issue_coupons_to_segment`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchIssue {
    /// `(member, code)` per coupon issued (or found issued by an earlier run of the batch).
    pub issued: Vec<(MemberId, String)>,
    /// Members skipped because of the template's per-member limit.
    pub skipped: u64,
    /// The template's total limit or budget ran out: the remaining members
    /// were not issued one.
    #[serde(default)]
    pub exhausted: bool,
}
