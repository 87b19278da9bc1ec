# Two commands on a fresh machine:  `make run`  (install + demo)  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= data
STAMP  := $(VENV)/.installed

.PHONY: install console run test test-sqlite test-postgresql lint typecheck bench licenses system-deps clean

# The web console (console/, Vue + TypeScript + Vite) builds into the package, which serves it.
CONSOLE_OUT   := src/xueliang/web/console
CONSOLE_STAMP := $(CONSOLE_OUT)/.built
CONSOLE_DEPS  := console/node_modules/.installed
CONSOLE_SRC   := $(shell find console/src -type f 2>/dev/null) console/index.html \
                 console/vite.config.ts console/tsconfig.json

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Idempotent: reinstalls only when the lock or the project metadata changed.
install: $(STAMP) $(CONSOLE_STAMP)
$(STAMP): requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# npm ci only when the lock changed; the build only when a source changed.
$(CONSOLE_DEPS): console/package.json console/package-lock.json
	@command -v npm >/dev/null 2>&1 || bash scripts/system-deps.sh node
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); if (a < 20 || (a === 20 && b < 19)) { console.error("Node.js >= 20.19 is needed to build the console (Vite 8); found " + process.versions.node); process.exit(1); }'
	cd console && npm ci --no-audit --no-fund
	touch $@

$(CONSOLE_STAMP): $(CONSOLE_DEPS) $(CONSOLE_SRC)
	cd console && npm run build
	$(PYTHON) scripts/precompress.py $(CONSOLE_OUT)
	touch $@

console: $(CONSOLE_STAMP)

run: install
	$(BIN)/xueliang init --data $(DATA) --demo
	$(BIN)/xueliang run --data $(DATA)

system-deps:
	bash scripts/system-deps.sh

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	cd console && npm run --silent typecheck

typecheck: install
	$(BIN)/mypy

test-sqlite: install system-deps
	$(BIN)/pytest

test-postgresql: install system-deps
	XUELIANG_TEST_DB=postgresql $(BIN)/pytest

test: lint typecheck test-sqlite test-postgresql

bench: install system-deps
	$(BIN)/python bench/bench_import.py
	$(BIN)/python bench/bench_media.py
	$(BIN)/python bench/bench_console.py
	$(BIN)/python bench/bench_gb.py
	$(BIN)/python bench/bench_ps.py

licenses: install
	{ echo "# Third-party licences"; echo; \
	  echo "Every Python package installed by \`make install\` (runtime and development tools)."; \
	  echo "Checked for compatibility with Apache-2.0 by tests/test_licences.py. No model weights are shipped."; echo; \
	  $(BIN)/pip-licenses --from=mixed --format=markdown --with-urls --ignore-packages xueliang; \
	  echo; echo "## Web console (npm)"; echo; \
	  echo 'From console/package-lock.json: the built console contains the parts of the `dependency` packages it uses; `dev` ones only build it.'; echo; \
	  $(BIN)/python scripts/npm_licenses.py; \
	} > docs/THIRD_PARTY_LICENSES.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache console/node_modules $(CONSOLE_OUT)
