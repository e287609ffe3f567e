"""Quick start: replay the CDNOW sample through the loyalty engine, month by month.

    python examples/python/quickstart.py [--data examples/data/CDNOW_sample.txt] [--db /tmp/cdnow.db]

What it does (the same as the Rust demo, ``cargo run --release --example demo``):

1. opens a SQLite-backed engine under ``crm.Program.default_demo()`` (one
   ``reward`` point per full 1.00 USD, rounded down per order, valid 365 days;
   ``synchronous="normal"`` by default here: a replay can simply be re-run);
2. reads the CDNOW sample (2,357 customers, 6,919 purchases, 1997-01 to 1998-06)
   and, month by month, imports that month's orders in one atomic batch
   (``Engine.import_orders`` from a dict of columns: no pandas needed), then
   runs ``run_due`` at the first instant of the next month (expiring lots
   whose 365 days are over), then lets every member holding at least 200
   points redeem 100 of them (idempotency key ``redeem:<member>:<month>``);
3. prints members, orders, points issued / redeemed / expired, the
   programme's outstanding liability and the top members by spend.

The last line of stdout is one JSON object with the same figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import crm

DEFAULT_DATA = Path(__file__).resolve().parent.parent / "data" / "CDNOW_sample.txt"
REDEEM_THRESHOLD = 200
REDEEM_POINTS = 100
POINT_TYPE = "reward"


def read_cdnow(path: Path) -> Dict[Tuple[int, int], Dict[str, List[Any]]]:
    """Orders grouped by (year, month), as columns for ``import_orders``."""
    months: Dict[Tuple[int, int], Dict[str, List[Any]]] = defaultdict(
        lambda: {"member_id": [], "order_id": [], "placed_at": [], "amount": []}
    )
    with path.open(encoding="ascii") as f:
        for line_no, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            _master_id, customer, day, _cds, dollars = parts
            # CDNOW has dates only: each purchase is placed at noon UTC that day.
            placed = datetime.strptime(day, "%Y%m%d").replace(hour=12, tzinfo=timezone.utc)
            cols = months[(placed.year, placed.month)]
            cols["member_id"].append(f"c{customer}")
            cols["order_id"].append(f"cdnow-{line_no}")
            cols["placed_at"].append(placed)
            cols["amount"].append(Decimal(dollars))
    return dict(sorted(months.items()))


def first_of_next_month(year: int, month: int) -> datetime:
    return datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CDNOW file (default: the bundled sample)")
    parser.add_argument("--db", type=Path, default=None, help="SQLite file (default: a fresh temporary file)")
    parser.add_argument(
        "--synchronous",
        choices=["full", "normal"],
        default="normal",
        help="SQLite durability: 'normal' (default here: survives a process crash, fast) or 'full' (fsync per command)",
    )
    parser.add_argument("--months", type=int, default=None, help="replay only the first N months")
    args = parser.parse_args()

    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory(prefix="crm-quickstart-")
        args.db = Path(tmp.name) / "cdnow.db"

    started = time.perf_counter()
    engine = crm.Engine(crm.Program.default_demo(), args.db, synchronous=args.synchronous)
    months = read_cdnow(args.data)
    if args.months is not None:
        months = dict(list(months.items())[: args.months])

    orders = rejected = issued = redeemed = expired = 0
    members: Set[str] = set()
    print(f"{'month':<8} {'orders':>6} {'issued':>7} {'redeemed':>8} {'expired':>7} {'outstanding':>11}")
    now = None
    for (year, month), cols in months.items():
        now = first_of_next_month(year, month)
        result = engine.import_orders(cols, now=now)
        orders += result.recorded
        rejected += len(result.rejected)
        month_issued = result.earned.get(POINT_TYPE, 0)
        issued += month_issued
        members.update(cols["member_id"])
        for row in result.rejected:
            print(f"  rejected row {row.row} ({row.order_id}): {row.message}")

        due = engine.run_due(now)
        expired += due.expired

        month_redeemed = 0
        balances = engine.balances_frame(POINT_TYPE, at=now, backend="dict")
        for member_id, available in zip(balances["member_id"], balances["available"]):
            if available >= REDEEM_THRESHOLD:
                out = engine.redeem(
                    member_id,
                    REDEEM_POINTS,
                    point_type=POINT_TYPE,
                    now=now,
                    idempotency_key=f"redeem:{member_id}:{year}-{month:02d}",
                    reason="monthly voucher",
                )
                month_redeemed += out.points
        redeemed += month_redeemed
        outstanding = engine.liability(at=now)[POINT_TYPE].outstanding
        print(
            f"{year}-{month:02d}  {result.recorded:>6} {month_issued:>7} {month_redeemed:>8} "
            f"{due.expired:>7} {outstanding:>11}"
        )

    assert now is not None, "no orders in the data file"
    liability = engine.liability(at=now)
    reward = liability[POINT_TYPE]
    spend: List[Tuple[Decimal, str, int]] = []
    for member_id in sorted(members):
        m = engine.member(member_id)
        spend.append((m.spend, member_id, m.order_count))
    top = sorted(spend, key=lambda t: (-t[0], t[1]))[:5]

    print()
    print(f"members:           {len(members)}")
    print(f"orders:            {orders} ({rejected} rejected)")
    print(f"points issued:     {issued}")
    print(f"points redeemed:   {redeemed}")
    print(f"points expired:    {expired}")
    print(f"outstanding:       {reward.outstanding} points held by {reward.members} members")
    print(f"liability:         {liability.value} {engine.program.currency}")
    print("top members by spend:")
    for amount, member_id, count in top:
        bal = engine.balance(member_id, POINT_TYPE, at=now)
        print(f"  {member_id}  {amount:>9} USD in {count:>3} orders, {bal.available:>5} points available")
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    summary = {
        "members": len(members),
        "orders": orders,
        "rejected": rejected,
        "points_issued": issued,
        "points_redeemed": redeemed,
        "points_expired": expired,
        "points_outstanding": reward.outstanding,
        "liability": str(liability.value),
        "top_members": [{"member_id": m, "spend": str(a), "orders": c} for a, m, c in top],
        "elapsed_ms": elapsed_ms,
    }
    print(json.dumps(summary))
    if tmp is not None:
        del engine
        tmp.cleanup()


if __name__ == "__main__":
    main()
