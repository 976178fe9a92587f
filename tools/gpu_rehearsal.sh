#!/usr/bin/env bash
# `make gpu-rehearsal` (part of `make test-matrix`): the GPU procedure of docs/gpu-runs.md, proven on a CPU.
#
# A bare Python 3.12 venv stands in for the GPU machine's image: torch 2.11.0 / torchvision 0.26.0 and the
# packages that image is known to hold, without Jupyter, nbval or ipywidgets. Then, as on the GPU machine:
# the course's wheels (tools/gpu_wheels.sh) installed with `pip install --target`, PYTHONPATH as documented,
# and tools/gpu_run.sh run twice:
#   1. as is: the preflight passes and the run stops with its "no CUDA" message (exit 2), writing nothing;
#   2. GPU_RUN_ALLOW_CPU=1 with the first-lease plan (chapter 05) on a sample (one timed lesson, the solution, one
#      test file; REHEARSAL_NOTEBOOKS / REHEARSAL_TESTS choose others): every step runs and passes on the CPU, and
#      everything it writes is in GPU_RUN_DIR, within what the device tool hands back (8 files, 1 folder down).
# The venv is kept in $TORCHCOURSE_MATRIX_DIR (default ~/.cache/torchcourse/matrix) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
matrix=${TORCHCOURSE_MATRIX_DIR:-$HOME/.cache/torchcourse/matrix}
venv=$matrix/gpu-image
image=(torch==2.11.0 torchvision==0.26.0 pytest pytest-xdist coverage matplotlib tensorboard tqdm numpy pillow
       scikit-learn torchmetrics jinja2 pygments attrs python-dateutil psutil packaging pyyaml)
stamp="${image[*]}"
if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
  command -v pyenv >/dev/null || { echo "gpu-rehearsal: needs pyenv with Python 3.12 (pyenv install 3.12)" >&2; exit 1; }
  version=$(pyenv versions --bare | grep -E '^3\.12\.[0-9]+$' | sort -V | tail -n 1)
  [ -n "$version" ] || { echo "gpu-rehearsal: pyenv has no Python 3.12: run 'pyenv install 3.12'" >&2; exit 1; }
  echo "gpu-rehearsal: building $venv (Python $version and the image's packages)"
  "$(pyenv prefix "$version")/bin/python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --progress-bar off "${image[@]}" 2>&1 | { grep -v 'is ignored' || true; }
  echo "$stamp" > "$venv/.stamp"
fi
[ -d .whl ] || tools/gpu_wheels.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/torchcourse-rehearsal-XXXXXX")
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" -m pip install -q --no-index --no-deps --no-compile --target "$work/site" .whl/*.whl
export PYTHONPATH=$work/site:$PWD/src PYTHON=$venv/bin/python
"$PYTHON" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("nbval") is None or "site" not in u.find_spec("nbval").origin)' \
  || { echo "gpu-rehearsal: nbval does not come from the wheels" >&2; exit 1; }

echo "== rehearsal 1/2: the run as a GPU machine starts it, here without CUDA"
set +e
GPU_RUN_DIR=$work/refused GPU_RUN_PLAN=ch05 tools/gpu_run.sh > "$work/refused.log" 2>&1
rc=$?
set -e
cat "$work/refused.log"
[ "$rc" = 2 ] && grep -q "preflight passed" "$work/refused.log" && grep -q "no CUDA device here" "$work/refused.log" \
  && [ ! -e "$work/refused" ] || { echo "gpu-rehearsal: expected the preflight to pass and the run to stop (rc $rc)" >&2; exit 1; }

# Every step of the plan, on a sample of it: each lesson already passes on this torch in the matrix's gpu entry,
# so a timed lesson, the chapter's solution and one package test file prove the steps and where results land.
echo "== rehearsal 2/2: the first-lease plan (chapter 05, a sample) on the CPU"
GPU_RUN_DIR=$work/out GPU_RUN_PLAN=ch05 GPU_RUN_ALLOW_CPU=1 JOBS=2 \
  GPU_RUN_NOTEBOOKS="${REHEARSAL_NOTEBOOKS-notebooks/05_gpu/06_benchmarking.ipynb solutions/05_gpu.ipynb}" \
  GPU_RUN_TESTS="${REHEARSAL_TESTS-tests/test_bench.py}" tools/gpu_run.sh
files=$(find "$work/out" -type f | wc -l)
deep=$(find "$work/out" -mindepth 2 -type f | wc -l)
[ "$files" -le 8 ] && [ "$deep" = 0 ] || { echo "gpu-rehearsal: $files files, $deep in subfolders" >&2; exit 1; }
echo "gpu-rehearsal: passed ($files files in GPU_RUN_DIR: $(ls "$work/out" | tr '\n' ' '))"
