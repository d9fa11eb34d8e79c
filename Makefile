# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   runs the demo pipeline under `runtime serve` on the embedded server
#   make test   runs every check: ruff, mypy --strict, the whole pytest suite
# Each creates .venv and installs what it needs the first time (and again when pyproject changes).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/runtime serve services.demo:app

lint: $(STAMP)
	$(BIN)/ruff check src tests services bench
	$(BIN)/ruff format --check src tests services bench

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest exits 5 when it collects no test: that is not a failure of the suite
pytest: $(STAMP)
	$(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) .gristmill .mypy_cache .ruff_cache .pytest_cache
