"""Tiers, lifecycle stages and triggered outreach through the Python API.

One programme (UTC, so every instant below is easy to check by hand):

* tiers over the calendar year: member / silver (spend 1000) / gold (spend
  5000, retain 3000);
* lifecycle with the default thresholds (new 30 days, at risk 60, dormant 120);
* a birthday trigger on wechat then sms at 22:00, inside quiet hours
  21:00-09:00, so it is deferred to 09:00 the next morning.

alice (birthday 15 March, sms consent only) orders 600 on 1 Feb and 500 on
10 Feb 2024 (the order that crosses 1000 upgrades her to silver); bob
(birthday 15 March too, no consent) never orders.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Dict

import pytest

import crm

UTC = dt.timezone.utc


def t(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


PROGRAM: Dict[str, Any] = {
    "version": 1,
    "name": "Journey",
    "timezone": "UTC",
    "currency": "CNY",
    "point_types": [{"id": "reward", "expiry": {"type": "none"}}],
    "earn": {
        "rules": [{"id": "base", "point_type": "reward", "points_per_unit": "1", "rounding": "floor"}],
        "bonuses": [],
    },
    "tiers": {
        "window": {"type": "calendar_year"},
        "levels": [
            {"id": "member", "name": "Member"},
            {"id": "silver", "name": "Silver", "entry": {"spend": "1000"}, "benefits": {"discount_rate": "0.05"}},
            {
                "id": "gold",
                "name": "Gold",
                "entry": {"spend": "5000"},
                "retain": {"spend": "3000"},
                "benefits": {"points_multiplier": "1.5", "free_shipping": True, "custom": {"lounge": True}},
            },
        ],
    },
    "lifecycle": {},
    "outreach": {
        "triggers": [
            {
                "id": "birthday",
                "when": {"type": "birthday"},
                "channels": ["wechat", "sms"],
                "payload": {"template": "bday-1"},
            }
        ],
        "quiet_hours": {"start": "21:00:00", "end": "09:00:00"},
        "send_hour": 22,
    },
}

JOINED = t(2024, 1, 5, 10)
O1 = t(2024, 2, 1, 12)
O2 = t(2024, 2, 10, 12)
BIRTHDAY_RUN = t(2024, 3, 16, 10)
AT_RISK = t(2024, 4, 11, 12)  # 61 days after the last order


@pytest.fixture()
def engine() -> crm.Engine:
    e = crm.Engine(crm.Program.from_dict(PROGRAM))
    e.create_member(
        "alice",
        now=JOINED,
        profile={"birthday": dt.date(1990, 3, 15)},
        consents={"sms": True, "wechat": False},
    )
    e.create_member("bob", now=JOINED, profile={"birthday": dt.date(1985, 3, 15)})
    e.record_order(id="o1", member_id="alice", amount=Decimal("600"), placed_at=O1, now=O1)
    e.record_order(id="o2", member_id="alice", amount=Decimal("500"), placed_at=O2, now=O2)
    return e


# ----- tiers -----------------------------------------------------------------------------


def test_order_crossing_the_threshold_upgrades(engine: crm.Engine) -> None:
    before = engine.tier("alice", at=t(2024, 2, 5))
    assert before.tier == "member" and before.name == "Member"
    assert before.next is not None and before.next.tier == "silver"
    assert before.next.missing.spend == Decimal("400")
    assert before.retain is None

    view = engine.tier("alice", at=t(2024, 2, 10, 13))
    assert isinstance(view, crm.TierView)
    assert (view.tier, view.name, view.since) == ("silver", "Silver", O2)
    assert view.review_at == t(2025, 1, 1)
    assert view.grace_until is None and view.manual is None
    assert view.benefits.discount_rate == Decimal("0.05")
    assert isinstance(view.benefits.discount_rate, Decimal)
    assert view.benefits.points_multiplier is None and view.benefits.free_shipping is False
    nxt = view.next
    assert nxt is not None and nxt.tier == "gold"
    assert nxt.metric.spend == Decimal("1100") and isinstance(nxt.metric.spend, Decimal)
    assert nxt.metric.orders == 2
    assert nxt.missing.spend == Decimal("3900") and nxt.missing.orders is None and not nxt.missing.met
    assert nxt.message == "spend 3900.00 more to reach Gold"
    retain = view.retain
    assert retain is not None and retain.tier == "silver" and retain.missing.met
    assert retain.by == t(2025, 1, 1)
    assert retain.message == "Silver is kept at the review on 31 Dec 2024"
    d = view.to_dict()
    assert d["tier"] == "silver" and d["since"] == "2024-02-10T12:00:00Z"
    assert d["next"]["missing"] == {"spend": "3900"}
    assert repr(view).startswith("TierView(tier='silver', name='Silver', since=datetime.datetime(2024, 2, 10, 12, 0")

    history = engine.tier_history("alice")
    assert [(c.from_, c.to, c.reason) for c in history] == [(None, "member", "joined"), ("member", "silver", "upgrade")]
    assert history[1].at == O2 and history[1].note is None
    assert history[1].to_dict() == {"at": "2024-02-10T12:00:00Z", "from": "member", "to": "silver", "reason": "upgrade"}
    assert "TierChange(" in repr(history[1])


def test_tier_distribution(engine: crm.Engine) -> None:
    assert engine.tier_distribution(at=t(2024, 2, 5)) == {"member": 2, "silver": 0, "gold": 0}
    dist = engine.tier_distribution(at=t(2024, 2, 11))
    assert dist == {"member": 1, "silver": 1, "gold": 0}
    assert list(dist) == ["member", "silver", "gold"]  # ladder order
    assert engine.tier_distribution(at=t(2023, 1, 1)) == {"member": 0, "silver": 0, "gold": 0}


def test_assign_tier_and_its_end(engine: crm.Engine) -> None:
    now = t(2024, 4, 12)
    out = engine.assign_tier("alice", "gold", until=t(2024, 6, 30), reason="VIP", actor="ops", now=now)
    assert out.type == "tier" and out.member_id == "alice" and out.tier == "gold"
    assert out.until == t(2024, 6, 30)
    assert out.to_dict() == {"type": "tier", "member_id": "alice", "tier": "gold", "until": "2024-06-30T00:00:00Z"}
    # The default key (content and `now`) makes a repeat return the first outcome.
    again = engine.assign_tier("alice", "gold", until=t(2024, 6, 30), reason="VIP", actor="ops", now=now)
    assert again == out
    assert len(engine.tier_history("alice")) == 3

    view = engine.tier("alice", at=now)
    assert view.tier == "gold" and view.benefits.points_multiplier == Decimal("1.5")
    assert view.benefits.free_shipping is True and view.benefits.custom == {"lounge": True}
    assert view.manual is not None
    assert (view.manual.until, view.manual.reason, view.manual.actor) == (t(2024, 6, 30), "VIP", "ops")
    last = engine.tier_history("alice")[-1]
    assert (last.from_, last.to, last.reason, last.note) == ("silver", "gold", "manual", "VIP")
    assert engine.tier_distribution(at=now) == {"member": 1, "silver": 0, "gold": 1}

    # At its end the metric decides again (1100 spent: silver); the run also
    # records her stage changes since February (active, at risk, dormant).
    due = engine.run_due(t(2024, 7, 1))
    assert (due.tier_changes, due.stage_changes) == (1, 3)
    ended = engine.tier_history("alice")[-1]
    assert (ended.at, ended.from_, ended.to, ended.reason) == (t(2024, 6, 30), "gold", "silver", "manual_expired")
    assert engine.tier("alice", at=t(2024, 7, 1)).tier == "silver"


def test_assign_tier_bad_input(engine: crm.Engine) -> None:
    now = t(2024, 4, 12)
    with pytest.raises(crm.ValidationError) as e:
        engine.assign_tier("alice", "platinum", until=t(2024, 6, 30), reason="VIP", actor="ops", now=now)
    assert e.value.field == "tier" and e.value.code == "validation_error"
    with pytest.raises(crm.ValidationError) as e:
        engine.assign_tier("alice", "gold", until=t(2024, 4, 1), reason="VIP", actor="ops", now=now)
    assert e.value.field == "until"
    with pytest.raises(crm.ValidationError) as e:
        engine.assign_tier("alice", "gold", until=dt.datetime(2024, 6, 30), reason="VIP", actor="ops", now=now)
    assert e.value.field == "until"
    with pytest.raises(crm.ValidationError) as e:
        engine.assign_tier("alice", "gold", until=t(2024, 6, 30), reason="VIP", actor="ops", now=dt.datetime(2024, 4, 12))
    assert e.value.field == "now"
    with pytest.raises(crm.ValidationError) as e:
        engine.assign_tier("alice", "gold", until=t(2024, 6, 30), reason=" ", actor="ops", now=now)
    assert e.value.field == "reason"
    with pytest.raises(crm.ValidationError) as e:
        engine.assign_tier("alice", 3, until=t(2024, 6, 30), reason="VIP", actor="ops", now=now)  # type: ignore[arg-type]
    assert e.value.field == "tier"
    with pytest.raises(crm.NotFound):
        engine.assign_tier("nobody", "gold", until=t(2024, 6, 30), reason="VIP", actor="ops", now=now)
    # Nothing changed.
    assert engine.tier("alice", at=now).tier == "silver"


def test_programme_without_tiers() -> None:
    e = crm.Engine(crm.Program.from_dict({k: v for k, v in PROGRAM.items() if k not in ("tiers", "outreach")}))
    e.create_member("carol", now=JOINED)
    with pytest.raises(crm.ValidationError) as err:
        e.tier("carol", at=JOINED)
    assert err.value.field == "tiers"
    with pytest.raises(crm.ValidationError) as err:
        e.tier_distribution(at=JOINED)
    assert err.value.field == "tiers"
    with pytest.raises(crm.ValidationError) as err:
        e.assign_tier("carol", "gold", until=t(2024, 6, 30), reason="VIP", actor="ops", now=JOINED)
    assert err.value.field == "tier"
    assert e.tier_history("carol") == []


# ----- lifecycle stages ------------------------------------------------------------------------


def test_stage_after_61_days_is_at_risk(engine: crm.Engine) -> None:
    assert engine.stage("alice", at=t(2024, 2, 5)).stage == "new"
    assert engine.stage("bob", at=AT_RISK).stage == "prospect"
    view = engine.stage("alice", at=AT_RISK)
    assert isinstance(view, crm.StageView)
    assert view.stage == "at_risk"
    assert view.days_since_last_order == 61
    assert view.last_order_at == O2 and view.orders == 2
    # Not recorded yet (run_due records the time-driven transitions).
    assert view.since is None
    assert view.to_dict()["stage"] == "at_risk"
    assert "StageView(stage='at_risk'" in repr(view)


def test_stage_history_distribution_and_transitions(engine: crm.Engine) -> None:
    engine.run_due(BIRTHDAY_RUN)
    due = engine.run_due(AT_RISK)
    assert due.stage_changes == 1 and due.tier_changes == 0
    history = engine.stage_history("alice")
    assert [(c.from_, c.to) for c in history] == [
        (None, "prospect"),
        ("prospect", "new"),
        ("new", "active"),
        ("active", "at_risk"),
    ]
    assert [c.at for c in history] == [JOINED, O1, t(2024, 3, 2, 12), t(2024, 4, 10, 12)]
    assert history[-1].reason == "no order for 60 days"
    assert history[-1].to_dict() == {
        "at": "2024-04-10T12:00:00Z",
        "from": "active",
        "to": "at_risk",
        "reason": "no order for 60 days",
    }
    assert engine.stage("alice", at=AT_RISK).since == t(2024, 4, 10, 12)

    dist = engine.stage_distribution(at=AT_RISK)
    assert dist == {"prospect": 1, "new": 0, "active": 0, "reactivated": 0, "at_risk": 1, "dormant": 0, "churned": 0}
    assert list(dist) == ["prospect", "new", "active", "reactivated", "at_risk", "dormant", "churned"]

    m = engine.stage_transitions(from_=t(2024, 2, 5), to=AT_RISK)
    assert isinstance(m, crm.TransitionMatrix)
    assert m.from_ == t(2024, 2, 5) and m.to == AT_RISK
    assert m.counts == {"new": {"at_risk": 1}, "prospect": {"prospect": 1}}
    assert m.count("new", "at_risk") == 1 and m.count("active", "churned") == 0
    assert m.to_dict() == {
        "from": "2024-02-05T00:00:00Z",
        "to": "2024-04-11T12:00:00Z",
        "counts": {"new": {"at_risk": 1}, "prospect": {"prospect": 1}},
    }
    with pytest.raises(crm.ValidationError) as e:
        engine.stage_transitions(from_=AT_RISK, to=t(2024, 2, 5))
    assert e.value.field == "to"


# ----- outreach ---------------------------------------------------------------------------------


def test_a_changed_programme_takes_effect_at_the_next_run(tmp_path) -> None:
    """The store does not keep the programme: reopened under one with stages and
    a birthday trigger, the first run derives every wake-up again, so alice is
    greeted and moves on to active (under the old programme she was next due at
    her tier review, on 1 January 2025)."""
    path = tmp_path / "crm.db"
    quiet = crm.Program.from_dict({k: v for k, v in PROGRAM.items() if k not in ("outreach", "lifecycle")})
    before = crm.Engine.open_sqlite(quiet, path, member_cache=0)
    before.create_member("alice", now=JOINED, profile={"birthday": dt.date(1990, 3, 15)}, consents={"sms": True})
    before.record_order(id="o1", member_id="alice", amount=Decimal("600"), placed_at=O1, now=O1)
    assert before.reschedule(O1) == 0  # unchanged: nothing to derive again
    del before
    after = crm.Engine.open_sqlite(crm.Program.from_dict(PROGRAM), path, member_cache=0)
    due = after.run_due(BIRTHDAY_RUN)
    assert [(i.member_id, i.trigger, i.channel) for i in due.outreach] == [("alice", "birthday", "sms")]
    assert due.stage_changes == 1  # active since 2 March
    assert after.stage("alice", at=BIRTHDAY_RUN).stage == "active"
    assert after.reschedule(BIRTHDAY_RUN) == 0  # recorded: derived once


def test_with_program_keeps_the_store_and_checks_its_argument(tmp_path) -> None:
    """``with_program`` is the same store (in memory too) under another
    programme: alice's points and order are there, the new stages and birthday
    trigger apply at its first run; the old engine still runs the old one. A
    programme that is not a ``crm.Program`` is a ValidationError on ``program``."""
    quiet = crm.Program.from_dict({k: v for k, v in PROGRAM.items() if k not in ("outreach", "lifecycle")})
    for before in (crm.Engine(quiet), crm.Engine(quiet, tmp_path / "crm.db")):
        before.create_member("alice", now=JOINED, profile={"birthday": dt.date(1990, 3, 15)}, consents={"sms": True})
        before.record_order(id="o1", member_id="alice", amount=Decimal("600"), placed_at=O1, now=O1)
        after = before.with_program(crm.Program.from_dict(PROGRAM))
        assert isinstance(after, crm.Engine) and after.path == before.path
        assert after.program.to_dict()["outreach"] and "outreach" not in before.program.to_dict()
        assert after.balance("alice", "reward", at=O1).available == 600
        due = after.run_due(BIRTHDAY_RUN)
        assert [(i.member_id, i.trigger) for i in due.outreach] == [("alice", "birthday")]
        assert after.stage("alice", at=BIRTHDAY_RUN).stage == "active"
        with pytest.raises(crm.ValidationError) as err:
            before.with_program(PROGRAM)  # a dict, not a crm.Program
        assert err.value.field == "program"


def test_run_due_emits_birthday_on_the_consented_channel(engine: crm.Engine) -> None:
    due = engine.run_due(BIRTHDAY_RUN)
    assert due.type == "due"
    assert due.outreach_count == 1 and due.suppressed == 1  # bob has no consent
    assert due.stage_changes == 1  # alice: new -> active on 2 March
    assert due.tier_changes == 0
    [item] = due.outreach
    assert isinstance(item, crm.OutreachItem)
    assert item.id == "alice:birthday:2024"
    assert (item.member_id, item.trigger, item.occurrence, item.channel) == ("alice", "birthday", "2024", "sms")
    # 22:00 on the birthday is in quiet hours: deferred to 09:00 the next day.
    assert item.due_at == t(2024, 3, 16, 9)
    assert item.payload == {"birthday": "2024-03-15", "template": "bday-1"}
    assert item.to_dict()["due_at"] == "2024-03-16T09:00:00Z"
    assert due.to_dict()["outreach"] == [item.to_dict()]
    assert "OutreachItem(id='alice:birthday:2024'" in repr(item)
    assert "OutreachItem(" in repr(due)

    # The same run again hands nothing out; the count stays.
    again = engine.run_due(BIRTHDAY_RUN)
    assert again.outreach == []
    assert again.outreach_count == 1 and again.suppressed == 1
    # A host that crashed before sending reads the run's items again.
    assert [i.to_dict() for i in engine.outreach_of_run(now=BIRTHDAY_RUN)] == [item.to_dict()]
    # A later run does not send the same birthday twice.
    later = engine.run_due(t(2024, 3, 17, 10))
    assert later.outreach == [] and later.outreach_count == 0


def test_record_engagement(engine: crm.Engine) -> None:
    now = t(2024, 4, 1)
    out = engine.record_engagement("alice", "add_to_cart", now=now, sku="sku-1", reference="cart-9")
    assert out.type == "member" and out.member_id == "alice"
    engagements = engine.member("alice").to_dict()["engagements"]
    assert engagements == [
        {"at": "2024-04-01T00:00:00Z", "kind": "add_to_cart", "sku": "sku-1", "reference": "cart-9"}
    ]
    engine.record_engagement("alice", "browse", now=now, at=t(2024, 3, 31, 8))
    assert engine.member("alice").to_dict()["engagements"][0]["at"] == "2024-03-31T08:00:00Z"

    with pytest.raises(crm.ValidationError) as e:
        engine.record_engagement("alice", "", now=now)
    assert e.value.field == "kind"
    with pytest.raises(crm.ValidationError) as e:
        engine.record_engagement("alice", "browse", now=now, at=dt.datetime(2024, 3, 31))
    assert e.value.field == "at"
    with pytest.raises(crm.ValidationError) as e:
        engine.record_engagement("alice", "browse", now=dt.datetime(2024, 4, 1))
    assert e.value.field == "now"


def test_queries_reject_naive_datetimes(engine: crm.Engine) -> None:
    naive = dt.datetime(2024, 4, 1)
    for call in (
        lambda: engine.tier("alice", at=naive),
        lambda: engine.tier_distribution(at=naive),
        lambda: engine.stage("alice", at=naive),
        lambda: engine.stage_distribution(at=naive),
        lambda: engine.run_due(naive),
    ):
        with pytest.raises(crm.ValidationError) as e:
            call()
        assert e.value.field in ("at", "now")
        assert "timezone-aware" in str(e.value)
    with pytest.raises(crm.ValidationError) as e:
        engine.stage_transitions(from_=naive, to=AT_RISK)
    assert e.value.field == "from_"
    with pytest.raises(crm.ValidationError) as e:
        engine.stage_transitions(from_=AT_RISK, to=naive)
    assert e.value.field == "to"
    with pytest.raises(crm.NotFound):
        engine.stage("nobody", at=AT_RISK)
    with pytest.raises(crm.NotFound):
        engine.tier_history("nobody")
