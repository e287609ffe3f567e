#!/usr/bin/env python3
"""Generate a deterministic order-line history WITH co-purchase structure for the
recommendation benchmark.

    python benches/gen_order_lines.py --lines 10000000 --skus 100000 --members 1000000 \\
        --out benches/data/order_lines_10000000.csv

Format (the input of `cargo run --release --example recommend`):

    member_id,order_id,placed_at,sku,category,qty,price
    381723,1,2023-01-01T00:00:07Z,52731,c017,1,23.10

How the history is made (so that what a member buys next is predictable from what
members like them bought, as in a real shop, but not trivially):

- the skus are split into clusters of `--cluster-size` (default 100) related skus (a
  "theme": a cuisine, a hobby, a baby's age); five clusters make a category (so a
  category holds related but distinct themes). Sku numbers are shuffled: nothing about
  the structure shows in the ids;
- every member has a taste over three clusters (weights 0.6, 0.3, 0.1), drawn with
  Zipf-like popularity over clusters;
- a member places 1 + a negative-binomial number of orders (a few order often, most
  a few times); an order has 1 + Poisson(1) lines; it picks one of the member's clusters
  by taste, and each line is, with probability 0.8, a sku of that cluster (Zipf within
  the cluster, exponent 1.0) and otherwise a sku of the whole catalogue (Zipf, 1.05):
  bestsellers everyone buys;
- quantities are 1 + geometric (mostly 1), prices lognormal per sku (2 decimals);
- orders are spread uniformly over 2023-2024 and written in time order with order ids
  1..=orders, the lines of an order together.

Deterministic: the same seed, sizes and numpy/polars versions give the same bytes.
Needs numpy and polars. 10M lines: 555 MB, 6 minutes on the shared 2-core VM at load 7.
"""

import argparse
import os
import sys
import time

import numpy as np
import polars as pl

START = 1672531200  # 2023-01-01T00:00:00Z
SPAN = 731 * 86400


def zipf_cdf(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    c = np.cumsum(w)
    return c / c[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--skus", type=int, default=100_000)
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--cluster-size", type=int, default=100)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    t0 = time.time()
    rng = np.random.default_rng(a.seed)
    n_clusters = max(1, a.skus // a.cluster_size)
    skus = n_clusters * a.cluster_size
    # Sku number of (cluster, rank): a shuffled permutation.
    sku_no = rng.permutation(skus) + 1
    price = np.round(np.exp(rng.normal(3.3, 0.8, skus)), 2).clip(0.5, None)

    # Member tastes: three clusters each, popular clusters more often.
    cl_cdf = zipf_cdf(n_clusters, 0.8)
    cl_perm = rng.permutation(n_clusters)
    tastes = cl_perm[np.searchsorted(cl_cdf, rng.random((a.members, 3)))]

    # Orders per member: 1 + NB, scaled so that the lines come close to the target.
    lines_per_order = 2.0
    mean_orders = a.lines / lines_per_order / a.members
    rate = rng.gamma(0.8, max(mean_orders - 1.0, 0.01) / 0.8, a.members)
    n_orders = 1 + rng.poisson(rate)
    order_member = np.repeat(np.arange(a.members, dtype=np.int64), n_orders)
    n_ord = order_member.size
    # Cluster of each order, by the member's taste.
    pick = np.searchsorted(np.array([0.6, 0.9, 1.0]), rng.random(n_ord), side="right").clip(0, 2)
    order_cluster = tastes[order_member, pick]
    order_lines = 1 + rng.poisson(1.0, n_ord)
    # Trim or pad to the target line count.
    total = int(order_lines.sum())
    line_order = np.repeat(np.arange(n_ord, dtype=np.int64), order_lines)
    if total > a.lines:
        line_order = line_order[: a.lines]
    n = line_order.size
    in_cluster = rng.random(n) < 0.8
    rank_cdf = zipf_cdf(a.cluster_size, 1.0)
    local = np.searchsorted(rank_cdf, rng.random(n)).clip(0, a.cluster_size - 1)
    glob_cdf = zipf_cdf(skus, 1.05)
    glob_perm = rng.permutation(skus)
    glob = glob_perm[np.searchsorted(glob_cdf, rng.random(n)).clip(0, skus - 1)]
    idx = np.where(in_cluster, order_cluster[line_order] * a.cluster_size + local, glob)
    # Order times, ids in time order.
    order_time = START + rng.integers(0, SPAN, n_ord)
    by_time = np.argsort(order_time, kind="stable")
    order_id = np.empty(n_ord, dtype=np.int64)
    order_id[by_time] = np.arange(1, n_ord + 1)
    rows = np.argsort(order_id[line_order], kind="stable")
    line_order = line_order[rows]
    idx = idx[rows]
    qty = 1 + rng.geometric(0.8, n) - 1
    cluster_of = idx // a.cluster_size
    times = pl.Series(order_time[line_order] * 1_000_000).cast(pl.Datetime("us", "UTC"))
    df = pl.DataFrame(
        {
            "member_id": order_member[line_order] + 1,
            "order_id": order_id[line_order],
            "placed_at": times.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sku": sku_no[idx],
            "category": pl.Series(cluster_of // 5).cast(pl.Utf8).str.zfill(4),
            "qty": qty,
            "price": price[idx],
        }
    )
    df = df.with_columns(pl.concat_str([pl.lit("c"), pl.col("category")]).alias("category"))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    df.write_csv(a.out, float_precision=2)
    print(
        f"{n} lines, {n_ord} orders, {a.members} members, {skus} skus -> {a.out} in {time.time() - t0:.1f}s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
