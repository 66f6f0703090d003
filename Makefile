# chatsla: `make test` (the README's test command) and `make demo` (the run command).
# Everything is installed by these targets on a bare machine with Python 3.11, Java 17 and Maven.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test test-tools test-unit test-integration demo demo-stop audit-demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "chatsla needs Python 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# setuptools prints a boxed "Editable installation" warning for every editable install; it is
	@# about folders shadowing the package, which is the point here (imports come from the source tree)
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e '.[test,bench]'
	@touch $@

# pytest reports skipped tests and why (-ra in pyproject.toml): the browser test without Chromium
test: install test-tools
	$(BIN)/python -m pytest -q

# Debian packages the tests drive: headless Chromium (appeal pack) and Prometheus/promtool (alerts).
# Installed with apt-get as root or through passwordless sudo, never at a password prompt. Without
# Chromium the browser test is skipped (the script says what to install by hand, in one line).
test-tools:
	@bash scripts/ensure-chromium || true
	@if [ -x scripts/ensure-prometheus ]; then bash scripts/ensure-prometheus; fi

test-unit: install
	$(BIN)/python -m pytest -q --ignore=tests/integration

test-integration: install test-tools
	$(BIN)/python -m pytest -q tests/integration

# The demo also starts a local Prometheus when it can; without one it says so and goes on.
demo: install
	@bash scripts/ensure-prometheus || echo "demo: Prometheus could not be installed; the demo runs without it"
	$(BIN)/chatsla demo

demo-stop: install
	$(BIN)/chatsla demo --stop

audit-demo: install
	$(BIN)/chatsla audit samples/week.jsonl --until 2026-11-17T00:10:00Z

bench: install
	$(BIN)/python benchmarks/audit_path.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
