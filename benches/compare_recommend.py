#!/usr/bin/env python3
"""Side by side, in one run: our `recommend` example vs the `implicit` package's item-kNN
(`implicit.nearest_neighbours.CosineRecommender`) on the same hold-out split of an
order-line CSV: hit rate at k and seconds. Run through benches/compare_recommend.sh.

Split (the same as the example's): for each member with at least two orders, the last
order (latest placed_at, ties: greatest order_id, numerically when every order id is an
integer) is held out; everything else trains. Both models see binary member x sku
interactions (1 when bought in training), keep the same number of neighbours per sku,
leave out skus the member bought, and recommend k skus to EVERY member (the batch that
is timed). A hit: at least one held-out sku in the member's top k.

Timings: ours is the example's `elapsed_ms` (CSV parse + split + fit + top k for all
members + hit-rate scoring, one process), with its phases and its CPU time (`cpu_ms`: the
machine is shared, so the wall time depends on what else runs). For implicit, `fit + batch` is the model alone (the matrix built
from columns already in memory); `end to end` adds polars' CSV read, the split and the
sparse matrix build, for a like-for-like total.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import polars as pl
import scipy.sparse as sp


def run_ours(binary: str, items: str, k: int, neighbours: int, extra: list) -> dict:
    cmd = [binary, "--items", items, "--k", str(k), "--neighbours", str(neighbours), *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    sys.stderr.write(out)
    return json.loads(out.strip().splitlines()[-1])


def split(items: str):
    t0 = time.perf_counter()
    df = pl.read_csv(items, columns=["member_id", "order_id", "placed_at", "sku"], schema_overrides={
        "member_id": pl.Utf8, "order_id": pl.Utf8, "placed_at": pl.Utf8, "sku": pl.Utf8})
    numeric = df["order_id"].str.contains(r"^[0-9]+$").all()
    okey = pl.col("order_id").cast(pl.Int64) if numeric else pl.col("order_id")
    df = df.with_columns(
        pl.col("placed_at").str.to_datetime(time_zone="UTC").alias("t"),
        okey.alias("okey"),
        (pl.col("member_id").rank("dense") - 1).cast(pl.Int64).alias("u"),
        (pl.col("sku").rank("dense") - 1).cast(pl.Int64).alias("i"),
    )
    last = (
        df.sort(["t", "okey"])
        .group_by("u")
        .agg(pl.col("order_id").n_unique().alias("orders"), pl.col("t").last().alias("lt"), pl.col("okey").last().alias("lk"))
        .filter(pl.col("orders") >= 2)
        .select("u", "lt", "lk")
    )
    df = df.join(last, on="u", how="left").with_columns(
        ((pl.col("t") == pl.col("lt")) & (pl.col("okey") == pl.col("lk"))).fill_null(False).alias("held")
    )
    n_users = int(df["u"].max()) + 1
    n_items = int(df["i"].max()) + 1
    train = df.filter(~pl.col("held"))
    test = df.filter(pl.col("held")).select("u", "i").unique()
    return df, train, test, n_users, n_items, time.perf_counter() - t0


def hit_rate(recs: np.ndarray, test: pl.DataFrame) -> tuple:
    """recs: users x k item ids (-1 for none)."""
    u = test["u"].to_numpy().astype(np.int64)
    i = test["i"].to_numpy().astype(np.int64)
    hit = (recs[u] == i[:, None]).any(axis=1)
    members = np.unique(u)
    hit_users = np.unique(u[hit])
    return len(members), len(hit_users) / max(len(members), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", required=True)
    ap.add_argument("--bin", required=True, help="target/release/examples/recommend")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--neighbours", type=int, default=20)
    ap.add_argument("--results", required=True)
    ap.add_argument("--label", default="")
    a = ap.parse_args()

    import implicit
    from implicit.nearest_neighbours import CosineRecommender

    threads = os.cpu_count() or 1
    print(f"== ours: {a.bin}", file=sys.stderr)
    load_before = os.getloadavg()[0]
    ours = run_ours(a.bin, a.items, a.k, a.neighbours, [])

    print("== implicit: read + split", file=sys.stderr)
    t_all = time.perf_counter()
    df, train, test, n_users, n_items, t_split = split(a.items)
    t0 = time.perf_counter()
    pairs = train.select("u", "i").unique()
    x = sp.csr_matrix(
        (np.ones(pairs.height, dtype=np.float32), (pairs["u"].to_numpy(), pairs["i"].to_numpy())),
        shape=(n_users, n_items),
    )
    t_matrix = time.perf_counter() - t0
    # Popularity baseline (training lines per sku, ties: smaller sku numerically/textually).
    skus = df.select("i", "sku").unique("i")
    counts = train.group_by("i").len().join(skus, on="i")
    num = counts["sku"].str.contains(r"^[0-9]+$").all()
    counts = counts.with_columns((pl.col("sku").cast(pl.Int64) if num else pl.col("sku")).alias("skey"))
    popular = counts.sort(["len", "skey"], descending=[True, False])["i"].head(a.k).to_numpy()
    pop_members, pop_rate = hit_rate(np.tile(popular, (n_users, 1)), test)

    print(f"== implicit {implicit.__version__}: fit + top {a.k} for {n_users} members", file=sys.stderr)
    model = CosineRecommender(K=a.neighbours, num_threads=0)
    t0 = time.perf_counter()
    model.fit(x, show_progress=False)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids, _scores = model.recommend(np.arange(n_users), x, N=a.k, filter_already_liked_items=True)
    t_batch = time.perf_counter() - t0
    t_end = time.perf_counter() - t_all
    members, rate = hit_rate(np.asarray(ids, dtype=np.int64), test)

    ours_s = ours["elapsed_ms"] / 1000
    imp_s = t_fit + t_batch
    rows = [
        ("ours (crm recommend example)", ours["members"], ours["hit_rate"], ours["popularity_hit_rate"],
         f"{ours['fit_ms'] / 1000 + ours['recommend_ms'] / 1000:.2f}", f"{ours_s:.2f}"),
        (f"implicit {implicit.__version__} CosineRecommender(K={a.neighbours})", members, round(rate, 4),
         round(pop_rate, 4), f"{imp_s:.2f}", f"{t_end:.2f}"),
    ]
    lines = [
        f"## {a.label or os.path.basename(a.items)}",
        "",
        f"{len(df):,} order lines, {n_users:,} members, {n_items:,} skus; k = {a.k}, {a.neighbours} neighbours; "
        f"{platform.processor() or platform.machine()}, {threads} cores, load average {load_before:.1f} before the run; one run each.",
        "",
        "| model | held-out members | hit rate | popularity hit rate | fit + top k, s | end to end, s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    lines += [
        "",
        f"Hit rate ratio ours/implicit: {ours['hit_rate'] / max(rate, 1e-9):.2f}; "
        f"time ratio implicit/ours (fit + top k): {imp_s / max(ours['fit_ms'] / 1000 + ours['recommend_ms'] / 1000, 1e-9):.2f}, "
        f"(end to end): {t_end / max(ours_s, 1e-9):.2f}. "
        f"implicit end to end = polars read + split {t_split:.2f} s, sparse matrix {t_matrix:.2f} s, "
        f"fit {t_fit:.2f} s, top k {t_batch:.2f} s (scoring not counted). Ours: parse {ours['parse_ms']} ms, "
        f"split {ours['split_ms']} ms, fit {ours['fit_ms']} ms, top k {ours['recommend_ms']} ms, "
        f"scoring {ours['score_ms']} ms; CPU time {ours.get('cpu_ms', 0)} ms.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(a.results)), exist_ok=True)
    with open(a.results, "a") as f:
        f.write(text + "\n")
    if members != ours["members"]:
        print(f"warning: held-out members differ: {members} vs {ours['members']}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
