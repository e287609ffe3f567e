"""Type stubs for the compiled extension module ``crm._crm``.

Conventions: times are timezone-aware ``datetime`` objects or RFC 3339 strings
with an offset (naive datetimes raise ``ValidationError``); money is
``Decimal``, ``str`` or ``int`` (a ``float`` is rounded half away from zero to
the currency's minor unit; NaN/inf raise ``ValidationError``); points are
``int``. Returned times are aware UTC datetimes, returned money is ``Decimal``.
"""

import os
from datetime import datetime
from decimal import Decimal
from typing import Any, Dict, Iterable, Iterator, List, Literal, Mapping, Optional, Sequence, Tuple, Union, final

__version__: str
__all__ = [
    "__version__",
    "CrmError",
    "ValidationError",
    "NotFound",
    "InsufficientPoints",
    "Conflict",
    "ConfigError",
    "StoreError",
    "Program",
    "Engine",
    "StatementIterator",
    "Outcome",
    "Balance",
    "Lot",
    "Allocation",
    "Clawback",
    "StatementEntry",
    "StatementPage",
    "Expiring",
    "PointTypeLiability",
    "Liability",
    "Member",
    "ImportResult",
    "RejectedRow",
    "TierMetric",
    "TierGap",
    "TierProgress",
    "ManualTier",
    "TierBenefits",
    "TierView",
    "TierChange",
    "StageView",
    "StageChange",
    "TransitionMatrix",
    "OutreachItem",
    "ReportPage",
]

_Money = Union[Decimal, str, int, float]
_Time = Union[datetime, str]
_IdentityLike = Union[Tuple[str, str], Mapping[str, str]]
_ReturnedItemLike = Union[Tuple[str, int], Mapping[str, Any]]
_StrPath = Union[str, "os.PathLike[str]"]

# ----- errors -----------------------------------------------------------------------

class CrmError(Exception):
    """Base class of all crm errors."""

    code: str
    field: Optional[str]

class ValidationError(CrmError):
    """Input failed validation."""

class NotFound(CrmError):
    """The entity does not exist."""

class InsufficientPoints(CrmError):
    """The point balance is too low."""

class Conflict(CrmError):
    """The operation conflicts with current state."""

class ConfigError(CrmError):
    """The configuration is invalid."""

class StoreError(CrmError):
    """The storage backend failed."""

# ----- programme ------------------------------------------------------------------------

@final
class Program:
    """A validated loyalty programme."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Program":
        """Build from a dict in the core's JSON form."""
    @classmethod
    def from_json(cls, text: str) -> "Program":
        """Parse a JSON document."""
    @classmethod
    def from_toml(cls, text: str) -> "Program":
        """Parse a TOML document."""
    @classmethod
    def from_file(cls, path: _StrPath) -> "Program":
        """Read a file: ``.toml`` is TOML, anything else JSON."""
    @classmethod
    def default_demo(cls) -> "Program":
        """The demo programme."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form as a dict."""
    def to_json(self) -> str:
        """The core's JSON form as a string."""
    @property
    def name(self) -> str:
        """Human-readable name."""
    @property
    def timezone(self) -> str:
        """Programme time zone (IANA name)."""
    @property
    def currency(self) -> str:
        """ISO 4217 currency of order amounts."""
    @property
    def point_types(self) -> List[str]:
        """Ids of the point types."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

# ----- results ------------------------------------------------------------------------

@final
class Outcome:
    """What a command did; the variant's fields are attributes."""

    @property
    def type(self) -> str:
        """The outcome kind."""
    @property
    def fields(self) -> Dict[str, Any]:
        """The variant's fields as typed Python values."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __getattr__(self, name: str, /) -> Any: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class Balance:
    """Points of one type at an instant."""

    @property
    def available(self) -> int:
        """Spendable points."""
    @property
    def pending(self) -> int:
        """Points earned but still pending."""
    @property
    def debt(self) -> int:
        """Negative balance carried after a clawback."""
    @property
    def total(self) -> int:
        """``available + pending``."""
    def to_dict(self) -> Dict[str, int]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class Lot:
    """A lot of earned points."""

    @property
    def id(self) -> str:
        """Lot id."""
    @property
    def point_type(self) -> str:
        """Point type of the lot."""
    @property
    def granted(self) -> int:
        """Points granted."""
    @property
    def remaining(self) -> int:
        """Points still open."""
    @property
    def earned_at(self) -> datetime:
        """When the lot was earned."""
    @property
    def available_at(self) -> datetime:
        """When the lot becomes spendable."""
    @property
    def expires_at(self) -> Optional[datetime]:
        """First instant at which the lot is expired."""
    @property
    def source(self) -> Dict[str, Any]:
        """Where the lot came from."""
    @property
    def activated(self) -> bool:
        """False while a pending lot has not been activated."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class Allocation:
    """Points taken from (or put back into) one lot."""

    @property
    def lot_id(self) -> str:
        """The lot."""
    @property
    def points(self) -> int:
        """Points taken from it."""
    @property
    def expires_at(self) -> Optional[datetime]:
        """The lot's expiry."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class Clawback:
    """Points clawed back from one point type by a refund."""

    @property
    def point_type(self) -> str:
        """Point type."""
    @property
    def taken(self) -> int:
        """Points taken from open lots."""
    @property
    def debt(self) -> int:
        """Points added to the negative balance."""
    @property
    def shortfall(self) -> int:
        """Points written off."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class StatementEntry:
    """One line of a member's statement."""

    @property
    def seq(self) -> int:
        """Position in the member's event log (1-based)."""
    @property
    def at(self) -> datetime:
        """Effective time."""
    @property
    def kind(self) -> str:
        """earn, redeem, reverse, clawback, adjust, expire, merge_in, merge_out."""
    @property
    def points(self) -> int:
        """Signed points."""
    @property
    def balance(self) -> int:
        """Outstanding points after this entry."""
    @property
    def reference(self) -> Optional[str]:
        """Order, redemption, bonus or member referred to."""
    @property
    def actor(self) -> Optional[str]:
        """Who made a manual adjustment (``None`` for every other kind)."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class StatementPage:
    """A page of a statement; iterate it for its entries."""

    @property
    def entries(self) -> List[StatementEntry]:
        """Entries of this page."""
    @property
    def total(self) -> int:
        """Entries in the whole statement."""
    @property
    def next_offset(self) -> Optional[int]:
        """Offset of the next page, or None."""
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[StatementEntry]: ...
    def __getitem__(self, key: int, /) -> StatementEntry: ...
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class StatementIterator:
    """Iterator over every entry of a statement, fetched page by page."""

    def __iter__(self) -> "StatementIterator": ...
    def __next__(self) -> StatementEntry: ...

@final
class Expiring:
    """Points of one type expiring within a window."""

    @property
    def total(self) -> int:
        """Points expiring in the window."""
    @property
    def buckets(self) -> List[Tuple[datetime, int]]:
        """(expires_at, points) pairs, soonest first."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class PointTypeLiability:
    """Outstanding points of one type across the programme."""

    @property
    def point_type(self) -> str:
        """Point type."""
    @property
    def spendable(self) -> bool:
        """Whether the type can be redeemed."""
    @property
    def members(self) -> int:
        """Members holding outstanding points of this type."""
    @property
    def available(self) -> int:
        """Available points."""
    @property
    def pending(self) -> int:
        """Pending points."""
    @property
    def debt(self) -> int:
        """Negative balances."""
    @property
    def outstanding(self) -> int:
        """available + pending."""
    @property
    def value(self) -> Decimal:
        """_Money value of the outstanding points."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class Liability:
    """Programme-wide outstanding points and their money value at an instant."""

    @property
    def at(self) -> datetime:
        """The instant."""
    @property
    def members(self) -> int:
        """Members in the store."""
    @property
    def point_types(self) -> List[PointTypeLiability]:
        """One entry per point type."""
    @property
    def value(self) -> Decimal:
        """Total money value of spendable points."""
    def __getitem__(self, key: str, /) -> PointTypeLiability: ...
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class Member:
    """A member record."""

    @property
    def id(self) -> str:
        """Member id."""
    @property
    def status(self) -> str:
        """active, merged or erased."""
    @property
    def merged_into(self) -> Optional[str]:
        """The surviving member when merged."""
    @property
    def created_at(self) -> datetime:
        """When the member was created."""
    @property
    def last_event_at(self) -> datetime:
        """Latest effective time of any event."""
    @property
    def profile(self) -> Dict[str, Any]:
        """Profile as a dict."""
    @property
    def identities(self) -> List[Tuple[str, str]]:
        """Linked identities."""
    @property
    def tags(self) -> List[str]:
        """Tags."""
    @property
    def consents(self) -> Dict[str, bool]:
        """Marketing consent per channel."""
    @property
    def merged_from(self) -> List[str]:
        """Members merged into this one."""
    @property
    def lots(self) -> List[Lot]:
        """Open lots."""
    @property
    def debts(self) -> Dict[str, int]:
        """Negative balance per point type."""
    @property
    def order_ids(self) -> List[str]:
        """Ids of the member's orders."""
    @property
    def order_count(self) -> int:
        """Paid orders."""
    @property
    def spend(self) -> Decimal:
        """Sum of paid order amounts."""
    @property
    def refunded(self) -> Decimal:
        """Sum of refunds."""
    @property
    def first_order_at(self) -> Optional[datetime]:
        """First paid order."""
    @property
    def last_order_at(self) -> Optional[datetime]:
        """Last paid order."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's full JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

# ----- tiers, lifecycle stages, outreach -------------------------------------------

@final
class TierMetric:
    """The qualifying metric of a tier ladder over its window."""

    @property
    def spend(self) -> Decimal:
        """Qualifying spend (refunds deducted)."""
    @property
    def orders(self) -> int:
        """Paid orders."""
    @property
    def points(self) -> int:
        """Growth points."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class TierGap:
    """What is still missing to meet a threshold (None for parts it does not have)."""

    @property
    def spend(self) -> Optional[Decimal]:
        """Spend still missing."""
    @property
    def orders(self) -> Optional[int]:
        """Orders still missing."""
    @property
    def points(self) -> Optional[int]:
        """Growth points still missing."""
    @property
    def met(self) -> bool:
        """True when nothing is missing."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class TierProgress:
    """Progress towards a tier's threshold by a deadline."""

    @property
    def tier(self) -> str:
        """The tier the progress is towards."""
    @property
    def metric(self) -> TierMetric:
        """The metric so far."""
    @property
    def missing(self) -> TierGap:
        """What is still missing."""
    @property
    def by(self) -> Optional[datetime]:
        """Deadline, or None."""
    @property
    def message(self) -> str:
        """Readable summary."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class ManualTier:
    """A tier assigned by hand, in force until ``until``."""

    @property
    def until(self) -> datetime:
        """When the assignment ends."""
    @property
    def reason(self) -> str:
        """Why it was assigned."""
    @property
    def actor(self) -> str:
        """Who assigned it."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class TierBenefits:
    """What members of a tier get."""

    @property
    def points_multiplier(self) -> Optional[Decimal]:
        """Factor on points earned by rate rules (None: 1)."""
    @property
    def discount_rate(self) -> Optional[Decimal]:
        """Discount rate the host applies at checkout."""
    @property
    def free_shipping(self) -> bool:
        """Free shipping."""
    @property
    def birthday_gift(self) -> Optional[str]:
        """Birthday gift reference."""
    @property
    def custom(self) -> Dict[str, Any]:
        """Host-defined extras."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class TierView:
    """A member's tier at an instant, with benefits and progress."""

    @property
    def tier(self) -> str:
        """Tier id."""
    @property
    def name(self) -> str:
        """Display name."""
    @property
    def since(self) -> datetime:
        """When the member entered the tier."""
    @property
    def review_at(self) -> Optional[datetime]:
        """Next review, or None."""
    @property
    def grace_until(self) -> Optional[datetime]:
        """End of the grace period, or None."""
    @property
    def manual(self) -> Optional[ManualTier]:
        """The manual assignment in force, or None."""
    @property
    def benefits(self) -> TierBenefits:
        """The tier's benefits."""
    @property
    def next(self) -> Optional[TierProgress]:
        """Progress to the next tier up (None at the top)."""
    @property
    def retain(self) -> Optional[TierProgress]:
        """Progress to keeping this tier at the next review."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class TierChange:
    """One entry of a member's tier history."""

    @property
    def at(self) -> datetime:
        """When it happened."""
    @property
    def from_(self) -> Optional[str]:
        """The previous tier (``from`` in ``to_dict()``)."""
    @property
    def to(self) -> str:
        """The tier after the change."""
    @property
    def reason(self) -> str:
        """joined, upgrade, retained, grace, downgrade, refund, manual, manual_expired, ladder_changed, reinstated."""
    @property
    def note(self) -> Optional[str]:
        """Free text, or None."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class StageView:
    """A member's lifecycle stage at an instant."""

    @property
    def stage(self) -> str:
        """prospect, new, active, reactivated, at_risk, dormant or churned."""
    @property
    def since(self) -> Optional[datetime]:
        """When the member entered the stage (recorded transitions), or None."""
    @property
    def last_order_at(self) -> Optional[datetime]:
        """Last paid order up to the instant."""
    @property
    def days_since_last_order(self) -> Optional[int]:
        """Whole days since the last paid order."""
    @property
    def orders(self) -> int:
        """Paid orders up to the instant."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class StageChange:
    """A recorded stage transition."""

    @property
    def at(self) -> datetime:
        """When it happened."""
    @property
    def from_(self) -> Optional[str]:
        """The previous stage (``from`` in ``to_dict()``)."""
    @property
    def to(self) -> str:
        """The new stage."""
    @property
    def reason(self) -> str:
        """Why."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class TransitionMatrix:
    """How members moved between stages from ``from_`` to ``to``."""

    @property
    def from_(self) -> datetime:
        """The first instant (``from`` in ``to_dict()``)."""
    @property
    def to(self) -> datetime:
        """The second instant."""
    @property
    def counts(self) -> Dict[str, Dict[str, int]]:
        """counts[a][b]: members in stage a at from_ and b at to."""
    def count(self, start: str, end: str) -> int:
        """Members in stage ``start`` at ``from_`` and ``end`` at ``to``."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class ReportPage:
    """The data of the visual report at one instant: headline figures, tier and stage
    distributions, stage flows, points liability, cohorts, the RFM grid and channels.
    ``html()`` draws it as one self-contained HTML document (inline SVG, no network
    access); Jupyter renders the object itself (``_repr_html_``)."""

    @property
    def at(self) -> datetime:
        """The instant every figure is taken at."""
    @property
    def programme(self) -> str:
        """The programme's name."""
    @property
    def members(self) -> int:
        """Members (merged-away and erased ones not counted)."""
    @property
    def active_share(self) -> Decimal:
        """Share of members in the new, active or reactivated stage."""
    def html(self, *, lang: str = "en", whatif: Union[Mapping[str, Any], str, None] = None) -> str:
        """The page as an HTML document; ``lang`` ``"en"`` or ``"zh"``; ``whatif`` a comparison
        (dict, or JSON text such as the last line of the ``whatif`` example) adds its section."""
    def write(self, path: _StrPath, *, lang: str = "en", whatif: Union[Mapping[str, Any], str, None] = None) -> None:
        """Write ``html(lang=..., whatif=...)`` to ``path`` (UTF-8)."""
    def _repr_html_(self) -> str:
        """The page as one ``<div>`` with its own styles (English), for Jupyter."""
    def to_dict(self) -> Dict[str, Any]:
        """The page's data: the core's JSON form with Decimal money and rates, datetime instants."""

@final
class OutreachItem:
    """A message the host should send (``Outcome.outreach`` of ``run_due``)."""

    @property
    def id(self) -> str:
        """Stable id ``member:trigger:occurrence``."""
    @property
    def member_id(self) -> str:
        """The member."""
    @property
    def trigger(self) -> str:
        """Trigger id."""
    @property
    def occurrence(self) -> str:
        """Occurrence key within the trigger."""
    @property
    def channel(self) -> str:
        """The first consented channel of the trigger."""
    @property
    def due_at(self) -> datetime:
        """When it is due (after quiet hours)."""
    @property
    def payload(self) -> Dict[str, Any]:
        """Trigger data and static payload."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class RejectedRow:
    """A row that import_orders rejected."""

    @property
    def row(self) -> int:
        """0-based position of the row in the frame."""
    @property
    def order_id(self) -> Optional[str]:
        """The row's order id."""
    @property
    def code(self) -> str:
        """Stable error code."""
    @property
    def field(self) -> Optional[str]:
        """Offending field."""
    @property
    def message(self) -> str:
        """Error message."""
    def to_dict(self) -> Dict[str, Any]:
        """The row as a dict."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class ImportResult:
    """Result of Engine.import_orders: one entry per row."""

    @property
    def rows(self) -> int:
        """Rows in the frame."""
    @property
    def recorded(self) -> int:
        """Rows recorded."""
    @property
    def members(self) -> int:
        """Distinct members of the recorded rows."""
    @property
    def earned(self) -> Dict[str, int]:
        """Points earned per point type."""
    @property
    def rejected(self) -> List[RejectedRow]:
        """The rejected rows."""
    def to_frame(self, backend: Optional[str] = None) -> Any:
        """Per-row results as a DataFrame."""
    def to_dict(self) -> Dict[str, Any]:
        """Summary as a dict."""
    def __len__(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

# ----- engine ------------------------------------------------------------------------------

@final
class Engine:
    """The loyalty engine over an in-memory, SQLite or PostgreSQL store."""

    def __new__(
        cls,
        program: Program,
        path: Optional[_StrPath] = None,
        *,
        synchronous: Optional[Literal["full", "normal"]] = None,
        busy_timeout_ms: Optional[int] = None,
        member_cache: Optional[int] = None,
        snapshot_every: Optional[int] = None,
        checkpoint_bytes: Optional[int] = None,
    ) -> "Engine": ...
    @staticmethod
    def in_memory(program: Program) -> "Engine":
        """An engine over an in-memory store."""
    @staticmethod
    def open_sqlite(
        program: Program,
        path: _StrPath,
        *,
        synchronous: Optional[Literal["full", "normal"]] = None,
        busy_timeout_ms: Optional[int] = None,
        member_cache: Optional[int] = None,
        snapshot_every: Optional[int] = None,
        checkpoint_bytes: Optional[int] = None,
    ) -> "Engine":
        """An engine over a SQLite file.

        ``synchronous``: ``"full"`` (default; every acknowledged command survives power loss) or
        ``"normal"`` (survives a process crash). ``busy_timeout_ms``: wait for another writer's
        lock (default 5000). ``member_cache``: decoded members kept in memory (default 10000; 0:
        none). ``snapshot_every``: rewrite a member's stored snapshot every so many events
        (default 16). ``checkpoint_bytes``: WAL bytes between background checkpoints (default
        4 MB, at least 64 KB; larger for bulk imports). A bad value raises ``ValidationError``.
        """
    @staticmethod
    def open_postgres(
        program: Program,
        url: str,
        *,
        schema: str = "crm",
        pool_size: int = 8,
        connect_timeout: Optional[float] = None,
    ) -> "Engine":
        """An engine over PostgreSQL at ``url`` (``postgresql://user:pw@host:port/db``).

        Tables live in ``schema`` (created and migrated as needed); at most
        ``pool_size`` connections; ``connect_timeout`` in seconds (default 10).
        TLS follows the URL's ``sslmode`` (``disable``, ``prefer`` by default,
        ``require``, ``verify-ca``, ``verify-full``), ``sslrootcert`` (a PEM
        file, or ``system``) and ``sslcert``/``sslkey`` (a client certificate)
        as in libpq; when every host is a Unix-domain socket
        (``host=/var/run/postgresql``) the connection is plain whatever
        ``sslmode`` says, as libpq's.
        Raises ``StoreError`` when the database cannot be reached (a refused
        certificate included), ``ValidationError`` for a bad ``schema``,
        ``pool_size`` or TLS setting.
        """
    def drop_store_schema(self) -> None:
        """PostgreSQL engines only: drop the engine's schema and all its data.

        The engine is unusable afterwards. Raises ``Conflict`` on other engines.
        """
    @property
    def program(self) -> Program:
        """The programme the engine runs."""
    def with_program(self, program: Program) -> "Engine":
        """An engine over this engine's store under another programme.

        What a host gets by opening its store again with a changed programme
        (an in-memory store cannot be opened again). Its first ``run_due``
        derives every member's wake-up again under ``program`` (see
        ``reschedule``). Stop running ``run_due`` on this engine afterwards: two
        engines under different programmes on one store would each derive them
        again at every run.
        """
    @property
    def path(self) -> Optional[str]:
        """The SQLite file, or None (in-memory and PostgreSQL engines)."""
    def execute(self, key: str, command: Mapping[str, Any], now: _Time) -> Outcome:
        """Execute a command in the core's serde form."""
    # members
    def create_member(
        self,
        member_id: str,
        *,
        now: _Time,
        profile: Optional[Mapping[str, Any]] = None,
        identities: Optional[Iterable[_IdentityLike]] = None,
        tags: Optional[Iterable[str]] = None,
        consents: Optional[Mapping[str, bool]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Outcome:
        """Create a member."""
    def update_profile(
        self, member_id: str, patch: Mapping[str, Any], *, now: _Time, idempotency_key: Optional[str] = None
    ) -> Outcome:
        """Update profile fields."""
    def link_identity(
        self, member_id: str, channel: str, external_id: str, *, now: _Time, idempotency_key: Optional[str] = None
    ) -> Outcome:
        """Link an identity to a member."""
    def unlink_identity(
        self, member_id: str, channel: str, external_id: str, *, now: _Time, idempotency_key: Optional[str] = None
    ) -> Outcome:
        """Unlink an identity from a member."""
    def add_tag(self, member_id: str, tag: str, *, now: _Time, idempotency_key: Optional[str] = None) -> Outcome:
        """Add a tag."""
    def remove_tag(self, member_id: str, tag: str, *, now: _Time, idempotency_key: Optional[str] = None) -> Outcome:
        """Remove a tag."""
    def set_consent(
        self, member_id: str, channel: str, granted: bool, *, now: _Time, idempotency_key: Optional[str] = None
    ) -> Outcome:
        """Grant or withdraw marketing consent."""
    def merge(self, survivor: str, merged: str, *, now: _Time, idempotency_key: Optional[str] = None) -> Outcome:
        """Merge member ``merged`` into ``survivor``: its points, orders, identities and feedback,
        and the messages it was sent (the survivor is not sent them again; frequency caps count them)."""
    def erase(self, member_id: str, *, now: _Time, idempotency_key: Optional[str] = None) -> Outcome:
        """Erase a member's personal data."""
    # facts
    def record_order(
        self,
        order: Optional[Mapping[str, Any]] = None,
        *,
        now: _Time,
        idempotency_key: Optional[str] = None,
        id: Optional[str] = None,
        member_id: Optional[str] = None,
        amount: Optional[_Money] = None,
        placed_at: Optional[_Time] = None,
        paid_at: Optional[_Time] = None,
        status: Optional[str] = None,
        channel: Optional[str] = None,
        store: Optional[str] = None,
        currency: Optional[str] = None,
        items: Optional[Sequence[Mapping[str, Any]]] = None,
    ) -> Outcome:
        """Record an order."""
    def set_order_status(
        self,
        order_id: str,
        status: str,
        *,
        now: _Time,
        at: Optional[_Time] = None,
        idempotency_key: Optional[str] = None,
    ) -> Outcome:
        """Change an order's status."""
    def record_refund(
        self,
        refund_id: str,
        order_id: str,
        *,
        at: _Time,
        now: _Time,
        amount: Optional[_Money] = None,
        items: Optional[Iterable[_ReturnedItemLike]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Outcome:
        """Record a refund."""
    def record_action(
        self, member_id: str, action: str, reference: str, *, now: _Time, idempotency_key: Optional[str] = None
    ) -> Outcome:
        """Report an action that may earn a bonus."""
    def record_engagement(
        self,
        member_id: str,
        kind: str,
        *,
        now: _Time,
        at: Optional[_Time] = None,
        sku: Optional[str] = None,
        reference: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> Outcome:
        """Record a browse, favourite or add-to-cart (outcome type ``member``)."""
    # coupons
    def issue_coupon(
        self,
        member_id: str,
        template: str,
        *,
        now: _Time,
        for_points: bool = False,
        reason: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> Outcome:
        """Issue a coupon under a fresh random code (outcome type ``coupon_issued``)."""
    def redeem_coupon(
        self,
        member_id: str,
        code: str,
        order_id: str,
        *,
        now: _Time,
        idempotency_key: Optional[str] = None,
    ) -> Outcome:
        """Use a coupon on a recorded order (outcome type ``coupon_redeemed``)."""
    def revoke_coupon(
        self,
        member_id: str,
        code: str,
        *,
        reason: str,
        now: _Time,
        idempotency_key: Optional[str] = None,
    ) -> Outcome:
        """Withdraw an unused coupon (outcome type ``coupon_revoked``)."""
    def coupons(self, member_id: str, *, now: _Time) -> List[Dict[str, Any]]:
        """The member's coupons with their status at ``now``, soonest expiry first."""
    def quote(self, member_id: str, cart: Mapping[str, Any], *, now: _Time) -> Dict[str, Any]:
        """Applicable coupons (best first), why others do not apply, and the points payable."""
    def issue_coupons_to_segment(
        self, batch: str, rule: Union["Rule", str, Mapping[str, Any]], template: str, *, now: _Time
    ) -> Dict[str, Any]:
        """One coupon of ``template`` to every member matching ``rule``; re-runs issue nothing twice.

        Returns ``{"issued": [(member_id, code)], "skipped": n, "exhausted": bool}``.
        """
    def coupon_usage(self, template: str) -> Dict[str, Any]:
        """Stock and budget of a coupon template taken over the whole programme."""
    # service and feedback records
    def record_contact(
        self,
        member_id: str,
        contact_id: str,
        *,
        channel: str,
        topic: str,
        started_at: _Time,
        now: _Time,
        ended_at: Optional[_Time] = None,
        idempotency_key: Optional[str] = None,
    ) -> Outcome:
        """Record a contact with customer service (outcome type ``contact_recorded``)."""
    def open_ticket(
        self,
        member_id: str,
        ticket_id: str,
        kind: str,
        *,
        now: _Time,
        at: Optional[_Time] = None,
        order_id: Optional[str] = None,
        subject: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> Outcome:
        """Open an after-sales ticket (outcome type ``ticket``)."""
    def update_ticket(
        self,
        member_id: str,
        ticket_id: str,
        status: str,
        *,
        now: _Time,
        at: Optional[_Time] = None,
        idempotency_key: Optional[str] = None,
    ) -> Outcome:
        """Move a ticket along the status table (outcome type ``ticket``)."""
    def record_review(
        self,
        member_id: str,
        review_id: str,
        rating: int,
        *,
        now: _Time,
        text: Optional[str] = None,
        sku: Optional[str] = None,
        order_id: Optional[str] = None,
        at: Optional[_Time] = None,
        idempotency_key: Optional[str] = None,
    ) -> Outcome:
        """Record a review rated 1-5; earns the review bonus (outcome type ``review_recorded``)."""
    def record_survey(
        self,
        member_id: str,
        survey_id: str,
        kind: str,
        score: int,
        *,
        now: _Time,
        at: Optional[_Time] = None,
        ticket_id: Optional[str] = None,
        comment: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> Outcome:
        """Record a CSAT (1-5) or NPS (0-10) answer (outcome type ``survey_recorded``)."""
    def feedback(self, member_id: str) -> Dict[str, Any]:
        """The member's contacts, tickets, reviews and surveys, each keyed by id."""
    def feedback_report(
        self,
        *,
        at: _Time,
        from_: Optional[_Time] = None,
        segments: Optional[Mapping[str, Union["Rule", str, Mapping[str, Any]]]] = None,
    ) -> Dict[str, Any]:
        """CSAT, NPS and ratings overall, by tier, stage and segment; ticket resolution times."""
    # tiers
    def assign_tier(
        self,
        member_id: str,
        tier: str,
        *,
        until: _Time,
        reason: str,
        actor: str,
        now: _Time,
        idempotency_key: Optional[str] = None,
    ) -> Outcome:
        """Put a member in a tier by hand until ``until`` (outcome type ``tier``)."""
    # points
    def redeem(
        self,
        member_id: str,
        points: int,
        *,
        point_type: str,
        now: _Time,
        idempotency_key: str,
        reason: Optional[str] = None,
    ) -> Outcome:
        """Spend points."""
    def reverse_redemption(self, member_id: str, redemption_id: str, *, now: _Time, idempotency_key: str) -> Outcome:
        """Put back the points of a redemption."""
    def adjust(
        self,
        member_id: str,
        point_type: str,
        delta: int,
        *,
        reason: str,
        actor: str,
        now: _Time,
        idempotency_key: str,
    ) -> Outcome:
        """Manual adjustment."""
    def run_due(self, now: _Time, *, idempotency_key: Optional[str] = None) -> Outcome:
        """Scheduled work due at ``now``: points, tier reviews, stages, outreach.

        The outcome (type ``due``) has ``members``, ``activated``, ``expired``,
        ``tier_changes``, ``stage_changes``, ``outreach`` (``List[OutreachItem]``),
        ``outreach_count`` and ``suppressed``; a repeated run for the same ``now``
        returns ``outreach == []``. The first run under a changed programme first
        derives every member's next wake-up again under it (see ``reschedule``).
        """
    def reschedule(self, now: _Time) -> int:
        """Derive every member's next wake-up again under this programme.

        Writes the members whose next due instant changes and returns how many.
        The store does not keep the programme: after a change (a trigger added,
        other stage thresholds) ``run_due`` does this by itself at its first run;
        call it right after a deploy so that run does not pay for the scan. Under
        a changed tier ladder, members who qualify for a higher tier move up now,
        and those in a tier the ladder no longer has go to the one they qualify
        for (downgrades wait for the review).
        """
    # bulk
    def record_orders(self, orders: Iterable[Mapping[str, Any]], *, now: _Time) -> List[Union[Outcome, CrmError]]:
        """Record many orders in one atomic commit."""
    def import_orders(
        self,
        frame: Any,
        *,
        now: _Time,
        batch_size: Optional[int] = None,
        columns: Optional[Mapping[str, str]] = None,
    ) -> ImportResult:
        """Import orders from a DataFrame."""
    def balances_frame(self, point_type: str, *, at: _Time, backend: Optional[str] = None) -> Any:
        """Balances of every member as a DataFrame."""
    # queries
    def member(self, member_id: str) -> Member:
        """The stored member record."""
    def resolve(self, member_id: str) -> Member:
        """The member that now owns ``member_id``."""
    def member_as_of(self, member_id: str, at: _Time) -> Member:
        """The member's state as of ``at``."""
    def find_by_identity(self, channel: str, external_id: str) -> Optional[str]:
        """The member id an identity belongs to."""
    def balance(self, member_id: str, point_type: str, *, at: _Time) -> Balance:
        """Balance of a point type at ``at``."""
    def lots(self, member_id: str, *, at: Optional[_Time] = None) -> List[Lot]:
        """Open lots, soonest expiry first."""
    def statement(
        self, member_id: str, point_type: str, *, offset: Optional[int] = None, limit: Optional[int] = None
    ) -> StatementPage:
        """One page of the statement."""
    def iter_statement(self, member_id: str, point_type: str, *, page_size: Optional[int] = None) -> StatementIterator:
        """Iterate the whole statement."""
    def expiring(self, member_id: str, point_type: str, *, now: _Time, days: int) -> Expiring:
        """Points expiring in ``(now, now + days]``."""
    def liability(self, *, at: _Time) -> Liability:
        """Programme-wide outstanding points at ``at``."""
    # tiers and lifecycle stages
    def tier(self, member_id: str, *, at: _Time) -> TierView:
        """The member's tier at ``at`` with benefits and progress."""
    def tier_history(self, member_id: str) -> List[TierChange]:
        """Every tier change of the member, oldest first."""
    def tier_distribution(self, *, at: _Time) -> Dict[str, int]:
        """Members per tier at ``at`` (ladder order, every tier listed)."""
    def stage(self, member_id: str, *, at: _Time) -> StageView:
        """The member's lifecycle stage at ``at``."""
    def segment(self, rule: Union[Rule, str, Mapping[str, Any]], *, at: _Time) -> List[str]:
        """The members matching a segment rule at ``at``, sorted by id."""
    def matches(self, member_id: str, rule: Union[Rule, str, Mapping[str, Any]], *, at: _Time) -> bool:
        """Does the member match the rule at ``at``?"""
    def refresh_segment(self, segment: Mapping[str, Any], *, at: _Time) -> Dict[str, Any]:
        """Re-evaluate a saved segment; returns the segment to keep and the changes."""
    def report(self, *, at: _Time) -> Dict[str, Any]:
        """Programme reports at ``at``: repurchase, liability buckets and breakage, cohorts, channels."""
    def outreach_of_run(self, *, now: _Time) -> List[OutreachItem]:
        """The outreach items the ``run_due`` at ``now`` emitted, again (recovery)."""
    def stage_history(self, member_id: str) -> List[StageChange]:
        """Every recorded stage transition of the member, oldest first."""
    def stage_distribution(self, *, at: _Time) -> Dict[str, int]:
        """Members per lifecycle stage at ``at`` (every stage listed)."""
    def stage_transitions(self, *, from_: _Time, to: _Time) -> TransitionMatrix:
        """How members moved between stages from ``from_`` to ``to``."""
    def report_page(
        self, *, at: _Time, flows_from: Optional[_Time] = None, flows_to: Optional[_Time] = None
    ) -> ReportPage:
        """The visual report's data at ``at``; stage flows from ``flows_from`` (default 12 months
        before ``flows_to``) to ``flows_to`` (default ``at``)."""
    def report_html(
        self,
        *,
        at: _Time,
        lang: str = "en",
        flows_from: Optional[_Time] = None,
        flows_to: Optional[_Time] = None,
        whatif: Union[Mapping[str, Any], str, None] = None,
    ) -> str:
        """The visual report at ``at`` as one self-contained HTML document (``lang`` ``"en"``/``"zh"``)."""
    def write_report(
        self,
        path: _StrPath,
        *,
        at: _Time,
        lang: str = "en",
        flows_from: Optional[_Time] = None,
        flows_to: Optional[_Time] = None,
        whatif: Union[Mapping[str, Any], str, None] = None,
    ) -> None:
        """Write ``report_html(...)`` to ``path`` (UTF-8)."""
    def campaign_report(self, campaign: Mapping[str, Any], *, at: _Time) -> CampaignReport:
        """Measure a campaign (a dict: id, audience, seed, holdout, starts_at, ends_at, ...) at ``at``."""
    def campaign_members(self, campaign: Mapping[str, Any]) -> Dict[str, List[str]]:
        """The campaign's audience at its start: ``{"treatment": [...], "control": [...]}``."""

# --- campaigns -------------------------------------------------------------------------

__all__ += ["CampaignReport"]

@final
class CampaignReport:
    """A campaign's results at an instant (``Engine.campaign_report``); money and rates are ``Decimal``."""

    @property
    def campaign_id(self) -> str: ...
    @property
    def at(self) -> datetime:
        """The instant the figures are as of."""
    @property
    def starts_at(self) -> datetime: ...
    @property
    def attribution_end(self) -> datetime:
        """End of attribution (exclusive)."""
    @property
    def complete(self) -> bool:
        """``at`` is at or past the end of attribution: the figures are final."""
    @property
    def targeted(self) -> int:
        """Audience size (treatment + control)."""
    @property
    def treatment(self) -> Dict[str, Any]:
        """members, converted, conversion_rate, revenue, revenue_per_member, repurchased, repurchase_rate."""
    @property
    def control(self) -> Dict[str, Any]:
        """The held-out group, as ``treatment``."""
    @property
    def conversion_uplift(self) -> Dict[str, Any]:
        """estimate, low, high, significant: conversion rate, Newcombe hybrid score 95 % interval."""
    @property
    def revenue_uplift(self) -> Dict[str, Any]:
        """Revenue per member uplift with Welch's 95 % interval."""
    @property
    def incremental_conversions(self) -> Decimal: ...
    @property
    def incremental_revenue(self) -> Decimal:
        """Revenue uplift per member x treatment members."""
    @property
    def cost(self) -> Dict[str, Any]:
        """points, points_value, coupon_value, total."""
    @property
    def roi(self) -> Optional[Decimal]:
        """(incremental_revenue - cost) / cost; ``None`` when the campaign cost nothing."""
    def to_frame(self, backend: Optional[str] = None) -> Any:
        """One row per group (pandas by default; ``"polars"``, ``"pyarrow"`` or ``"dict"``)."""
    def uplift_frame(self, backend: Optional[str] = None) -> Any:
        """One row per measure: treatment, control, uplift, low, high, significant."""
    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

# --- analytics and segments ---------------------------------------------------------
# RFM, customer summaries, the BG/NBD and Gamma-Gamma value models, CLV, and segment
# rules (crm_core::analytics and crm_core::segment). Frames: pandas, polars, pyarrow or a
# dict of lists; results have the input's kind.

from datetime import date as _date
from typing import Literal as _Literal

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

_Period = _Literal["day", "week"]
_Cutoff = Union[_date, datetime, str]
_Numbers = Any  # a number, or a Series / array / list of numbers

class RuleError(CrmError):
    """A segment rule could not be read (code ``rule_error``).

    ``line``/``column`` are 1-based (0 for the JSON form); ``excerpt`` is the
    source line with a ``^`` under the column (the JSON path for the JSON
    form); ``message`` is the reason alone; ``field`` names the field of a
    type error. ``str(err)`` includes the caret excerpt.
    """

    line: int
    column: int
    excerpt: str
    message: str

@final
class Rule:
    """A segment rule: ``Rule(text)`` or ``Rule.from_json(dict | str)``.

    ``str(rule)`` is the canonical text; ``evaluate(frame)`` gives a boolean
    mask over a frame whose columns are named by the fields' text form
    (``"tier"``, ``"orders(90d)"``, ``"spend(365d)"``, ``"tags"``, ...);
    ``matches(values)`` tests one member given as a dict keyed the same way.
    """

    def __new__(cls, text: str) -> Rule: ...
    @staticmethod
    def from_json(value: Union[Mapping[str, Any], str]) -> Rule:
        """Read the JSON form (a dict, or a JSON string)."""
    def to_json(self) -> Any:
        """The JSON form as a dict (money as decimal strings)."""
    @property
    def fields(self) -> List[str]:
        """The fields the rule reads, in text form, in first-use order."""
    def evaluate(
        self,
        frame: Any,
        *,
        columns: Optional[Mapping[str, str]] = None,
        tier_ladder: Optional[Sequence[str]] = None,
    ) -> Any:
        """A boolean mask over the rows of ``frame`` (pandas Series on its index, polars Series, ...)."""
    def matches(self, values: Mapping[str, Any], *, tier_ladder: Optional[Sequence[str]] = None) -> bool:
        """Whether one member, given as ``{field text: value}``, matches."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> Tuple[type, Tuple[str]]: ...

@final
class BgNbd:
    """BG/NBD parameters (fitted by ``fit_bgnbd`` or given); ``period`` is the unit of recency and T."""

    def __new__(cls, r: float, alpha: float, a: float, b: float, *, period: _Period = "day") -> BgNbd: ...
    @property
    def r(self) -> float: ...
    @property
    def alpha(self) -> float: ...
    @property
    def a(self) -> float: ...
    @property
    def b(self) -> float: ...
    @property
    def period(self) -> str: ...
    @property
    def log_likelihood(self) -> Optional[float]: ...
    @property
    def converged(self) -> Optional[bool]: ...
    @property
    def customers(self) -> Optional[int]: ...
    def p_alive(self, frequency: Any, recency: _Numbers = None, T: _Numbers = None) -> Any:
        """P(alive) of a customer history, or of every row of a summary frame passed as ``frequency``."""
    def alive_until(self, frequency: float, recency: float, p: float) -> Optional[float]:
        """Age ``T`` at which P(alive) falls to ``p`` with no further purchase; ``None`` when ``frequency`` is 0."""
    def expected_purchases(
        self, t: _Numbers, frequency: Any = None, recency: _Numbers = None, T: _Numbers = None
    ) -> Any:
        """Expected purchases in the next ``t`` periods (of a new customer when no history is given)."""
    def to_dict(self) -> Dict[str, Any]: ...

@final
class GammaGamma:
    """Gamma-Gamma spend parameters (fitted by ``fit_gamma_gamma`` or given)."""

    def __new__(cls, p: float, q: float, gamma: float) -> GammaGamma: ...
    @property
    def p(self) -> float: ...
    @property
    def q(self) -> float: ...
    @property
    def gamma(self) -> float: ...
    @property
    def log_likelihood(self) -> Optional[float]: ...
    @property
    def converged(self) -> Optional[bool]: ...
    @property
    def customers(self) -> Optional[int]: ...
    def expected_average_value(self, frequency: Any, monetary_value: _Numbers = None) -> Any:
        """Expected mean transaction value, or of every row of a summary frame passed as ``frequency``."""
    def to_dict(self) -> Dict[str, Any]: ...

def rfm(
    orders: Any,
    as_of: _Cutoff,
    *,
    member_id: str = "member_id",
    placed_at: str = "placed_at",
    amount: str = "amount",
    status: str = "status",
    scale: Optional[int] = None,
    clusters: Optional[int] = None,
    seed: Optional[int] = None,
) -> Any:
    """RFM per member: member_id, recency, frequency, monetary, r_score, f_score, m_score, group[, cluster]."""

def summary(
    orders: Any,
    calibration_end: _Cutoff,
    period: _Period = "day",
    *,
    member_id: str = "member_id",
    placed_at: str = "placed_at",
    amount: str = "amount",
    status: str = "status",
    scale: Optional[int] = None,
) -> Any:
    """Per-customer member_id, frequency, recency, T, monetary_value for the value models."""

def fit_bgnbd(
    data: Any,
    *,
    period: _Period = "day",
    calibration_end: Optional[_Cutoff] = None,
    member_id: str = "member_id",
    placed_at: str = "placed_at",
    amount: str = "amount",
    status: str = "status",
    scale: Optional[int] = None,
) -> BgNbd:
    """Fit BG/NBD on a summary frame (or an order frame with ``calibration_end``)."""

def fit_gamma_gamma(
    data: Any,
    *,
    calibration_end: Optional[_Cutoff] = None,
    member_id: str = "member_id",
    placed_at: str = "placed_at",
    amount: str = "amount",
    status: str = "status",
    scale: Optional[int] = None,
) -> GammaGamma:
    """Fit Gamma-Gamma on a summary frame (or an order frame with ``calibration_end``)."""

def clv(
    bgnbd: BgNbd,
    gamma_gamma: GammaGamma,
    data: Any,
    *,
    months: int = 12,
    discount_rate: float = 0.01,
    margin: float = 1.0,
) -> Any:
    """Discounted customer lifetime value of every row of a summary frame, as a vector named ``clv``."""

# --- what-if replay ----------------------------------------------------------------------

__all__ += ["Comparison", "compare_programmes"]

@final
class Comparison:
    """``compare_programmes``: one history replayed under several programmes."""

    @property
    def until(self) -> datetime:
        """The instant the replay ended at."""
    @property
    def labels(self) -> List[str]:
        """The programme labels, in the order given."""
    @property
    def programmes(self) -> Any:
        """A pandas DataFrame: one row per programme, every scalar figure."""
    def frame(self, backend: Optional[str] = None) -> Any:
        """``programmes`` as pandas (default), ``"polars"``, ``"pyarrow"`` or ``"dict"``."""
    def to_dict(self) -> Dict[str, Any]:
        """Everything, in the core's JSON form."""
    def _repr_html_(self) -> str:
        """One column per programme, one row per figure."""

def compare_programmes(
    orders: Any,
    programs: Union[Mapping[str, Program], Sequence[Tuple[str, Program]]],
    *,
    refunds: Optional[Sequence[Mapping[str, Any]]] = None,
    redemptions: Optional[Sequence[Mapping[str, Any]]] = None,
    until: Optional[_Time] = None,
) -> Comparison:
    """Replay the orders (a frame or list of row dicts) under each programme and compare."""

# --- recommendations -------------------------------------------------------------------

__all__ += ["Recommender", "recommend"]

_Weights = Optional[Dict[str, float]]
_PurchaseWeight = _Literal["binary", "quantity"]

@final
class Recommender:
    """Item-to-item recommender (cosine over co-purchases), fitted on order lines
    (``member_id``, ``sku``, optional ``category`` and ``qty``) and optional
    engagement events (``member_id``, ``sku``, ``kind``)."""

    def __new__(
        cls,
        lines: Any,
        engagements: Any = None,
        *,
        member_id: str = "member_id",
        sku: str = "sku",
        category: str = "category",
        qty: str = "qty",
        kind: str = "kind",
        purchase_weight: _PurchaseWeight = "binary",
        engagement_weights: _Weights = None,
        neighbours: int = 20,
        exclude_bought: bool = True,
        one_per_category: bool = False,
        power: int = 2,
        threads: int = 0,
    ) -> Recommender: ...
    @property
    def members(self) -> int: ...
    @property
    def skus(self) -> int: ...
    def recommend(self, member_id: Union[str, int], k: int = 10) -> List[Tuple[str, float]]:
        """Top ``k`` (sku, score) for a member; score 0 marks popularity fill."""
    def similar(self, sku: Union[str, int], n: int = 10) -> List[Tuple[str, float]]:
        """The ``n`` most similar skus with their cosine similarity."""
    def recommend_all(self, k: int = 10) -> Any:
        """Top ``k`` of every member: a frame with member_id, rank, sku, score."""

def recommend(
    lines: Any,
    engagements: Any = None,
    *,
    k: int = 10,
    member_id: str = "member_id",
    sku: str = "sku",
    category: str = "category",
    qty: str = "qty",
    kind: str = "kind",
    purchase_weight: _PurchaseWeight = "binary",
    engagement_weights: _Weights = None,
    neighbours: int = 20,
    exclude_bought: bool = True,
    one_per_category: bool = False,
    power: int = 2,
    threads: int = 0,
) -> Any:
    """Fit a Recommender and return the top ``k`` of every member as a frame."""
def generate_coupon_codes(n: int) -> List[str]:
    """``n`` distinct coupon codes from the operating system's random source."""

def check_coupon_code(code: str) -> str:
    """The canonical form of a typed code; ``ValidationError`` when it is mistyped."""
