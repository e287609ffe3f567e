#!/usr/bin/env bash
# Side by side, in one run: the RFM score table of an order CSV from our `rfm` example vs
# pandas, polars and duckdb (end to end CSV -> CSV, and compute only from memory; seconds,
# peak RSS, ratios, and a row-by-row agreement check), and our BG/NBD fit (`clv --summary`)
# vs the `lifetimes` package on the CDNOW customer summary (time and parameters within 1 %).
#
#   bash benches/compare_rfm.sh                    # 1,000,000 members, 10,000,000 orders (~460 MB CSV)
#   ORDERS=1000000 MEMBERS=100000 bash benches/compare_rfm.sh      # a quick run
#
# Environment:
#   ORDERS, MEMBERS   size of the generated history (defaults 10000000, 1000000)
#   DATA_DIR          where the generated CSV goes (default benches/data; it is reused when present)
#   VENV              the virtualenv with the comparison tools (default .venv-bench; created if missing)
#   PYTHON            interpreter used to create it (default python3; 3.9+)
#   SUMMARY           CDNOW summary (default ../shared/data/cdnow_customers_summary.csv)
#   OUT_DIR           where each tool writes its score CSV (default /tmp/crm-compare-rfm)
#   RESULTS           the Markdown report (default benches/results/compare_rfm.md)
#   REPEATS           best of N for compute-only (default 3); FIT_REPEATS for the fits (default 5)
#   CARGO_TARGET_DIR  honoured for the release builds
#
# Fresh machine: needs a Rust toolchain, python3 with venv, and network access to PyPI. The
# comparison tools are pinned to versions checked together (lifetimes 0.11.3, the last release,
# imports and fits fine with these pandas/numpy/scipy; no patch needed). PIP_PACKAGES overrides.
# Exits non-zero when a tool's table differs from ours or the BG/NBD parameters differ by > 1 %.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ORDERS=${ORDERS:-10000000}
MEMBERS=${MEMBERS:-$((ORDERS / 10))}
DATA_DIR=${DATA_DIR:-benches/data}
VENV=${VENV:-.venv-bench}
PYTHON=${PYTHON:-python3}
SUMMARY=${SUMMARY:-../shared/data/cdnow_customers_summary.csv}
OUT_DIR=${OUT_DIR:-/tmp/crm-compare-rfm}
RESULTS=${RESULTS:-benches/results/compare_rfm.md}
TARGET=${CARGO_TARGET_DIR:-target}
PIP_PACKAGES=${PIP_PACKAGES:-"numpy==2.4.6 scipy==1.17.1 pandas==3.1.1 pyarrow==26.0.1 polars==2.1.0 duckdb==2.0.1 autograd==1.9.1 lifetimes==0.11.3"}

echo "== release builds" >&2
cargo build --release --quiet --example rfm --example clv

echo "== virtualenv $VENV" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $PIP_PACKAGES
"$VENV/bin/python" -c "import pandas, polars, duckdb, lifetimes" # fail early on an import problem

CSV="$DATA_DIR/orders_${MEMBERS}m_${ORDERS}o.csv"
if [ ! -s "$CSV" ]; then
    echo "== generating $CSV" >&2
    "$VENV/bin/python" benches/gen_orders.py --members "$MEMBERS" --orders "$ORDERS" --out "$CSV"
fi

echo "== comparing (one run)" >&2
"$VENV/bin/python" benches/compare_rfm.py \
    --orders "$CSV" --as-of 2024-12-31 \
    --rfm-bin "$TARGET/release/examples/rfm" --clv-bin "$TARGET/release/examples/clv" \
    --summary "$SUMMARY" --out-dir "$OUT_DIR" --results "$RESULTS" \
    --repeats "${REPEATS:-3}" --fit-repeats "${FIT_REPEATS:-5}"
