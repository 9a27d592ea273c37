# Two commands do all the set-up on a fresh machine:
#   make demo   -> creates .venv if missing, installs torchscope, runs `torchscope tree resnet18`
#   make test   -> creates .venv if missing, installs torchscope[test,docs], runs the whole test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.torchscope-installed
# The versions this project is tested with; pip takes them from the local wheel cache when present.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: demo test lint bench docs clean

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[test,docs]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/torchscope tree resnet18

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check torchscope tests benchmarks examples scripts
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/bench_overhead.py

docs: $(STAMP)
	$(PY) scripts/gen_cli_docs.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
