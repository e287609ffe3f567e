"""Runs the shared JSON scenarios (``scenarios/*.json``) through the Python API.

Mirrors the Rust runner (``crm-core/tests/it/scenarios.rs``): each command step
is mapped onto the *native* Python method (``record_order``, ``redeem``,
``create_member``, ...) with the step's ``key`` as ``idempotency_key``, its
JSON arguments converted to Python values (``Decimal`` money, aware
``datetime``s, ``date`` birthdays); each query step calls the native query.
Results are compared in the core's JSON form (``to_dict()``) with the same
subset-match semantics as the Rust runner, decimal-string equality included.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import crm

REPO = Path(__file__).resolve().parents[2]
SCENARIO_DIR = REPO / "scenarios"


def scenario_files() -> List[Path]:
    return sorted(SCENARIO_DIR.glob("*.json"))


# ----- JSON -> Python values -------------------------------------------------------


def ts(text: Optional[str]) -> Optional[dt.datetime]:
    """RFC 3339 -> aware datetime (``fromisoformat`` of Python 3.9 has no ``Z``)."""
    if text is None:
        return None
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    assert value.tzinfo is not None, f"scenario time without offset: {text}"
    return value


def money(text: Any) -> Any:
    return Decimal(text) if isinstance(text, str) else text


def profile_values(p: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if p is None:
        return None
    out = dict(p)
    if isinstance(out.get("birthday"), str):
        out["birthday"] = dt.date.fromisoformat(out["birthday"])
    if isinstance(out.get("joined_at"), str):
        out["joined_at"] = ts(out["joined_at"])
    return out


def campaign_values(c: Dict[str, Any]) -> Dict[str, Any]:
    """A scenario campaign with Python values: ``Decimal`` shares and money, aware datetimes."""
    out = dict(c, holdout=Decimal(c["holdout"]), starts_at=ts(c["starts_at"]), ends_at=ts(c["ends_at"]))
    if "cost" in c:
        out["cost"] = {k: money(v) if k in ("coupon_value", "value_per_point") else v for k, v in c["cost"].items()}
    return out


# ----- commands ---------------------------------------------------------------------

Command = Dict[str, Any]


def _create_member(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.create_member(
        c["member_id"],
        now=now,
        profile=profile_values(c.get("profile")),
        identities=[(i["channel"], i["external_id"]) for i in c.get("identities", [])],
        tags=c.get("tags"),
        consents=c.get("consents"),
        idempotency_key=key,
    )


def _update_profile(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.update_profile(c["member_id"], profile_values(c["patch"]), now=now, idempotency_key=key)


def _link_identity(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    i = c["identity"]
    return e.link_identity(c["member_id"], i["channel"], i["external_id"], now=now, idempotency_key=key)


def _unlink_identity(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    i = c["identity"]
    return e.unlink_identity(c["member_id"], i["channel"], i["external_id"], now=now, idempotency_key=key)


def _add_tag(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.add_tag(c["member_id"], c["tag"], now=now, idempotency_key=key)


def _remove_tag(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.remove_tag(c["member_id"], c["tag"], now=now, idempotency_key=key)


def _set_consent(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.set_consent(c["member_id"], c["channel"], c["granted"], now=now, idempotency_key=key)


def _record_order(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    o = dict(c["order"])
    fields: Dict[str, Any] = {
        "id": o.pop("id"),
        "member_id": o.pop("member_id"),
        "amount": money(o.pop("amount")),
        "placed_at": ts(o.pop("placed_at")),
    }
    if "paid_at" in o:
        fields["paid_at"] = ts(o.pop("paid_at"))
    if "items" in o:
        fields["items"] = [dict(i, price=money(i["price"])) for i in o.pop("items")]
    for name in ("status", "channel", "store", "currency"):
        if name in o:
            fields[name] = o.pop(name)
    assert not o, f"record_order: unmapped order fields {sorted(o)}"
    return e.record_order(now=now, idempotency_key=key, **fields)


def _set_order_status(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.set_order_status(c["order_id"], c["status"], now=now, at=ts(c.get("at")), idempotency_key=key)


def _record_refund(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    r = c["refund"]
    scope = r["scope"]
    kwargs: Dict[str, Any] = {}
    if scope["type"] == "amount":
        kwargs["amount"] = money(scope["amount"])
    elif scope["type"] == "items":
        kwargs["items"] = [(i["sku"], i["qty"]) for i in scope["items"]]
    else:
        assert scope["type"] == "full", scope
    return e.record_refund(r["id"], r["order_id"], at=ts(r["at"]), now=now, idempotency_key=key, **kwargs)


def _record_action(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.record_action(c["member_id"], c["action"], c["reference"], now=now, idempotency_key=key)


def _redeem(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.redeem(
        c["member_id"], c["points"], point_type=c["point_type"], now=now, idempotency_key=key, reason=c.get("reason")
    )


def _reverse_redemption(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.reverse_redemption(c["member_id"], c["redemption_id"], now=now, idempotency_key=key)


def _adjust(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.adjust(
        c["member_id"], c["point_type"], c["delta"], reason=c["reason"], actor=c["actor"], now=now, idempotency_key=key
    )


def _merge(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.merge(c["survivor"], c["merged"], now=now, idempotency_key=key)


def _erase(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.erase(c["member_id"], now=now, idempotency_key=key)


def _run_due(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.run_due(now, idempotency_key=key)


def _assign_tier(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.assign_tier(
        c["member_id"],
        c["tier"],
        until=ts(c["until"]),
        reason=c["reason"],
        actor=c["actor"],
        now=now,
        idempotency_key=key,
    )


def _record_engagement(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.record_engagement(
        c["member_id"],
        c["kind"],
        now=now,
        at=ts(c.get("at")),
        sku=c.get("sku"),
        reference=c.get("reference"),
        idempotency_key=key,
    )


def _issue_coupon(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    # The scenario fixes the code; the native `issue_coupon` draws a random one.
    return e.execute(key, c, now)


def _redeem_coupon(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.redeem_coupon(c["member_id"], c["code"], c["order_id"], now=now, idempotency_key=key)


def _revoke_coupon(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.revoke_coupon(c["member_id"], c["code"], reason=c["reason"], now=now, idempotency_key=key)


def _record_contact(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.record_contact(
        c["member_id"],
        c["contact_id"],
        channel=c["channel"],
        topic=c["topic"],
        started_at=ts(c["started_at"]),
        ended_at=ts(c.get("ended_at")),
        now=now,
        idempotency_key=key,
    )


def _open_ticket(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.open_ticket(
        c["member_id"],
        c["ticket_id"],
        c["kind"],
        now=now,
        at=ts(c.get("at")),
        order_id=c.get("order_id"),
        subject=c.get("subject"),
        idempotency_key=key,
    )


def _update_ticket(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.update_ticket(
        c["member_id"], c["ticket_id"], c["status"], now=now, at=ts(c.get("at")), idempotency_key=key
    )


def _record_review(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.record_review(
        c["member_id"],
        c["review_id"],
        c["rating"],
        now=now,
        text=c.get("text"),
        sku=c.get("sku"),
        order_id=c.get("order_id"),
        at=ts(c.get("at")),
        idempotency_key=key,
    )


def _record_survey(e: crm.Engine, c: Command, key: str, now: dt.datetime) -> crm.Outcome:
    return e.record_survey(
        c["member_id"],
        c["survey_id"],
        c["kind"],
        c["score"],
        now=now,
        at=ts(c.get("at")),
        ticket_id=c.get("ticket_id"),
        comment=c.get("comment"),
        idempotency_key=key,
    )


COMMANDS: Dict[str, Callable[[crm.Engine, Command, str, dt.datetime], crm.Outcome]] = {
    "create_member": _create_member,
    "update_profile": _update_profile,
    "link_identity": _link_identity,
    "unlink_identity": _unlink_identity,
    "add_tag": _add_tag,
    "remove_tag": _remove_tag,
    "set_consent": _set_consent,
    "record_order": _record_order,
    "set_order_status": _set_order_status,
    "record_refund": _record_refund,
    "record_action": _record_action,
    "redeem": _redeem,
    "reverse_redemption": _reverse_redemption,
    "adjust": _adjust,
    "merge": _merge,
    "erase": _erase,
    "run_due": _run_due,
    "assign_tier": _assign_tier,
    "record_engagement": _record_engagement,
    "issue_coupon": _issue_coupon,
    "redeem_coupon": _redeem_coupon,
    "revoke_coupon": _revoke_coupon,
    "record_contact": _record_contact,
    "open_ticket": _open_ticket,
    "update_ticket": _update_ticket,
    "record_review": _record_review,
    "record_survey": _record_survey,
}


# ----- queries ------------------------------------------------------------------------


def run_query(e: crm.Engine, q: Dict[str, Any], now: dt.datetime) -> Any:
    kind = q["type"]
    if kind == "balance":
        at = ts(q["at"]) if "at" in q else now
        return e.balance(q["member_id"], q["point_type"], at=at).to_dict()
    if kind == "lots":
        lot_at = ts(q["at"]) if "at" in q else None
        return [lot.to_dict() for lot in e.lots(q["member_id"], at=lot_at)]
    if kind == "statement":
        page = e.statement(q["member_id"], q["point_type"], offset=q.get("offset", 0), limit=q.get("limit", 100))
        return page.to_dict()
    if kind == "expiring":
        return e.expiring(q["member_id"], q["point_type"], now=now, days=q.get("days", 30)).to_dict()
    if kind == "liability":
        return e.liability(at=now).to_dict()
    if kind == "member":
        return e.member(q["member_id"]).to_dict()
    if kind == "find_by_identity":
        return e.find_by_identity(q["channel"], q["external_id"])
    # Tiers and lifecycle stages: `at` defaults to the step's `now`.
    at = ts(q["at"]) if "at" in q else now
    if kind == "tier":
        return e.tier(q["member_id"], at=at).to_dict()
    if kind == "tier_history":
        return [c.to_dict() for c in e.tier_history(q["member_id"])]
    if kind == "tier_distribution":
        return dict(e.tier_distribution(at=at))
    if kind == "stage":
        return e.stage(q["member_id"], at=at).to_dict()
    if kind == "stage_history":
        return [c.to_dict() for c in e.stage_history(q["member_id"])]
    if kind == "stage_distribution":
        return dict(e.stage_distribution(at=at))
    if kind == "stage_transitions":
        return e.stage_transitions(from_=ts(q["from"]), to=ts(q["to"])).to_dict()
    if kind == "report":
        return _plain(e.report(at=at))
    if kind == "segment":
        return e.segment(q["rule"], at=at)
    if kind == "matches":
        return e.matches(q["member_id"], q["rule"], at=at)
    if kind == "refresh_segment":
        return _plain(e.refresh_segment(q["segment"], at=at))
    if kind == "reschedule":
        return e.reschedule(now)
    if kind == "campaign_members":
        return e.campaign_members(campaign_values(q["campaign"]))
    if kind == "campaign_report":
        return e.campaign_report(campaign_values(q["campaign"]), at=at).to_dict()
    if kind == "coupons":
        return _plain(e.coupons(q["member_id"], now=at))
    if kind == "quote":
        return _plain(e.quote(q["member_id"], q["cart"], now=at))
    if kind == "coupon_usage":
        return _plain(e.coupon_usage(q["template"]))
    if kind == "feedback":
        return _plain(e.feedback(q["member_id"]))
    if kind == "feedback_report":
        segments = {s["name"]: s["rule"] for s in q.get("segments", [])}
        from_ = ts(q["from"]) if "from" in q else None
        return _plain(e.feedback_report(at=at, from_=from_, segments=segments))
    raise AssertionError(f"unknown query type {kind!r}")


QUERIES = (
    "balance",
    "lots",
    "statement",
    "expiring",
    "liability",
    "member",
    "find_by_identity",
    "tier",
    "tier_history",
    "tier_distribution",
    "stage",
    "stage_history",
    "stage_distribution",
    "stage_transitions",
    "report",
    "segment",
    "matches",
    "refresh_segment",
    "reschedule",
    "campaign_members",
    "campaign_report",
    "coupons",
    "quote",
    "coupon_usage",
    "feedback",
    "feedback_report",
)


def _plain(v: Any) -> Any:
    """Python report values in the core's JSON form (decimals and instants as strings)."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, dt.datetime):
        assert v.tzinfo is not None, "report instants are aware"
        return v.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return v


# ----- matching -------------------------------------------------------------------------


def _decimal(text: str) -> Optional[Decimal]:
    try:
        d = Decimal(text.strip()) if text == text.strip() else None
    except InvalidOperation:
        return None
    return d if d is not None and d.is_finite() else None


def matches(expected: Any, actual: Any, path: str = "$") -> None:
    """Subset match with decimal-aware string comparison (as the Rust runner)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k, ev in expected.items():
            matches(ev, actual.get(k), f"{path}.{k}")
        return
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            raise AssertionError(f"{path}: expected {len(expected)} elements, got {len(actual)}: {actual!r}")
        for i, (ev, av) in enumerate(zip(expected, actual)):
            matches(ev, av, f"{path}[{i}]")
        return
    if isinstance(expected, str) and isinstance(actual, str) and expected != actual:
        x, y = _decimal(expected), _decimal(actual)
        if x is not None and y is not None and x == y:
            return
        raise AssertionError(f"{path}: expected {expected!r}, got {actual!r}")
    if isinstance(expected, bool) or isinstance(actual, bool):
        if type(expected) is not type(actual) or expected != actual:
            raise AssertionError(f"{path}: expected {expected!r}, got {actual!r}")
        return
    if expected != actual or isinstance(expected, (dict, list)) != isinstance(actual, (dict, list)):
        raise AssertionError(f"{path}: expected {expected!r}, got {actual!r}")


def error_json(err: crm.CrmError) -> Dict[str, Any]:
    return {"code": err.code, "field": err.field, "message": str(err)}


# ----- runner -----------------------------------------------------------------------------


def run_scenario(path: Path, engine_for: Callable[[crm.Program], crm.Engine], program_from: str = "dict") -> int:
    sc = json.loads(path.read_text(encoding="utf-8"))

    def program_of(spec: Dict[str, Any]) -> crm.Program:
        if program_from == "dict":
            return crm.Program.from_dict(spec)
        return crm.Program.from_json(json.dumps(spec))

    engine = engine_for(program_of(sc["program"]))
    steps = sc["steps"]
    for i, step in enumerate(steps):
        now = ts(step["now"])
        assert now is not None
        if "program" in step:
            # The same store under a changed programme, as a host restarted with it.
            engine = engine.with_program(program_of(step["program"]))
            continue
        try:
            if "command" in step:
                cmd = step["command"]
                key = step.get("key")
                assert isinstance(key, str), f"step {i}: command steps need a key"
                handler = COMMANDS.get(cmd["type"])
                assert handler is not None, f"step {i}: no Python mapping for command {cmd['type']!r}"
                result: Any = handler(engine, cmd, key, now).to_dict()
            elif "query" in step:
                result = run_query(engine, step["query"], now)
            else:
                raise AssertionError(f"step {i}: needs command or query")
        except crm.CrmError as err:
            if "error" not in step:
                raise AssertionError(f"{path.name} step {i}: unexpected error {err} ({err.code}, field={err.field})")
            try:
                matches(step["error"], error_json(err), "error")
            except AssertionError as m:
                raise AssertionError(f"{path.name} step {i}: {m}") from None
            continue
        if "error" in step:
            raise AssertionError(f"{path.name} step {i}: expected error {step['error']}, got {result!r}")
        if "expect" in step:
            try:
                matches(step["expect"], result)
            except AssertionError as m:
                raise AssertionError(f"{path.name} step {i}: {m}") from None
    return len(steps)
