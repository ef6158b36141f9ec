# parcours: `make run` starts the demo on an embedded SQLite; `make test` runs the whole suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
HCPS ?= 2000
REPS ?= 20
MONTHS ?= 6

.PHONY: run test install lint format bench clean

run: install
	$(VENV)/bin/parcours migrate
	$(VENV)/bin/parcours seed --hcps $(HCPS) --reps $(REPS) --months $(MONTHS) --if-empty
	@echo "parcours is on http://127.0.0.1:8000"
	$(VENV)/bin/parcours serve

install: $(VENV)/.installed web/node_modules/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# pytest exits 5 when it collects no test; that is not a failure of the suite itself.
test: install
	$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

lint:
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format:
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

bench: install
	$(PY) benchmarks/crm.py
	$(PY) benchmarks/content.py --backend both
	$(PY) benchmarks/approved_email.py --messages 2000 --campaign 100000
	$(PY) benchmarks/meetings.py --meetings 500 --rounds 5 --spread 5 --browsers 5

clean:
	rm -rf var/ .pytest_cache
