# qkdn — one command per job. Every target installs what it needs first (make setup).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEB_PACKAGES := libyang2-dev libyang2-tools yangcli gcc python3-dev python3-venv libffi-dev openssh-client
# Only the tests need a browser (the dashboard is checked in headless Chromium).
TEST_DEB_PACKAGES := chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.qkdn-installed
PYTEST_ARGS ?=

.PHONY: setup test-deps test demo bench reliability lint clean

setup: $(STAMP)

# Debian packages only when missing; then the venv with the project editable + test extras.
$(STAMP): pyproject.toml
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test,plot]'
	@touch $(STAMP)

test-deps:
	@missing=""; for p in $(TEST_DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for the tests:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

test: setup test-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/qkdn demo

bench: setup
	$(PY) -m bench.run --out bench/report.json

reliability: setup
	$(PY) -m pytest -q -m "slow or not slow" tests/reliability

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy qkdn qkd_agent kms sdn_controller orchestrator qkd_twin

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
