# The two commands of the README: `make demo` and `make test`.
# Both create the virtual environment .venv (Python 3.11) and install the project
# from its own files; re-running skips the install while pyproject.toml is unchanged.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) run_pipeline.py demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) run_pipeline.py bench triangulation

clean:
	rm -rf $(VENV) out
