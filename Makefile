# The two commands a fresh clone needs (see README): `make demo` and `make test`.
# Everything else here is a building block of those two.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SEGFLOW := $(BIN)/segflow

.PHONY: demo test lint typecheck pytest chaos stack-up stack-down install promtool clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## promtool (alert rules, alert unit tests, Prometheus config, dashboard queries) comes from the
## OS package "prometheus" (Debian/Ubuntu: /usr/bin/promtool); elsewhere, install it yourself.
## The package also ships the Prometheus server; the tests only run promtool.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
promtool:
	@if command -v promtool >/dev/null 2>&1; then :; \
	elif [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing promtool: apt-get install prometheus (the Debian package that ships it)"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	else \
	  echo "promtool is missing and this is not Debian/Ubuntu: install your OS's prometheus package" >&2; \
	  echo "(or a Prometheus release tarball) so that promtool is on PATH, then run make test again" >&2; \
	  exit 1; \
	fi
	@promtool --version | head -1

stack-up: $(STAMP)
	$(SEGFLOW) stack up

stack-down:
	@if [ -x $(SEGFLOW) ]; then $(SEGFLOW) stack down; fi

## The main job, end to end on the local stack.
demo: stack-up
	$(SEGFLOW) demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## Every test but the long chaos scenarios: of tests/chaos only the reduced set (chaos_ci).
pytest: stack-up promtool
	$(BIN)/pytest -m "not chaos or chaos_ci"

## The whole chaos suite (tests/chaos, README "Chaos suite"): real JVMs and processes killed,
## frozen and restarted; ends with the table of every scenario's figures. Not for CI.
chaos: stack-up
	$(BIN)/pytest -s -m chaos tests/chaos

## The whole suite: venv + install, stack up, ruff, mypy --strict, pytest.
test: lint typecheck pytest

## segflow consume vs Kafka Connect + Camel CQL sink vs the Java driver's batched ceiling
## (README "Benchmarks", Peer). Minutes, not for CI; BENCH_PEER_ROWS sets the rows per run.
BENCH_PEER_ROWS ?= 250000
.PHONY: bench-peer
bench-peer: stack-up
	eval "$$($(SEGFLOW) stack env)" && $(SEGFLOW) db migrate && \
	  $(BIN)/python -m bench.bench_peer --rows $(BENCH_PEER_ROWS)

clean: stack-down
	rm -rf $(VENV) .segflow .mypy_cache .ruff_cache .pytest_cache .hypothesis
