# Top-level test entry point: `make test` runs everything CI runs.
# Every target is idempotent and works from a fresh clone.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

CARGO  ?= cargo
NPM    ?= npm
PYTHON ?= python3

VENV       ?= .venv
VENV_ABS   := $(abspath $(VENV))
VENV_BIN   := $(VENV_ABS)/bin
VENV_PY    := $(VENV_BIN)/python
VENV_STAMP := $(VENV_ABS)/.deps-stamp
PY_DEPS    := "maturin>=1.16,<2" pytest pandas polars pyarrow mypy

PY_CRATE   := crm-py
NODE_CRATE := crm-node

# The PostgreSQL store is feature-gated; the test and lint runs include it.
RUST_FEATURES := --features crm-core/postgres,crm-examples/postgres

.PHONY: test lint fmt-check clippy doc-check test-rust test-py test-node test-browser venv clean-venv

test: lint test-rust test-py test-node test-browser

lint: fmt-check clippy doc-check

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets $(RUST_FEATURES) -- -D warnings

# The core's API docs: no broken or ambiguous intra-doc links.
doc-check:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc -p crm-core --no-deps -q

# The binding crates are cdylibs exercised through their own test suites below.
# The PostgreSQL suites run when CRM_TEST_POSTGRES_URL is set (.ci/run sets it) and
# say that they were skipped otherwise.
test-rust:
	@if [ -z "$${CRM_TEST_POSTGRES_URL:-}" ]; then \
	  echo "note: CRM_TEST_POSTGRES_URL is not set: the PostgreSQL suites will be skipped"; fi
	$(CARGO) test --workspace --exclude $(PY_CRATE) --exclude $(NODE_CRATE) $(RUST_FEATURES)

# --- Python -----------------------------------------------------------------

$(VENV_PY):
	$(PYTHON) -m venv $(VENV_ABS)

$(VENV_STAMP): $(VENV_PY)
	$(VENV_PY) -m pip install --quiet --upgrade $(PY_DEPS)
	touch $@

venv: $(VENV_STAMP)

# `maturin develop` builds the extension (debug profile) straight into the venv
# as an editable install of crm-py/python; no isolated build environment needed.
test-py: $(VENV_STAMP)
	VIRTUAL_ENV=$(VENV_ABS) PATH="$(VENV_BIN):$$PATH" \
	  $(VENV_BIN)/maturin develop --manifest-path $(PY_CRATE)/Cargo.toml
	$(VENV_BIN)/pytest $(PY_CRATE)/tests

clean-venv:
	rm -rf $(VENV_ABS)

# --- Node -------------------------------------------------------------------

test-node:
	cd $(NODE_CRATE) && { $(NPM) ci || $(NPM) install; }
	cd $(NODE_CRATE) && $(NPM) run build
	@# The build regenerates index.d.ts/index.js: in a checkout they must match what is committed.
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git diff --exit-code -- $(NODE_CRATE)/index.d.ts $(NODE_CRATE)/index.js \
	    || { echo "crm-node/index.d.ts drifted from the Rust sources: commit the regenerated file"; exit 1; }; \
	fi
	cd $(NODE_CRATE) && $(NPM) test

# --- The HTML report in a real browser ------------------------------------------

CHROMIUM    ?= /usr/bin/chromium
BROWSER_DIR := tests/browser
# The demo writes its database under $$TMPDIR/crm-demo: a directory of our own, so that
# parallel checkouts do not share it.
REPORT_TMP  := $(abspath target/report-tmp)
REPORT_DB   := $(REPORT_TMP)/crm-demo/demo.db

# Builds the report of the CDNOW demo (English and Chinese) and opens it in headless
# Chromium (Debian's package, installed when missing, with a CJK font for the Chinese
# page): no console error, no network request, every chart drawn; the screenshot is
# target/report.png.
test-browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; fi
	@if ! fc-list :lang=zh 2>/dev/null | grep -q .; then \
	  apt-get install -y fonts-wqy-microhei || echo "note: no CJK font: the Chinese page will show boxes"; fi
	mkdir -p $(REPORT_TMP)
	TMPDIR=$(REPORT_TMP) $(CARGO) run --example demo > target/demo.txt
	$(CARGO) run --example report -- --db $(REPORT_DB) --out target/report.html
	$(CARGO) run --example report -- --db $(REPORT_DB) --out target/report-zh.html --lang zh
	cd $(BROWSER_DIR) && { $(NPM) ci || $(NPM) install; }
	cd $(BROWSER_DIR) && CHROMIUM=$(CHROMIUM) $(NPM) test
