"""Service and feedback records through the Python API: contacts, tickets
(the status table, resolution minutes), reviews with the review bonus, CSAT
and NPS surveys, the rule fields, the triggers and the report as a table.
The rules live in crm-core; this checks the conversions (aware datetimes,
Decimal figures, typed errors naming the field)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Dict

import pytest

import crm

UTC = dt.timezone.utc


def t(day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, minute, tzinfo=UTC)


PROGRAM: Dict[str, Any] = {
    "version": 1,
    "name": "Feedback",
    "timezone": "Asia/Shanghai",
    "currency": "CNY",
    "point_types": [{"id": "reward"}],
    "earn": {
        "rules": [{"id": "base", "point_type": "reward", "points_per_unit": "1"}],
        "bonuses": [{"id": "rv", "action": "review", "point_type": "reward", "points": 10, "max_per_member": 1}],
    },
    "tiers": {"window": {"type": "calendar_year"}, "levels": [{"id": "member"}, {"id": "gold", "entry": {"spend": "500"}}]},
    "outreach": {
        "triggers": [
            {
                "id": "recovery",
                "when": {"type": "low_rating", "max_rating": 2},
                "channels": ["sms"],
                "marketing": False,
            },
            {"id": "ask", "when": {"type": "ticket_closed", "delay_minutes": 30}, "channels": ["app"]},
        ]
    },
}


@pytest.fixture
def engine() -> crm.Engine:
    e = crm.Engine(crm.Program.from_dict(PROGRAM))
    e.create_member("ann", now=t(1), consents={"app": True})
    e.create_member("bob", now=t(1))
    return e


def test_ticket_flow_resolution_and_typed_errors(engine: crm.Engine) -> None:
    opened = engine.open_ticket("ann", "t1", "return", now=t(2, 1), subject="Zip broken", order_id="o-9")
    assert (opened.type, opened.status, opened.resolution_minutes) == ("ticket", "open", None)
    engine.update_ticket("ann", "t1", "in_progress", now=t(2, 2))
    done = engine.update_ticket("ann", "t1", "resolved", now=t(2, 5), at=t(2, 4, 30))
    assert (done.status, done.resolution_minutes) == ("resolved", 210)
    with pytest.raises(crm.ValidationError) as e:
        engine.update_ticket("ann", "t1", "waiting_customer", now=t(2, 6))
    assert e.value.field == "status" and "cannot move from resolved to waiting_customer" in str(e.value)
    with pytest.raises(crm.ValidationError) as e:
        engine.update_ticket("ann", "t1", "done", now=t(2, 6))
    assert e.value.field == "status"
    with pytest.raises(crm.ValidationError) as e:
        engine.update_ticket("ann", "t1", "closed", now=t(2, 6), at=t(2, 4))
    assert e.value.field == "at"
    with pytest.raises(crm.NotFound):
        engine.update_ticket("ann", "nope", "closed", now=t(2, 6))
    engine.update_ticket("ann", "t1", "closed", now=t(2, 6))
    ticket = engine.feedback("ann")["tickets"]["t1"]
    assert ticket["status"] == "closed" and ticket["order_id"] == "o-9"
    assert ticket["resolved_at"] == t(2, 4, 30) and ticket["closed_at"] == t(2, 6)
    assert [(c["from"], c["to"]) for c in ticket["history"]] == [
        ("open", "in_progress"),
        ("in_progress", "resolved"),
        ("resolved", "closed"),
    ]
    # The survey request 30 minutes after closing, with the resolution time.
    due = engine.run_due(t(2, 7))
    assert [(o.trigger, o.occurrence, o.payload["resolution_minutes"]) for o in due.outreach] == [("ask", "t1", 210)]


def test_reviews_surveys_idempotency_and_validation(engine: crm.Engine) -> None:
    first = engine.record_review("ann", "r1", 2, now=t(3), text="Too small", sku="sku-1")
    assert (first.type, first.rating, first.awarded) == ("review_recorded", 2, {"reward": 10})
    again = engine.record_review("ann", "r1", 2, now=t(3), text="Too small", sku="sku-1", idempotency_key="import-1")
    assert again == first
    with pytest.raises(crm.Conflict):
        engine.record_review("ann", "r1", 5, now=t(3), idempotency_key="import-2")
    for rating in (0, 6):
        with pytest.raises(crm.ValidationError) as e:
            engine.record_review("ann", f"bad{rating}", rating, now=t(3))
        assert e.value.field == "rating"
    with pytest.raises(crm.ValidationError) as e:
        engine.record_review("ann", "r2", 3.5, now=t(3))  # type: ignore[arg-type]
    assert e.value.field == "rating"
    assert engine.balance("ann", "reward", at=t(3)).available == 10
    s = engine.record_survey("ann", "s1", "nps", 0, now=t(4), comment="never again")
    assert (s.type, s.kind, s.score) == ("survey_recorded", "nps", 0)
    with pytest.raises(crm.ValidationError) as e:
        engine.record_survey("ann", "s2", "nps", 11, now=t(4))
    assert e.value.field == "score"
    with pytest.raises(crm.ValidationError) as e:
        engine.record_survey("ann", "s3", "ces", 3, now=t(4))
    assert e.value.field == "kind"
    c = engine.record_contact(
        "ann", "c1", channel="chat", topic="sizing", started_at=t(4, 1), ended_at=t(4, 2), now=t(4, 3)
    )
    assert (c.type, c.contact_id) == ("contact_recorded", "c1")
    with pytest.raises(crm.ValidationError) as e:
        engine.record_contact("ann", "c2", channel="chat", topic="x", started_at=t(4, 2), ended_at=t(4, 1), now=t(4, 3))
    assert e.value.field == "ended_at"
    f = engine.feedback("ann")
    assert f["contacts"]["c1"]["started_at"] == t(4, 1)
    assert f["reviews"]["r1"]["text"] == "Too small" and f["surveys"]["s1"]["comment"] == "never again"
    # The low review and the NPS 0 (max_nps unset: CSAT and reviews only) -> one recovery message.
    due = engine.run_due(t(4, 4))
    assert [o.occurrence for o in due.outreach] == ["review:r1"]


def test_rule_fields_over_members(engine: crm.Engine) -> None:
    engine.record_survey("ann", "a1", "csat", 2, now=t(5))
    engine.record_survey("ann", "a2", "csat", 3, now=t(6))
    engine.record_survey("bob", "b1", "csat", 5, now=t(6))
    engine.record_survey("bob", "b2", "nps", 4, now=t(6))
    engine.open_ticket("bob", "tb", "complaint", now=t(6))
    assert engine.segment("csat(90d) < 3", at=t(7)) == ["ann"]  # (2 + 3) / 2 = 2.5
    assert engine.segment("open_tickets > 0", at=t(7)) == ["bob"]
    assert engine.segment("nps_last <= 6", at=t(7)) == ["bob"]
    assert engine.segment(crm.Rule.from_json({"field": "csat", "window": "90d", "op": "==", "value": "2.5"}), at=t(7)) == [
        "ann"
    ]
    assert engine.matches("bob", "open_tickets == 0", at=t(5))
    with pytest.raises(crm.RuleError):
        engine.segment('csat(90d) < "bad"', at=t(7))


def test_report_rows_are_a_table(engine: crm.Engine) -> None:
    pd = pytest.importorskip("pandas")
    engine.record_order(id="o1", member_id="ann", amount="600", placed_at=t(2), now=t(2))
    engine.record_survey("ann", "a1", "csat", 4, now=t(5))
    engine.record_survey("ann", "a2", "nps", 10, now=t(5))
    engine.record_survey("bob", "b1", "csat", 1, now=t(5))
    engine.record_survey("bob", "b2", "nps", 3, now=t(5))
    engine.record_review("bob", "rb", 3, now=t(5))
    engine.open_ticket("bob", "tb", "repair", now=t(5, 1))
    engine.update_ticket("bob", "tb", "closed", now=t(5, 3))
    report = engine.feedback_report(at=t(9), segments={"unhappy": "csat(90d) < 3"})
    assert report["at"] == t(9)
    overall = report["overall"]
    assert (overall["csat_mean"], overall["csat_satisfied_pct"], overall["nps"]) == (
        Decimal("2.50"),
        Decimal("50.0"),
        Decimal("0.0"),
    )
    tiers = pd.DataFrame(report["by_tier"]).set_index("group")
    assert list(tiers.index) == ["member", "gold"]
    assert tiers.loc["gold", "csat_mean"] == Decimal("4.00") and tiers.loc["gold", "nps"] == Decimal("100.0")
    assert tiers.loc["member", "rating_mean"] == Decimal("3.00")
    assert [r["group"] for r in report["by_segment"]] == ["unhappy"] and report["by_segment"][0]["members"] == 1
    assert report["tickets_overall"]["median_minutes"] == Decimal("120.0")
    assert report["tickets_by_kind"][0]["kind"] == "repair" and report["tickets_by_kind"][0]["p90_minutes"] == 120
    windowed = engine.feedback_report(at=t(9), from_=t(5, 2))
    assert windowed["overall"]["csat_responses"] == 0 and windowed["tickets_overall"]["resolved"] == 1
    with pytest.raises(crm.ValidationError) as e:
        engine.feedback_report(at=t(9), from_=t(9))
    assert e.value.field == "from"
    with pytest.raises(crm.RuleError):
        engine.feedback_report(at=t(9), segments={"x": "csat(90d) <"})


def test_erasure_keeps_scores_and_drops_text(engine: crm.Engine) -> None:
    engine.record_review("bob", "rb", 1, now=t(3), text="private words")
    engine.record_survey("bob", "sb", "csat", 2, now=t(3), comment="call me on 139...")
    engine.open_ticket("bob", "tb", "complaint", now=t(3), subject="about my address")
    engine.erase("bob", now=t(4))
    f = engine.feedback("bob")
    assert f["reviews"]["rb"]["rating"] == 1 and "text" not in f["reviews"]["rb"]
    assert f["surveys"]["sb"]["score"] == 2 and "comment" not in f["surveys"]["sb"]
    assert "subject" not in f["tickets"]["tb"]
    assert engine.feedback_report(at=t(5))["overall"]["csat_responses"] == 1
