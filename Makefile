# Quick start: `make demo` (evaluate the pretrained models offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The real datasets: $ZOO_DATA_ROOT, else ../shared/datasets beside the checkout when it exists.
ZOO_DATA_ROOT ?= $(wildcard $(abspath ../shared/datasets))
export ZOO_DATA_ROOT

.PHONY: demo test verify readme bench

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-extras.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $@

demo: $(VENV)/.installed
	ZOO_OFFLINE=1 HF_HUB_OFFLINE=1 $(PY) -m zoo.demo

test: $(VENV)/.installed
	$(PY) -m ruff check zoo training benchmarks tests hubconf.py setup.py
	$(PY) -m mypy zoo training
	$(PY) -m pytest -q tests

verify: $(VENV)/.installed
	$(PY) -m zoo verify

readme: $(VENV)/.installed
	$(PY) -m training.readme_table

bench: $(VENV)/.installed
	$(PY) benchmarks/load_time.py
