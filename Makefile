# The two commands a new machine needs: `make run` and `make test`. Each builds the virtualenv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test services

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# The CPU build of torch; a looser pin would download a multi-GB CUDA build.
	$(VENV)/bin/pip install -q torch==2.13.0
	# `distributed` (Ray Serve, ~335 MB) so the replica tests run instead of skipping
	$(VENV)/bin/pip install -q -e '.[test,distributed]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/flywheel up $(ARGS)

services:
	bash scripts/ensure_services.sh

test: $(STAMP) services
	$(PY) -m pytest -q -m "not gpu" $(ARGS)
