#!/usr/bin/env bash
# Bindings overhead, measured in one run: bulk import of the same number of
# synthetic orders into the in-memory engine from Rust, Python (pandas and
# polars DataFrames) and Node (an array), in atomic batches of the same size.
#
#   bash benches/compare_bindings.sh [ORDERS] [BATCH]      (defaults 200000 100)
#
# Needs release builds: it makes them (cargo, maturin into .venv, napi). Prints
# each JSON line, then the ratio of each binding to Rust (target: within 3x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ORDERS=${1:-200000}
BATCH=${2:-100}
VENV=${VENV:-.venv}

cargo build --release --quiet --example bulk_import
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "maturin>=1.16,<2" pandas polars pyarrow
VENV_ABS=$(cd "$VENV" && pwd); VIRTUAL_ENV=$VENV_ABS PATH=$VENV_ABS/bin:$PATH maturin develop --release --quiet --manifest-path crm-py/Cargo.toml
(cd crm-node && { npm ci --silent || npm install --silent; } && npm run --silent build >/dev/null)

out=$(mktemp)
trap 'rm -f "$out"' EXIT
"${CARGO_TARGET_DIR:-target}/release/examples/bulk_import" --orders "$ORDERS" --batch "$BATCH" | tee -a "$out"
"$VENV/bin/python" benches/python_bulk_import.py --orders "$ORDERS" --batch "$BATCH" | tee -a "$out"
node benches/node_bulk_import.mjs --orders "$ORDERS" --batch "$BATCH" | tee -a "$out"

"$VENV/bin/python" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
rust = next(r["orders_per_s"] for r in rows if r["bench"] == "rust_bulk_import")
for r in rows:
    label = r["bench"] + (f" ({r['frame']})" if "frame" in r else "")
    print(f"{label:32} {r['orders_per_s']:>10,.0f} orders/s   {rust / r['orders_per_s']:.2f}x Rust's time")
PY
