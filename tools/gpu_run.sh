#!/usr/bin/env bash
# The prepared GPU run (`make gpu-run`), for a CUDA machine (docs/gpu-runs.md says how to run it there).
#
#  0. preflight: every module the suite imports is importable, and pytest collects the chosen notebooks
#     (nbval's plugin loads); then the CUDA check, which stops the run with exit 2 where there is none;
#  1. the timed lessons (every chosen notebook that calls tc.bench or tc.compare: tools/rerun.py's TIMED) one at
#     a time, chapter 05 first,
#     strictly against the committed outputs, saving every sweep as JSON (TORCHCOURSE_SAVE_BENCH);
#  2. the rest of the chosen notebooks and the package tests, strictly, in parallel;
#  3. tools/gpu_reference.py: merges the run's sweeps into src/torchcourse/data/gpu-reference.json and
#     writes the run's record into docs/gpu-runs.md.
#
# Everything the run writes lands in one folder, GPU_RUN_DIR (at most 8 files, none deeper than one folder,
# so that a machine that hands back a single folder hands back all of it): environment.txt, run.log,
# junit-timed.xml, junit-rest.xml, sweeps.tar.gz, and copies of gpu-reference.json and gpu-runs.md.
#
# Settings: PYTHON (default python3); JOBS (parallel workers in step 2, default 4); GPU_RUN_DIR (default a
# new temporary folder); GPU_RUN_PLAN: "all" (default, about 6-9 min on one H100) or "ch05" (chapter 05,
# its solutions and its package tests: about 3 min, for a first short lease); GPU_RUN_NOTEBOOKS /
# GPU_RUN_TESTS (any other selection: notebook globs, package test paths, "" for none); GPU_RUN_LIMIT
# (seconds per step, default 270: a step that runs over is interrupted and still writes its JUnit file);
# GPU_RUN_ALLOW_CPU=1 (a rehearsal: run the steps on a machine without CUDA, and write no reference).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
JOBS=${JOBS:-4}
LIMIT=${GPU_RUN_LIMIT:-270}
PLAN=${GPU_RUN_PLAN:-all}
started=$(date +%s)

case "$PLAN" in
  all) notebooks_default="notebooks/*/*.ipynb solutions/*.ipynb"; tests_default="tests" ;;
  ch05) notebooks_default="notebooks/05_gpu/*.ipynb solutions/05_gpu.ipynb"
        tests_default="tests/test_devices.py tests/test_bench.py tests/test_bench_accelerator.py tests/test_workloads.py tests/test_distributed.py tests/test_checks_gpu.py tests/test_gpu_run.py" ;;
  *) echo "gpu-run: GPU_RUN_PLAN is 'all' or 'ch05', not '$PLAN'" >&2; exit 2 ;;
esac

# 0. Preflight. Each module here is imported by nbval, the kernels or a lesson; a missing one would stop
# every pytest step at start-up (nbval imports coverage) or fail lessons one by one.
missing=$("$PYTHON" - <<'PY'
import importlib.util as u
need = ["torch", "torchvision", "pytest", "nbval", "coverage", "ipykernel", "jupyter_client", "nbformat", "nbclient",
        "matplotlib", "tensorboard", "tqdm", "ipywidgets", "sklearn", "torchmetrics", "numpy", "PIL", "torchcourse"]
print(" ".join(m for m in need if u.find_spec(m) is None))
PY
)
if [ -n "$missing" ]; then
  echo "gpu-run: missing $missing; install the course's wheels (docs/gpu-runs.md: tools/gpu_wheels.sh," \
       "pip install --target /tmp/site, PYTHONPATH=/tmp/site:\$PWD/src)." >&2
  exit 2
fi
NBVAL=(--nbval --nbval-current-env --nbval-sanitize-with nbval-sanitize.cfg)
mapfile -t chosen < <(ls ${GPU_RUN_NOTEBOOKS:-$notebooks_default} | sort)
read -r -a tests <<< "${GPU_RUN_TESTS-$tests_default}"
if ! collected=$("$PYTHON" -m pytest -p no:cacheprovider -q --collect-only "${NBVAL[@]}" "${chosen[@]}" \
                 ${tests[@]+"${tests[@]}"} 2>&1 | tail -n 1); then
  echo "gpu-run: pytest could not collect the run: $collected" >&2
  exit 2
fi
echo "gpu-run: preflight passed (${collected})"

if [ "${GPU_RUN_ALLOW_CPU:-}" != 1 ] && \
   ! "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu-run: no CUDA device here (torch.cuda.is_available() is False); nothing to record." >&2
  exit 2
fi
OUT=${GPU_RUN_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/torchcourse-gpu-run-XXXXXX")}
mkdir -p "$OUT"
sweeps=$(mktemp -d "${TMPDIR:-/tmp}/torchcourse-sweeps-XXXXXX")
trap 'rm -rf "$sweeps"' EXIT
exec > >(tee -a "$OUT/run.log") 2>&1
xdist=$("$PYTHON" -c 'import importlib.util as u; print("yes" if u.find_spec("xdist") else "")')
parallel=()
[ -n "$xdist" ] && parallel=(-n "$JOBS" --dist loadscope)

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
  "$PYTHON" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "CUDA", torch.version.cuda,
"GPUs", torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "(none: a CPU rehearsal)")'
  echo "plan $PLAN: ${#chosen[@]} notebooks, tests: ${tests[*]:-none}; preflight: $collected"
} | tee "$OUT/environment.txt"

# Strict, as make test runs it; the recorded overlay is off so that the run measures and compares only itself.
export TORCHCOURSE_STRICT=1 PYTHONHASHSEED=0 TORCHCOURSE_GPU_REFERENCE=
# Chapter 05's timed lessons first: the sweeps the GPU reference exists for are never the ones a cap cuts.
mapfile -t timed < <(grep -lE 'tc\.(bench|compare)\(' "${chosen[@]}" | sort \
                     | awk '{print (index($0, "05_gpu") ? 0 : 1) "\t" $0}' | sort -s -k1,1 | cut -f2)
mapfile -t rest < <(printf '%s\n' "${chosen[@]}" | grep -vxF -f <(printf '%s\n' "${timed[@]}" ""))
# A step over its limit gets SIGINT, so pytest stops like after Ctrl-C and still writes its JUnit file.
capped() { timeout -s INT -k 30 "$LIMIT" "$@"; }

echo "== 1/3: ${#timed[@]} timed notebooks, one at a time, chapter 05 first"
TORCHCOURSE_SAVE_BENCH="$sweeps" capped "$PYTHON" -m pytest -p no:cacheprovider -q -rfE "${NBVAL[@]}" \
  --junitxml="$OUT/junit-timed.xml" ${timed[@]+"${timed[@]}"}
timed_rc=$?
[ "${#timed[@]}" = 0 ] && timed_rc=0

echo "== 2/3: ${#rest[@]} other notebooks and the package tests${xdist:+, $JOBS in parallel}"
capped "$PYTHON" -m pytest -p no:cacheprovider -q -rfE ${parallel[@]+"${parallel[@]}"} "${NBVAL[@]}" \
  --junitxml="$OUT/junit-rest.xml" ${rest[@]+"${rest[@]}"} ${tests[@]+"${tests[@]}"}
rest_rc=$?
tar -czf "$OUT/sweeps.tar.gz" -C "$sweeps" .

echo "== 3/3: the GPU reference and the record"
if [ "${GPU_RUN_ALLOW_CPU:-}" = 1 ] && ! "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "a CPU rehearsal: no CUDA sweeps, so no reference is written"
  ref_rc=0
else
  "$PYTHON" tools/gpu_reference.py --sweeps "$sweeps" --environment "$OUT/environment.txt" \
    --junit "$OUT/junit-timed.xml" "$OUT/junit-rest.xml" --seconds $(( $(date +%s) - started )) --write \
    --copy-to "$OUT"
  ref_rc=$?
fi

echo "gpu-run: timed notebooks rc=$timed_rc, the rest rc=$rest_rc, reference rc=$ref_rc; everything is in $OUT"
echo "Commit src/torchcourse/data/gpu-reference.json and docs/gpu-runs.md (copies are in $OUT); then fix what failed."
[ "$timed_rc" = 0 ] && [ "$rest_rc" = 0 ] && [ "$ref_rc" = 0 ]
