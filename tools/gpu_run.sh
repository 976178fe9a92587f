#!/usr/bin/env bash
# The prepared GPU run (`make gpu-run`), for a CUDA machine; about 5-8 minutes on one H100/H200.
#
#  1. the timed lessons (every notebook that calls tc.bench) one at a time, strictly against the committed
#     outputs, saving every sweep as JSON with its environment (TORCHCOURSE_SAVE_BENCH);
#  2. the rest of the suite (lessons, solutions, package tests) strictly, in parallel;
#  3. tools/gpu_reference.py: writes src/torchcourse/data/gpu-reference.json (the overlay CPU-only
#     machines show beside their numbers) and the run's record in docs/gpu-runs.md.
#
# Works where Jupyter/nbval are missing if their wheels are on PYTHONPATH (docs/gpu-runs.md):
#     PYTHONPATH=/tmp/site:$PWD/src PYTHON=python3 tools/gpu_run.sh
# Settings: PYTHON (default python3), JOBS (parallel workers for step 2, default 4),
# GPU_RUN_DIR (logs and sweeps; default a temporary folder), GPU_RUN_LIMIT (seconds per step, default 270),
# GPU_RUN_NOTEBOOKS / GPU_RUN_TESTS (a smaller run: notebook globs, package test paths).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
JOBS=${JOBS:-4}
LIMIT=${GPU_RUN_LIMIT:-270}
started=$(date +%s)

if ! "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu-run: no CUDA device here (torch.cuda.is_available() is False); nothing to record." >&2
  exit 2
fi
missing=$("$PYTHON" -c 'import importlib.util as u; print(" ".join(m for m in ("nbval", "ipykernel", "pytest", "torchcourse") if not u.find_spec(m)))')
if [ -n "$missing" ]; then
  echo "gpu-run: missing $missing; see docs/gpu-runs.md (fetch-wheels.sh, PYTHONPATH=/tmp/site:\$PWD/src)." >&2
  exit 2
fi
OUT=${GPU_RUN_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/torchcourse-gpu-run-XXXXXX")}
mkdir -p "$OUT/sweeps"
xdist=$("$PYTHON" -c 'import importlib.util as u; print("yes" if u.find_spec("xdist") else "")')
parallel=()
[ -n "$xdist" ] && parallel=(-n "$JOBS" --dist loadscope)

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPUs", torch.cuda.device_count(), torch.cuda.get_device_name(0))'
} | tee "$OUT/environment.txt"

# Strict, as make test runs it; the recorded overlay is off so that the run measures and compares only itself.
export TORCHCOURSE_STRICT=1 PYTHONHASHSEED=0 TORCHCOURSE_GPU_REFERENCE=
NBVAL=(--nbval --nbval-current-env --nbval-sanitize-with nbval-sanitize.cfg)
# GPU_RUN_NOTEBOOKS narrows the run (to rerun what failed, say); GPU_RUN_TESTS the package tests ("" for none).
mapfile -t chosen < <(ls ${GPU_RUN_NOTEBOOKS:-notebooks/*/*.ipynb solutions/*.ipynb} | sort)
mapfile -t timed < <(grep -l 'tc\.bench(' "${chosen[@]}" | sort)
mapfile -t rest < <(printf '%s\n' "${chosen[@]}" | grep -vxF -f <(printf '%s\n' "${timed[@]}" ""))
read -r -a tests <<< "${GPU_RUN_TESTS-tests}"

echo "== 1/3: ${#timed[@]} timed notebooks, one at a time (sweeps to $OUT/sweeps)"
TORCHCOURSE_SAVE_BENCH="$OUT/sweeps" timeout "$LIMIT" "$PYTHON" -m pytest -p no:cacheprovider -q -rfE "${NBVAL[@]}" \
  --junitxml="$OUT/junit-timed.xml" \
  "${timed[@]}" 2>&1 | tee "$OUT/pytest-timed.log"
timed_rc=${PIPESTATUS[0]}

echo "== 2/3: ${#rest[@]} other notebooks and the package tests${xdist:+, $JOBS in parallel}"
timeout "$LIMIT" "$PYTHON" -m pytest -p no:cacheprovider -q -rfE ${parallel[@]+"${parallel[@]}"} "${NBVAL[@]}" \
  --junitxml="$OUT/junit-rest.xml" "${rest[@]}" ${tests[@]+"${tests[@]}"} 2>&1 | tee "$OUT/pytest-rest.log"
rest_rc=${PIPESTATUS[0]}

echo "== 3/3: the GPU reference and the record"
"$PYTHON" tools/gpu_reference.py --sweeps "$OUT/sweeps" --environment "$OUT/environment.txt" \
  --junit "$OUT/junit-timed.xml" "$OUT/junit-rest.xml" --seconds $(( $(date +%s) - started )) --write
ref_rc=$?

echo "gpu-run: timed notebooks rc=$timed_rc, the rest rc=$rest_rc, reference rc=$ref_rc; logs in $OUT"
echo "Commit src/torchcourse/data/gpu-reference.json and docs/gpu-runs.md; then fix what failed."
[ "$timed_rc" = 0 ] && [ "$rest_rc" = 0 ] && [ "$ref_rc" = 0 ]
