# rellm: one-command setup, tests, demo and lint.
#   make test    create tools/venv when needed (make install), then run the test suite (all but the e2e runs)
#   make test-e2e  the whole-recipe runs (mini fast configuration, paper-recipe dry runs) and the web demo in a
#                  headless browser (test/demo); CI runs both
#   make demo    run the mini recipe (egs/mini/run.sh) end to end on CPU
#   make install create/update tools/venv (idempotent) and write tools/activate_python.sh
#   make lint    ruff on the package, tools and tests
#   make check   print versions, CUDA/bf16 and the optional pieces found (tools/check_install.py)
# Variables: PYTHON=python3.11 (interpreter for the venv), PYTEST_ARGS="-x -k slurm" (extra pytest args).

SHELL := /bin/bash
VENV := tools/venv
PYTEST_MARKS ?= not e2e
PYTEST_ARGS ?=

.PHONY: install test test-e2e demo lint check clean-venv

install:
	tools/install_venv.sh

test: install
	@$(VENV)/bin/python -m pytest -m "$(PYTEST_MARKS)" $(PYTEST_ARGS) test/ || { rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit code 5)" >&2; fi; exit $$rc; }

test-e2e: install
	@$(VENV)/bin/python -m pytest -m e2e $(PYTEST_ARGS) test/

demo: install
	@cd egs/mini && ./run.sh || { rc=$$?; \
	  echo "make demo: egs/mini/run.sh stopped (exit code $$rc); the messages above say at which stage and why." >&2; \
	  exit $$rc; }

lint: install
	$(VENV)/bin/ruff check rellm tools test bench

check: install
	$(VENV)/bin/python tools/check_install.py

clean-venv:
	rm -rf $(VENV) tools/activate_python.sh
