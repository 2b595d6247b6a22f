# The two commands a fresh clone needs (see README): `make demo` and `make test`.
# Everything else here is a building block of those two.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SEGFLOW := $(BIN)/segflow

.PHONY: demo test lint typecheck pytest stack-up stack-down install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

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

pytest: stack-up
	$(BIN)/pytest

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
