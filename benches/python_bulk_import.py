"""Orders/s for bulk import from a DataFrame into the in-memory engine (Python binding).

Build the extension optimised first, then run:

    VIRTUAL_ENV=$PWD/.venv PATH=$PWD/.venv/bin:$PATH maturin develop --release --manifest-path crm-py/Cargo.toml
    .venv/bin/python benches/python_bulk_import.py [--orders 200000] [--members 20000] [--batch 100]

For each available frame library (pandas, polars) a frame of synthetic paid orders
(member id, order id, tz-aware UTC timestamp, float64 amount with two decimals,
channel) is built once, then ``Engine.import_orders`` imports it into a fresh
in-memory engine under ``Program.default_demo()``. The time measured is the
``import_orders`` call only (column extraction, conversion, the core's
``record_orders`` in atomic batches, per-row results); frame construction is
excluded. Each library prints one JSON line:

    {"bench": "python_bulk_import", "frame": "pandas", "orders": 200000, "seconds": ..., "orders_per_s": ...}

Compare with the pure-Rust figure from ``cargo bench --bench ledger`` (bulk
record_orders into MemoryStore).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List

import crm

START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def columns(n: int, members: int, seed: int = 7) -> Dict[str, List[Any]]:
    rng = random.Random(seed)
    return {
        "member_id": [f"m{rng.randrange(members):06d}" for _ in range(n)],
        "order_id": [f"o{i:08d}" for i in range(n)],
        "placed_at": [START + timedelta(seconds=30 * i) for i in range(n)],
        "amount": [round(rng.uniform(1, 500), 2) for _ in range(n)],
        "channel": [rng.choice(["web", "app", "pos", "wechat"]) for _ in range(n)],
    }


def run(frame: Any, label: str, n: int, batch: int, now: datetime) -> Dict[str, Any]:
    engine = crm.Engine(crm.Program.default_demo())
    t0 = time.perf_counter()
    result = engine.import_orders(frame, now=now, batch_size=batch)
    seconds = time.perf_counter() - t0
    assert result.recorded == n, result
    return {
        "bench": "python_bulk_import",
        "frame": label,
        "orders": n,
        "members": result.members,
        "batch": batch,
        "seconds": round(seconds, 4),
        "orders_per_s": round(n / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Bulk import orders/s from a DataFrame")
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100, help="orders per atomic commit (import_orders default)")
    args = parser.parse_args()

    cols = columns(args.orders, args.members)
    now = cols["placed_at"][-1] + timedelta(seconds=1)
    ran = False
    try:
        import pandas as pd

        df = pd.DataFrame(cols)
        df["placed_at"] = pd.to_datetime(df["placed_at"], utc=True)
        print(json.dumps(run(df, "pandas", args.orders, args.batch, now)), flush=True)
        ran = True
    except ImportError:
        pass
    try:
        import polars as pl

        pf = pl.DataFrame(cols)
        print(json.dumps(run(pf, "polars", args.orders, args.batch, now)), flush=True)
        ran = True
    except ImportError:
        pass
    if not ran:
        print(json.dumps(run(cols, "dict", args.orders, args.batch, now)), flush=True)


if __name__ == "__main__":
    main()
