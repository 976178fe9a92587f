"""Turn a GPU run's saved sweeps and test results into the course's GPU reference and its record.

`tools/gpu_run.sh` (`make gpu-run`) calls this last. It reads every sweep that `tc.bench` saved
(TORCHCOURSE_SAVE_BENCH) and the JUnit files of the test runs, and with ``--write``

- writes ``src/torchcourse/data/gpu-reference.json``: ``{"meta": {...}, "sweeps": {label: sweep}}``, the
  recorded numbers that CPU-only machines show beside their own ("recorded, not measured here"). A run
  merges into what is there (each sweep keeps its own environment), so a short run of one chapter
  replaces that chapter's sweeps and keeps the others;
- replaces the "Latest recorded run" section of ``docs/gpu-runs.md`` (between its markers) with the
  run's environment, test results and a summary of every sweep.

Without ``--write`` it prints what it would write. Numbers are copied, never typed in.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from torchcourse.bench import REFERENCE_FILE, BenchResult  # noqa: E402

DOC = ROOT / "docs" / "gpu-runs.md"
START, END = "<!-- gpu-run:start -->", "<!-- gpu-run:end -->"


def load_sweeps(folder: Path) -> dict[str, BenchResult]:
    """Every saved sweep that timed CUDA, by label (the overlay's key)."""
    sweeps = {}
    for path in sorted(folder.glob("*.json")):
        result = BenchResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
        if "cuda" in result.timings:
            sweeps[result.label] = result
    return sweeps


def junit_results(paths: list[Path]) -> dict[str, object]:
    """Counts and failed test ids from JUnit XML files (missing files count as a failed step)."""
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "failed": [], "missing": []}
    for path in paths:
        if not path.is_file():
            totals["missing"].append(path.name)
            continue
        for case in ET.parse(path).getroot().iter("testcase"):
            totals["tests"] += 1
            for kind in ("failure", "error", "skipped"):
                if case.find(kind) is not None:
                    totals["failures" if kind == "failure" else "errors" if kind == "error" else "skipped"] += 1
                    if kind != "skipped":
                        totals["failed"].append(f"{case.get('classname', '')}::{case.get('name', '')}")
    return totals


def reference(sweeps: dict[str, BenchResult], environment: str) -> dict[str, object]:
    """The reference file's content: the run's environment once, then every sweep."""
    first = next(iter(sweeps.values()))
    meta = {k: first.meta[k] for k in ("gpu", "torch", "cuda", "date", "preset") if k in first.meta}
    meta["environment"] = environment.strip()
    meta["note"] = "recorded by make gpu-run; shown on machines without CUDA as recorded, not measured there"
    return {"meta": meta, "sweeps": {label: sweeps[label].to_dict() for label in sorted(sweeps)}}


def record(ref: dict[str, object], results: dict[str, object], seconds: int | None) -> str:
    """The Markdown of the "Latest recorded run" section."""
    meta = ref["meta"]
    passed = results["tests"] - results["failures"] - results["errors"] - results["skipped"]
    lines = [
        START,
        "## Latest recorded run",
        "",
        f"Written by `tools/gpu_reference.py` at the end of `make gpu-run` on {meta.get('date', '?')}: "
        f"{meta.get('gpu', '?')}, torch {meta.get('torch', '?')}, CUDA {meta.get('cuda', '?')}, "
        f"{meta.get('preset', '?')} preset" + (f", {seconds} s in all." if seconds is not None else "."),
        "",
        "```",
        str(meta.get("environment", "")),
        "```",
        "",
        f"Tests (strict nbval on every lesson and solution, and the package tests): {passed} passed, "
        f"{results['failures']} failed, {results['errors']} errors, {results['skipped']} skipped"
        + (f"; no results from {', '.join(results['missing'])}" if results["missing"] else "") + ".",
    ]
    lines += [f"- failed: `{name}`" for name in results["failed"]]
    lines += ["", "| sweep | sizes | cuda ms at the largest | GPU/CPU speed-up at the CPU's largest |",
              "| --- | --- | --- | --- |"]
    for label, data in ref["sweeps"].items():
        result = BenchResult.from_dict(data)
        speedup = result.speedup()  # where both were timed: the CPU's column may stop earlier (bench.CPU_MAX)
        at = f" (at {result.sizes_on('cpu')[-1]:,})" if speedup and len(speedup) < len(result.sizes) else ""
        lines.append(f"| {label} | {', '.join(f'{n:,}' for n in result.sizes)} | "
                     f"{result.timings['cuda'][-1].median * 1e3:.4g} | "
                     f"{f'{speedup[-1]:.2f}x{at}' if speedup else '-'} |")
    lines += ["", f"The sweeps, with their environment, are in `{REFERENCE_FILE.relative_to(ROOT)}`.", END]
    return "\n".join(lines)


def replace_section(doc: str, section: str) -> str:
    """The document with its marked section replaced (or appended when it has none)."""
    if START in doc and END in doc:
        head, rest = doc.split(START, 1)
        return head + section + rest.split(END, 1)[1]
    return doc.rstrip("\n") + "\n\n" + section + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=Path, required=True, help="the folder TORCHCOURSE_SAVE_BENCH named")
    parser.add_argument("--environment", type=Path, help="nvidia-smi and torch versions, as gpu_run.sh saved them")
    parser.add_argument("--junit", type=Path, nargs="*", default=[], help="JUnit XML files of the test steps")
    parser.add_argument("--seconds", type=int, help="how long the run took")
    parser.add_argument("--reference", type=Path, default=REFERENCE_FILE, help="where to write the reference")
    parser.add_argument("--doc", type=Path, default=DOC, help="the record to update")
    parser.add_argument("--write", action="store_true", help="write the files (default: print them)")
    parser.add_argument("--copy-to", type=Path, help="also copy both written files into this folder")
    args = parser.parse_args(argv)
    sweeps = load_sweeps(args.sweeps)
    if not sweeps:
        print(f"no sweep with CUDA timings in {args.sweeps}: was this a CUDA machine?", file=sys.stderr)
        return 1
    environment = args.environment.read_text(encoding="utf-8") if args.environment else ""
    ref = reference(sweeps, environment)
    if args.reference.is_file():  # merge: sweeps this run did not time stay as they were recorded
        kept = json.loads(args.reference.read_text(encoding="utf-8")).get("sweeps", {})
        ref["sweeps"] = {label: data for label, data in sorted({**kept, **ref["sweeps"]}.items())}
    section = record(ref, junit_results(args.junit), args.seconds)
    text = json.dumps(ref, indent=1, sort_keys=True) + "\n"
    if not args.write:
        print(section)
        print(f"(would write {len(sweeps)} sweeps to {args.reference})")
        return 0
    args.reference.parent.mkdir(parents=True, exist_ok=True)
    args.reference.write_text(text, encoding="utf-8")
    args.doc.write_text(replace_section(args.doc.read_text(encoding="utf-8"), section), encoding="utf-8")
    if args.copy_to:
        for path in (args.reference, args.doc):
            shutil.copy(path, args.copy_to / path.name)
    print(section)
    print(f"wrote {len(sweeps)} sweeps ({len(ref['sweeps'])} in all) to {args.reference} and the record to {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
