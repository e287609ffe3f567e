//! Coupons in the engine: issue (to one member, to a segment, or for
//! points), redeem on an order, return on refund, revoke; the member's
//! coupons and the checkout quote. The rules are in [`crate::coupon`].

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{check_ref, Engine, Tx};
use crate::command::{Command, Outcome};
use crate::coupon::{
    self, Cart, Coupon, CouponConfig, CouponStatus, CouponTemplate, CouponView, NotApplicable, Offer, Quote,
};
use crate::error::{CrmError, Result};
use crate::facts::OrderStatus;
use crate::ledger;
use crate::member::MemberId;
use crate::segment::Rule;
use crate::state::Event;
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
        let st = self.state(&id);
        if st.coupons.contains_key(&code) {
            return Err(CrmError::conflict(format!("coupon {code} was already issued")));
        }
        if let Some(limit) = t.per_member_limit {
            let held = st.coupons.values().filter(|c| c.template == t.id).count();
            if held >= limit as usize {
                return Err(CrmError::invalid(
                    "template",
                    format!("member {id} already has {held} coupon(s) of {:?} (limit {limit})", t.id),
                ));
            }
        }
        let now = self.now;
        let (valid_from, expires_at) = t.validity.window(self.program.timezone, now);
        if expires_at <= now {
            return Err(CrmError::invalid("template", format!("coupons of {:?} are no longer valid", t.id)));
        }
        let (mut points, mut redemption_id) = (0, None);
        if for_points {
            let price = t
                .points_price
                .clone()
                .ok_or_else(|| CrmError::invalid("for_points", format!("{:?} has no points price", t.id)))?;
            let available = ledger::balance(&st.lots, &price.point_type, st.debt(&price.point_type), now).available;
            if available < price.points {
                return Err(CrmError::InsufficientPoints { requested: price.points, available: available.max(0) });
            }
            let (allocations, _) = ledger::allocate(&st.lots, &price.point_type, price.points, now);
            let rid = key.to_string();
            self.emit(
                &id,
                Event::PointsRedeemed {
                    at: now,
                    redemption_id: rid.clone(),
                    point_type: price.point_type.clone(),
                    points: price.points,
                    allocations,
                },
            );
            self.extend_inactivity(&id, &price.point_type, now);
            points = price.points;
            redemption_id = Some(rid);
        }
        let c = Coupon {
            code: code.clone(),
            template: t.id.clone(),
            issued_at: now,
            valid_from,
            expires_at,
            redemption_id: redemption_id.clone(),
            reason: reason.clone(),
            redeemed: None,
            revoked: None,
            returned: 0,
        };
        self.emit(&id, Event::CouponIssued { at: now, coupon: Box::new(c) });
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
        self.emit(&id, Event::CouponRedeemed { at: now, code: code.clone(), order_id: order_id.into(), discount });
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
                    Event::RedemptionReversed {
                        at: now,
                        redemption_id: rid.clone(),
                        point_type: r.point_type.clone(),
                        points: r.points,
                        allocations: r.allocations,
                    },
                );
            }
        }
        self.emit(&id, Event::CouponRevoked { at: now, code: code.clone(), reason: reason.into() });
        Ok((Outcome::CouponRevoked { member_id: id.clone(), code, points }, Some(id)))
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
        let gone =
            o.order.status == OrderStatus::Cancelled || (o.refunded >= o.order.amount && !o.order.amount.is_zero());
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
                Err(CrmError::Validation { field, .. }) if field == "template" => out.skipped += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The member's coupons with their status at `now`, soonest expiry first.
    pub fn coupons(&self, member_id: &MemberId, now: DateTime<Utc>) -> Result<Vec<CouponView>> {
        let st = self.resolve(member_id)?;
        let mut out: Vec<CouponView> =
            st.coupons.into_values().map(|coupon| CouponView { status: coupon.status(now), coupon }).collect();
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
            let available = ledger::balance(&st.lots, &pt, st.debt(&pt), now).available.max(0);
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
}
