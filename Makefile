# Two commands on a fresh machine:  `make run`  (install + demo)  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= data
STAMP  := $(VENV)/.installed

.PHONY: install run test test-sqlite test-postgresql lint typecheck bench licenses system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Idempotent: reinstalls only when the lock or the project metadata changed.
install: $(STAMP)
$(STAMP): requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

run: install
	$(BIN)/xueliang init --data $(DATA) --demo
	$(BIN)/xueliang run --data $(DATA)

system-deps:
	bash scripts/system-deps.sh

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

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

licenses: install
	{ echo "# Third-party licences"; echo; \
	  echo "Every Python package installed by \`make install\` (runtime and development tools)."; \
	  echo "Checked for compatibility with Apache-2.0 by tests/test_licences.py. No model weights are shipped."; echo; \
	  $(BIN)/pip-licenses --from=mixed --format=markdown --with-urls --ignore-packages xueliang; \
	} > docs/THIRD_PARTY_LICENSES.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
