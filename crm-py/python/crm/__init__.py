"""Python bindings for the crm membership and loyalty engine.

Quick start::

    from datetime import datetime, timezone
    from decimal import Decimal
    import crm

    engine = crm.Engine(crm.Program.default_demo())          # or Engine(program, "loyalty.db")
    now = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    engine.record_order(id="o-1", member_id="alice", amount=Decimal("129.99"),
                        placed_at=now, now=now)
    engine.balance("alice", "reward", at=now).available      # 129
    engine.redeem("alice", 100, point_type="reward", now=now, idempotency_key="redeem-1")

Conventions (the same in every method and in DataFrame import):

* **Time** is explicit: every command takes ``now=``; the engine never reads a
  clock. Times are timezone-aware ``datetime`` objects (any ``tzinfo``, converted
  to UTC) or RFC 3339 strings with an offset. A *naive* ``datetime`` (or a
  naive timestamp column) always raises ``ValidationError`` naming the field.
  Returned times are aware UTC ``datetime`` objects.
* **Money** is ``decimal.Decimal``, ``str`` (``"12.50"``) or ``int``. A
  ``float`` is read as its shortest round-trip decimal and rounded half away
  from zero to the programme currency's minor unit (``19.999`` -> ``20.00`` in
  CNY, ``1234.5`` -> ``1235`` in JPY); NaN and infinities raise
  ``ValidationError``. ``bool`` is rejected. Returned money is ``Decimal``.
* **Points** are ``int``.
* **Idempotency**: every command takes ``idempotency_key=``; repeating a key
  with the same command returns the first outcome, with another command raises
  ``Conflict``. Without a key the core's default applies (``order:<id>``,
  ``refund:<id>``, ``member:<id>``, ...); ``redeem``, ``reverse_redemption`` and
  ``adjust`` require one.
* **Errors** are ``CrmError`` subclasses (``ValidationError``, ``NotFound``,
  ``InsufficientPoints``, ``Conflict``, ``ConfigError``, ``StoreError``) with a
  stable ``.code`` and the offending ``.field`` path (or ``None``). A bug in the
  binding surfaces as ``CrmError`` with code ``internal_error``; nothing panics
  across into Python.
* Engine calls release the GIL.
"""

from ._crm import (
    Allocation,
    Balance,
    Clawback,
    ConfigError,
    Conflict,
    CrmError,
    Engine,
    Expiring,
    ImportResult,
    InsufficientPoints,
    Liability,
    Lot,
    ManualTier,
    Member,
    NotFound,
    Outcome,
    OutreachItem,
    PointTypeLiability,
    Program,
    RejectedRow,
    ReportPage,
    StageChange,
    StageView,
    StatementEntry,
    StatementIterator,
    StatementPage,
    StoreError,
    TierBenefits,
    TierChange,
    TierGap,
    TierMetric,
    TierProgress,
    TierView,
    TransitionMatrix,
    ValidationError,
    __version__,
)

__all__ = [
    "__version__",
    "Program",
    "Engine",
    "Outcome",
    "Balance",
    "Lot",
    "Allocation",
    "Clawback",
    "StatementEntry",
    "StatementPage",
    "StatementIterator",
    "Expiring",
    "PointTypeLiability",
    "Liability",
    "Member",
    "ImportResult",
    "RejectedRow",
    "TierView",
    "TierProgress",
    "TierMetric",
    "TierGap",
    "TierBenefits",
    "ManualTier",
    "TierChange",
    "StageView",
    "StageChange",
    "TransitionMatrix",
    "OutreachItem",
    "ReportPage",
    "CrmError",
    "ValidationError",
    "NotFound",
    "InsufficientPoints",
    "Conflict",
    "ConfigError",
    "StoreError",
]

# --- analytics and segments ---------------------------------------------------------
# RFM, customer summaries, BG/NBD and Gamma-Gamma value models, CLV, and segment rules.
# The functions are compiled; each is exported as a plain Python function forwarding to
# it (same name, docstring and signature), so that every public name is a Python object
# with attributes like the classes.
import functools as _functools  # noqa: E402
from typing import Any as _Any, Callable as _Callable, TypeVar as _TypeVar, cast as _cast  # noqa: E402

from . import _crm as _ext  # noqa: E402
from ._crm import BgNbd, GammaGamma, Rule, RuleError  # noqa: E402

_F = _TypeVar("_F", bound=_Callable[..., _Any])


def _forward(f: _F) -> _F:
    @_functools.wraps(f)
    def forward(*args: _Any, **kwargs: _Any) -> _Any:
        return f(*args, **kwargs)

    return _cast(_F, forward)


rfm = _forward(_ext.rfm)
summary = _forward(_ext.summary)
fit_bgnbd = _forward(_ext.fit_bgnbd)
fit_gamma_gamma = _forward(_ext.fit_gamma_gamma)
clv = _forward(_ext.clv)
generate_coupon_codes = _forward(_ext.generate_coupon_codes)
check_coupon_code = _forward(_ext.check_coupon_code)

__all__ += [
    "RuleError",
    "Rule",
    "BgNbd",
    "GammaGamma",
    "rfm",
    "summary",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "clv",
    "generate_coupon_codes",
    "check_coupon_code",
]

# --- campaigns -------------------------------------------------------------------------
from ._crm import CampaignReport  # noqa: E402

__all__ += ["CampaignReport"]

# --- what-if replay -----------------------------------------------------------------------
from ._crm import Comparison  # noqa: E402

compare_programmes = _forward(_ext.compare_programmes)

__all__ += ["Comparison", "compare_programmes"]

# --- recommendations ----------------------------------------------------------------
# Item-to-item recommendations from order lines and engagement events (crm_core::recommend).
from ._crm import Recommender  # noqa: E402

recommend = _forward(_ext.recommend)

__all__ += ["Recommender", "recommend"]
