# torchcourse: `make lab` to learn, `make test` to check everything. See README.md.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.torchcourse-installed
JOBS   ?= auto
LAB_ARGS ?=
NOTEBOOKS := $(sort $(wildcard notebooks/*/*.ipynb))
SOLUTIONS := $(sort $(wildcard solutions/*.ipynb))
# Strict checks (a failed exercise check raises) for every run. No MPLBACKEND here: kernels keep
# Jupyter's inline backend, so executed lessons carry their figures.
RUN := TORCHCOURSE_STRICT=1 PYTHONHASHSEED=0

.PHONY: install lab test test-matrix test-portable gpu-rehearsal test-browser gpu-run lint execute tidy grade coverage check-clean clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing torch, JupyterLab and the course into $(VENV): a first install downloads about 6 GB." \
	  "One line per package below; pip's whole output goes to $(VENV)/pip.log."
	@{ $(PY) -m pip install --disable-pip-version-check --progress-bar off -e '.[dev]' 2>&1; echo $$? > $(VENV)/pip.rc; } \
	  | tee $(VENV)/pip.log | { grep -E --line-buffered '^(Collecting|Installing collected|Successfully installed)' \
	  | cut -c1-120 || true; }
	@test "$$(cat $(VENV)/pip.rc)" = 0 || { grep -v 'is ignored' $(VENV)/pip.log; exit 1; }
	$(PY) -c 'import torch, torchvision, nbval, torchcourse'
	$(PY) -m ipykernel install --sys-prefix --name torchcourse --display-name 'Python (torchcourse)' >/dev/null
	touch $(STAMP)

# Opens the course home (index.ipynb) rendered, in the learner's working copy my-course/ (git-ignored, brought up
# to date on every start: src/torchcourse/workcopy.py; LAB_ARGS=--in-place serves the checkout). Kernels talk over
# local IPC sockets, not TCP (no "Kernel is running over TCP without encryption" warning per notebook). Closing a
# tab shuts its kernel down (0.4-0.9 GB a lesson), and the server shuts down kernels that no tab uses after
# CULL_IDLE_S seconds idle (0 turns culling off; kernels with a tab open are never culled).
# `torchcourse lab` (src/torchcourse/commands.py) builds the command line; Windows runs it without make.
CULL_IDLE_S ?= 900
lab: install
	$(VENV)/bin/torchcourse lab --cull-idle $(CULL_IDLE_S) $(LAB_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests tools notebooks exercises solutions index.ipynb conftest.py
	$(PY) tools/check_portable.py

# The notebooks run with the API tracer on (records in a temporary folder); then the coverage gate
# (tests/test_coverage.py) reads every kernel's records: it needs the whole run, so it runs second.
# `torchcourse test` (src/torchcourse/commands.py) runs the lint, then this, the same on every platform.
test: install
	$(VENV)/bin/torchcourse test --jobs $(JOBS)

# Every cell can be run again (docs/authoring.md): each code cell twice in a row, then Run All once more in the
# same kernel, for every lesson and solution (or RERUN_ARGS=NB.ipynb), RERUN_JOBS kernels at a time (tools/rerun.py).
.PHONY: test-rerun
test-rerun: install
	$(RUN) $(PY) tools/rerun.py --slowest 5 $(RERUN_ARGS)

# Other platforms, simulated: Google Colab (tests/platforms: the notebooks' setup cell installs the course in a venv
# without it, where google.colab is a stub); macOS and Windows, whose workers start with spawn (the lessons and the
# exercise that start processes, strictly, with TORCHCOURSE_START_METHOD=spawn).
SPAWNED := notebooks/04_data/02_dataloader.ipynb notebooks/05_gpu/05_multi_gpu_and_ddp.ipynb solutions/04_data.ipynb
.PHONY: test-platforms
test-platforms: install
	$(PY) -m pytest -p no:cacheprovider -q -rs tests/platforms
	TORCHCOURSE_START_METHOD=spawn $(RUN) $(PY) -m pytest -p no:cacheprovider -q -n 2 --dist loadscope \
	  --nbval --nbval-current-env --nbval-sanitize-with nbval-sanitize.cfg $(SPAWNED)

# JupyterLab driven by headless Chromium (tests/browser; needs /usr/bin/chromium or TORCHCOURSE_CHROMIUM).
test-browser: install
	$(PY) -m pytest -p no:cacheprovider -q -rs tests/browser

# The version matrix (tools/matrix.py, docs/authoring.md "The portable rule"): the whole strict suite in one venv
# per entry, each also simulating a machine: floor = Python 3.10 + the lowest torch admitted, one thread,
# scalar kernels, CUDA hidden; gpu = Python 3.12 + torch 2.11 (the GPU machine's pair), AVX2, three threads;
# newest = Python 3.13 + the newest torch pip admits. Venvs live in ~/.cache/torchcourse/matrix, reused while
# pyproject.toml is unchanged. MATRIX=floor runs one entry. Then the GPU procedure, rehearsed on the CPU.
MATRIX ?=
test-matrix: install
	$(PY) tools/matrix.py $(MATRIX) --jobs $(JOBS)
	tools/gpu_rehearsal.sh

# The old name: its two simulated machines are the matrix's floor and gpu entries now.
test-portable: test-matrix

gpu-rehearsal:
	tools/gpu_rehearsal.sh

# On a CUDA machine: the whole suite strictly, every sweep saved, the GPU reference written (docs/gpu-runs.md).
# No install: GPU machines may lack a package index (PYTHON=python3 with PYTHONPATH=/tmp/site:$$PWD/src).
# GPU_RUN_PLAN=ch05 runs chapter 05 alone (a first, short lease); GPU_RUN_DIR gets every result.
gpu-run:
	PYTHON="$(if $(wildcard $(PY)),$(PY),$(PYTHON))" tools/gpu_run.sh

execute: install
	for nb in $(NOTEBOOKS) $(SOLUTIONS); do \
	  $(RUN) $(VENV)/bin/jupyter nbconvert --log-level=WARN --to notebook --execute --inplace \
	    --ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.timeout=600 "$$nb" || exit 1; \
	done
	$(PY) tools/tidy_notebooks.py

# Re-executes the timed lessons one at a time, alone on a quiet machine, keeping only quiet tables (tools/record.py;
# RECORD_ARGS=NB.ipynb for one). Stop everything else first: a browser, a suite, a helper session.
.PHONY: record
record: install
	$(PY) tools/record.py $(RECORD_ARGS)

tidy: install
	$(PY) tools/tidy_notebooks.py

# Grades the saved notebooks; below full marks it ends with a plain line and exits 1 (for CI).
grade: install
	@$(VENV)/bin/torchcourse grade $(NOTEBOOK)

# Runs the lessons with the tracer (nbval, lax) and prints the coverage table; COVERAGE_ARGS=--html FILE adds a page.
coverage: install
	$(VENV)/bin/torchcourse coverage --run --jobs $(JOBS) $(COVERAGE_ARGS)

# The suite must leave no files behind: notebooks write only to temporary folders.
check-clean:
	@test -z "$$(git status --porcelain)" || { echo "the working tree changed:"; git status --short; exit 1; }

clean:
	rm -rf $(VENV) .ruff_cache build src/*.egg-info
