#!/usr/bin/env bash
# Side by side, in one run: our `recommend` example vs `implicit`'s item-kNN
# (CosineRecommender) on the same hold-out split of a generated order-line history with real
# co-purchase structure (benches/gen_order_lines.py): hit rate at k and seconds.
#
#   bash benches/compare_recommend.sh                                   # 10M lines, 100k skus, 1M members
#   LINES=1000000 SKUS=20000 MEMBERS=100000 bash benches/compare_recommend.sh   # a quick run
#
# Environment:
#   LINES, SKUS, MEMBERS  size of the generated history (defaults 10000000, 100000, 1000000)
#   K, NEIGHBOURS         list length and neighbours per sku (defaults 10, 20)
#   DATA_DIR              where the generated CSV goes (default benches/data; reused when present)
#   VENV                  the virtualenv with the comparison tools (default .venv-bench; created if missing)
#   PYTHON                interpreter used to create it (default python3; 3.9+)
#   RESULTS               the Markdown report, appended to (default benches/results/compare_recommend.md)
#   CARGO_TARGET_DIR      honoured for the release build
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LINES=${LINES:-10000000}
SKUS=${SKUS:-100000}
MEMBERS=${MEMBERS:-1000000}
K=${K:-10}
NEIGHBOURS=${NEIGHBOURS:-20}
DATA_DIR=${DATA_DIR:-benches/data}
VENV=${VENV:-.venv-bench}
PYTHON=${PYTHON:-python3}
RESULTS=${RESULTS:-benches/results/compare_recommend.md}
TARGET=${CARGO_TARGET_DIR:-target}
PIP_PACKAGES=${PIP_PACKAGES:-"numpy==2.4.6 scipy==1.17.1 polars==2.1.0 implicit==0.7.3"}

echo "== release build" >&2
cargo build --release --quiet --example recommend

echo "== virtualenv $VENV" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $PIP_PACKAGES
"$VENV/bin/python" -c "import implicit, polars, scipy" # fail early on an import problem

CSV="$DATA_DIR/order_lines_${LINES}l_${SKUS}s_${MEMBERS}m.csv"
if [ ! -s "$CSV" ]; then
    echo "== generating $CSV" >&2
    "$VENV/bin/python" benches/gen_order_lines.py --lines "$LINES" --skus "$SKUS" --members "$MEMBERS" --out "$CSV"
fi

echo "== comparing (one run)" >&2
"$VENV/bin/python" benches/compare_recommend.py --items "$CSV" --bin "$TARGET/release/examples/recommend" \
    --k "$K" --neighbours "$NEIGHBOURS" --results "$RESULTS" \
    --label "$LINES order lines, $SKUS skus, $MEMBERS members (benches/gen_order_lines.py)"
