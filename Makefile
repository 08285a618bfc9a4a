# The two commands of the README: `make demo` and `make test`.
# Both create the virtual environment .venv (Python 3.11) and install the project
# from its own files; re-running skips the install while pyproject.toml is unchanged.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup setup-mmpose setup-bodymodel demo test lint format browser bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-nodeps.txt requirements-bodymodel-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-bodymodel-nodeps.txt
	touch $(STAMP)

# The fit_body_model stage's packages alone (already part of `make setup` / `make test`):
# torch 2.13.0 (CPU), smplx, trimesh, and Anny with --no-deps (no warp-lang).
setup-bodymodel:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[bodymodel]'
	$(PY) -m pip install --quiet --no-deps -r requirements-bodymodel-nodeps.txt

# Optional: the mmpose detect backend (torch, mmcv, mmengine, mmdet, mmpose). Not part
# of `make test`. mmcv has no PyPI wheel: MMCV_WHEEL (default: the CPU build in
# ../shared/wheels, when present) or install mmcv for your torch/CUDA first.
MMCV_WHEEL ?= $(wildcard ../shared/wheels/mmcv-2.1.0-cp311-cp311-linux_x86_64.whl)
setup-mmpose: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,mmpose]'
	if [ -n "$(MMCV_WHEEL)" ]; then $(PY) -m pip install --quiet --no-deps $(MMCV_WHEEL); \
	else $(PY) -c "import mmcv.ops" || { echo "mmcv 2.1.0 with ops is needed: see docs/DEPENDENCIES.md"; exit 1; }; fi
	$(PY) -m pip install --quiet --no-deps -r requirements-mmpose-nodeps.txt
	$(PY) -m pip install --quiet --no-build-isolation --no-binary xtcocotools xtcocotools
	@if $(PY) -m pip show opencv-python >/dev/null 2>&1; then \
		echo "opencv-python was installed beside opencv-python-headless (two OpenCVs in one cv2 folder): see docs/DEPENDENCIES.md"; exit 1; fi

demo: $(STAMP)
	$(PY) run_pipeline.py demo

# The QA report tests open the report in Debian's Chromium (headless); where it is
# missing and apt-get can install it (root), it is installed, else those tests skip.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		{ apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || \
		  { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; }; } && \
		echo "installed chromium"; } || echo "chromium not available: the QA report's browser tests will skip"

# ruff (lint, then the format check; configuration in pyproject.toml), then the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Rewrites the sources in the project's format (what `make lint` checks).
format: $(STAMP)
	$(VENV)/bin/ruff format .

test: $(STAMP) browser lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) run_pipeline.py bench triangulation

clean:
	rm -rf $(VENV) out
