#!/usr/bin/env python3
"""Generate a realistic, deterministic order history CSV for the RFM benchmarks.

    python benches/gen_orders.py --members 1000000 --orders 10000000 --out benches/data/orders_10000000.csv

Format: the order CSV of the replay and rfm examples,

    member_id,order_id,placed_at,amount,channel
    381723,1,2023-01-01T00:00:07Z,23.10,web

- every member 1..=members has at least one order; the other orders are spread with a
  skewed (negative-binomial-like: Poisson with gamma-distributed rates) frequency, so a few
  members order very often and most order a few times;
- amounts are lognormal (median about 33), rounded to cents (2 decimals always written);
- orders are spread uniformly over two years, 2023-01-01T00:00:00Z to 2024-12-31T23:59:59Z,
  written in time order with order ids 1..=orders;
- the as-of date for scoring is 2024-12-31 (every order counts).

Deterministic: the same seed, sizes and numpy/polars versions give the same bytes.
Needs numpy and polars (the benchmark virtualenv has both). 10M orders: about 505 MB and
~30 s on 2 cores.
"""

import argparse
import os
import sys
import time

import numpy as np
import polars as pl

START = 1672531200  # 2023-01-01T00:00:00Z
SPAN = 731 * 86400  # 2023 and 2024 (a leap year): up to 2024-12-31T23:59:59Z
AS_OF = "2024-12-31"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--gamma-shape", type=float, default=0.6, help="shape of the member rate (smaller: more skew)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.orders < a.members:
        sys.exit("--orders must be at least --members (every member orders once)")
    t0 = time.perf_counter()
    rng = np.random.default_rng(a.seed)

    # Frequencies: 1 + multinomial share of the rest, weights ~ Gamma(shape): a gamma-Poisson
    # (negative binomial) mixture conditioned on the exact total.
    rate = rng.gamma(a.gamma_shape, 1.0, size=a.members)
    extra = rng.multinomial(a.orders - a.members, rate / rate.sum())
    counts = extra + 1
    member = np.repeat(np.arange(1, a.members + 1, dtype=np.int64), counts)

    # Times: uniform over the two years, then the whole history is put in time order.
    secs = rng.integers(0, SPAN, size=a.orders, dtype=np.int64)
    # Amounts: lognormal, in cents, at least 0.01; a member's basket size varies around its own level.
    level = rng.normal(0.0, 0.35, size=a.members)
    cents = np.rint(100 * np.exp(3.5 + np.repeat(level, counts) + rng.normal(0.0, 0.7, size=a.orders)))
    cents = np.maximum(cents, 1).astype(np.int64)
    channel = rng.choice(np.array(["web", "app", "store"]), size=a.orders, p=[0.5, 0.3, 0.2])

    order = np.argsort(secs, kind="stable")
    df = pl.DataFrame(
        {
            "member_id": member[order],
            "order_id": np.arange(1, a.orders + 1, dtype=np.int64),
            "placed_at": (secs[order] + START) * 1_000_000,
            "cents": cents[order],
            "channel": channel[order],
        }
    )
    df = df.select(
        "member_id",
        "order_id",
        pl.col("placed_at").cast(pl.Datetime("us")).dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("placed_at"),
        pl.concat_str(
            [
                (pl.col("cents") // 100).cast(pl.String),
                pl.lit("."),
                (pl.col("cents") % 100).cast(pl.String).str.zfill(2),
            ]
        ).alias("amount"),
        "channel",
    )
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".part"
    df.write_csv(tmp)
    os.replace(tmp, a.out)
    size = os.path.getsize(a.out)
    print(
        f"wrote {a.out}: {a.members} members, {a.orders} orders, {size / 1e6:.0f} MB, "
        f"max orders/member {counts.max()}, median {int(np.median(counts))}, as of {AS_OF} "
        f"({time.perf_counter() - t0:.1f} s)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
