"""Find cells whose committed output probably depends on the machine (the authors' portable check).

A committed output must be the same on every machine the course supports: any core count, any CPU
instruction set, with or without a GPU, every admitted torch. A cell whose output must vary is
tagged ``nbval-ignore-output`` and asserts the truth; every other cell prints device-neutral facts.
This check reads the notebooks (it runs nothing) and flags the likely offenders, the cells with a
committed output and no ignore tag that

- branch on the machine (``if tc.cuda_available():``, ``if device != "cpu":``, a device count...),
  so one branch prints what the other does not;
- ask for a machine fact (thread count, versions, GPU name or memory, CPU capability);
- show a value made inside a ``for device in tc.DEVICES:`` loop without moving it to the CPU
  (on a GPU its repr gains ``device='cuda:0'``);
- or already show something device-specific in their committed output ("CUDA", "cuda:0", a thread count).

It also flags cells that probably fail when run a second time (docs/authoring.md, "Every cell can be
run again"), marker or not: a ``mkdir``/``makedirs`` without ``exist_ok=True`` in a cell that makes
no fresh folder (``tc.fresh_dir``, ``mkdtemp``, ``TemporaryDirectory``); an ``assert`` on a name the
cell changes in place (``n += 1``, ``seen.append(...)``) but does not make; a ``backward()`` through a
graph made in another cell; a cell that writes files and lists a folder it did not make fresh.
``make test-rerun`` holds the rule; this check points at the likely offenders before it runs.

A cell the check flags wrongly is tagged ``portable`` (cell metadata ``"tags": ["portable"]``) after
a review (``rerun-reviewed`` for the rerun findings). ``python tools/check_portable.py [paths]``
prints one line per offender and exits 1 when there is any; ``make lint`` runs it over the lessons and solutions.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
IGNORE_TAG = "nbval-ignore-output"
REVIEWED_TAG = "portable"
RERUN_REVIEWED_TAG = "rerun-reviewed"
RERUN = "run again: "  # the prefix of the rerun findings

#: Names whose value differs between machines when it reaches the output.
MACHINE_FACTS = re.compile(
    r"get_num_threads|num_threads|get_num_interop_threads|cpu_count|__version__|torch\.version|"
    r"get_device_name|get_device_properties|get_device_capability|device_count|memory_allocated|"
    r"memory_reserved|max_memory|mem_get_info|get_cpu_capability|ATEN_CPU_CAPABILITY|cudnn\.version|"
    r"environment_report|platform\.|nvidia-smi|\bsizes\(|\bpreset\(|PRESETS|"
    r"\btime_fns?\(|\bperf_counter\(|\belapsed_time\(|\btc\.bench\(|\btc\.compare\(|\btimeit\b"  # times
)
#: A condition that tells machines apart.
MACHINE_CONDITION = re.compile(
    r"cuda_available|cuda\.is_available|is_initialized|device_count|DEVICES|devices\(\)|num_threads|"
    r"__version__|torch_version|\bdevice\b|\bname\b\s*[!=]=|\.is_cuda|\.type\s*[!=]="
)
#: What a device-specific output looks like (CUDA_VISIBLE_DEVICES is only a variable's name).
MACHINE_OUTPUT = re.compile(r"cuda:\d|device='cuda|CUDA not available|not available|\bGiB\b|\bMiB\b|\d threads?\b|"
                            r"\bSMs\b|\d+\.\d+\.\d+\+|nvidia", re.IGNORECASE)
#: The loops that run once per device.
DEVICE_LOOP = re.compile(r"DEVICES|devices\(\)")
#: Calls that print or display.
SHOWING = {"print", "display", "expect_error", "expect_warning", "pprint"}
#: Calls that turn a tensor into something device-neutral before it is shown.
NEUTRAL = re.compile(r"\.(cpu|tolist|item|numpy|shape|dtype|size|stride|dim|numel|is_\w+)\b|\bstr\(|\blen\(")


@dataclass
class Offender:
    path: Path
    cell: int
    reason: str
    first_line: str

    def __str__(self) -> str:
        return f"{self.path}: cell {self.cell} ({self.first_line[:60]!r}): {self.reason}"


def _sanitizers(path: Path = ROOT / "nbval-sanitize.cfg") -> list[tuple[re.Pattern[str], str]]:
    """The replacements nbval applies before comparing (nbval-sanitize.cfg), so the check sees what nbval sees."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path, encoding="utf-8")
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()]


_SANITIZE = _sanitizers()


def _output_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
        elif output.get("output_type") == "error":
            parts.append(output.get("evalue", ""))
    text = "".join(parts)
    for pattern, replacement in _SANITIZE:
        text = pattern.sub(replacement, text)
    return text


def _source(node: ast.AST, source: str) -> str:
    return ast.get_source_segment(source, node) or ""


def _loop_names(tree: ast.AST, source: str) -> set[str]:
    """Names bound inside ``for ... in tc.DEVICES`` (or ``devices()``) loops, the loop variable included."""
    names: set[str] = set()
    for loop in ast.walk(tree):
        if isinstance(loop, ast.For) and DEVICE_LOOP.search(_source(loop.iter, source)):
            for node in ast.walk(loop):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.add(node.id)
        if isinstance(loop, ast.Assign) and isinstance(loop.value, ast.Call) and "run_on_devices" in _source(
                loop.value.func, source):  # {device: result}, not one device's result
            names.update(t.id for t in loop.targets if isinstance(t, ast.Name))
    return names


def _shown_device_values(tree: ast.Module, source: str) -> list[str]:
    """Names from a device loop used by the cell's displayed last expression without a neutral call."""
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return []
    loop_names = _loop_names(tree, source)
    shown = []
    cpu_picks = {id(n.value) for n in ast.walk(tree.body[-1])  # results["cpu"]: one device's value
                 if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant) and n.slice.value == "cpu"}
    for node in ast.walk(tree.body[-1]):
        if isinstance(node, ast.Name) and node.id in loop_names and id(node) not in cpu_picks:
            shown.append(node.id)
    text = _source(tree.body[-1], source)
    return [] if not shown or NEUTRAL.search(text) else sorted(set(shown))


def _shows(nodes: list[ast.stmt]) -> bool:
    """True when these statements print or display something (print, an expect_* block, display)."""
    for node in (n for stmt in nodes for n in ast.walk(stmt)):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            quiet = any(k.arg == "show" and not (isinstance(k.value, ast.Constant) and k.value.value is True)
                        for k in node.keywords)  # expect_error(..., show=False) or show=device == "cpu"
            if name in SHOWING and not quiet:
                return True
    return False


def _branches_on_machine(tree: ast.AST, source: str) -> bool:
    """An ``if`` on the machine whose branches show something (so one branch shows what the other does not)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and MACHINE_CONDITION.search(_source(node.test, source)):
            if _shows(node.body) or _shows(node.orelse):
                return True
    return False


def _shows_per_device(tree: ast.AST, source: str) -> bool:
    """A loop over the devices that prints inside: the output repeats once per device."""
    return any(isinstance(loop, ast.For) and DEVICE_LOOP.search(_source(loop.iter, source)) and _shows(loop.body)
               for loop in ast.walk(tree))


def cell_reasons(source: str, output: str) -> list[str]:
    """Why a cell with this source and committed output is probably not portable (empty: it looks fine)."""
    if not output.strip():
        return []
    reasons = []
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: judge the text alone
        tree = ast.Module(body=[], type_ignores=[])
    code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())  # comments say nothing
    if _branches_on_machine(tree, source):
        reasons.append("shows output in a branch on the machine (a device, a count, a version)")
    if _shows_per_device(tree, source):
        reasons.append("shows output inside a loop over the devices (once per device)")
    fact = MACHINE_FACTS.search(code)
    if fact:
        reasons.append(f"asks for a machine fact ({fact.group(0)}) and shows output")
    shown = _shown_device_values(tree, source)
    if shown:
        reasons.append(f"shows {', '.join(shown)} from a loop over the devices without .cpu()/.tolist()")
    seen = MACHINE_OUTPUT.search(output)
    if seen:
        reasons.append(f"its committed output names the machine ({seen.group(0)!r})")
    return reasons


#: Calls that make a fresh, empty folder: a ``mkdir`` below one of them cannot find its folder there.
FRESH_FOLDER = re.compile(r"\bfresh_dir\(|\bmkdtemp\(|TemporaryDirectory\(")
#: Methods that change their object in place, when called as a statement.
MUTATORS = {"append", "extend", "insert", "add", "update", "setdefault"}
#: Module names, not graphs: ``torch.autograd.backward(...)``.
MODULES = {"torch", "autograd", "nn", "F", "tc", "np"}
#: Calls that list a folder, and calls that write a file.
LISTS_FOLDER = re.compile(r"\b(listdir|iterdir|scandir|r?glob|events_files)\(")
WRITES_FILE = re.compile(r"\.(write_text|write_bytes|save|savefig|mkdir)\(|\bopen\(.*[\"']w|torch\.save\(")


def _bound(tree: ast.AST) -> set[str]:
    """Names the cell binds afresh (assignment, loop, with, import, def), not by changing them in place."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.For, ast.With, ast.comprehension)):
            targets = node.targets if isinstance(node, ast.Assign) else [
                node.target if not isinstance(node, ast.With) else None]
            if isinstance(node, ast.With):
                targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
            names.update(n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.NamedExpr):
            names.add(node.target.id)
        elif isinstance(node, ast.arguments):
            names.update(a.arg for a in [*node.posonlyargs, *node.args, *node.kwonlyargs, node.vararg, node.kwarg] if a)
    return names


def _old_graph(node: ast.AST) -> str | None:
    """The name in ``y.backward()``, ``y.sum().backward()``, ``out[0].backward()``: a graph read from a variable.

    A receiver computed by a call with arguments (``F.mse_loss(model(x), y)``, ``scaler.scale(loss)``) is a
    new graph, and is not reported.
    """
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        if isinstance(node, ast.Call):
            if node.args or node.keywords or not isinstance(node.func, ast.Attribute):
                return None
            node = node.func
        node = node.value
    return node.id if isinstance(node, ast.Name) and node.id not in MODULES else None


def rerun_reasons(source: str) -> list[str]:
    """Why this cell probably fails, or shows something else, when it runs a second time (empty: it looks fine)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())
    fresh, bound, reasons = FRESH_FOLDER.search(code), _bound(tree), []
    changed: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and not fresh and (
                node.func.attr in {"mkdir", "makedirs"}) and not any(
                k.arg == "exist_ok" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in node.keywords):
            reasons.append(f"{RERUN}{node.func.attr}() without exist_ok=True: a second run raises FileExistsError "
                           "(or make the folder with tc.fresh_dir)")
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            changed.add(node.target.id)
        call = node.value if isinstance(node, ast.Expr) else None
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
            root = _old_graph(call.func.value)
            if call.func.attr in MUTATORS and isinstance(call.func.value, ast.Name):
                changed.add(call.func.value.id)
            if call.func.attr == "backward" and root and root not in bound and not any(
                    k.arg == "retain_graph" for k in call.keywords):
                reasons.append(f"{RERUN}backward() through {root}, a graph made in another cell: a second run "
                               "finds it freed (rebuild it in this cell)")
    asserted = {n.id for a in ast.walk(tree) if isinstance(a, ast.Assert) for n in ast.walk(a.test)
                if isinstance(n, ast.Name)}
    for name in sorted((changed & asserted) - bound):
        reasons.append(f"{RERUN}asserts on {name}, which it changes in place but another cell made: a second run "
                       "sees it changed twice (make it in this cell)")
    if not fresh and LISTS_FOLDER.search(code) and WRITES_FILE.search(code):
        reasons.append(f"{RERUN}writes files and lists a folder it did not make fresh: a second run lists more "
                       "(tc.fresh_dir)")
    return reasons


def check(path: Path) -> list[Offender]:
    """The likely offenders of one notebook."""
    nb = nbformat.read(path, as_version=4)
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        reasons = [] if RERUN_REVIEWED_TAG in tags else rerun_reasons(cell.source)
        if not (IGNORE_TAG in tags or REVIEWED_TAG in tags or "nbval-skip" in tags):
            reasons = cell_reasons(cell.source, _output_text(cell)) + reasons
        if reasons:
            found.append(Offender(path, index, "; ".join(reasons), cell.source.splitlines()[0]))
    return found


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [ROOT / "notebooks", ROOT / "solutions"]
    files = sorted(f for r in roots for f in ([r] if r.suffix == ".ipynb" else r.rglob("*.ipynb"))
                   if ".ipynb_checkpoints" not in f.parts)
    offenders = [o for f in files for o in check(f)]
    for offender in offenders:
        print(offender if not offender.path.is_relative_to(ROOT) else
              Offender(offender.path.relative_to(ROOT), offender.cell, offender.reason, offender.first_line))
    rerun = sum(RERUN in o.reason for o in offenders)
    if len(offenders) > rerun:
        print(f"{len(offenders) - rerun} cell(s) may print machine-dependent output: tag them {IGNORE_TAG!r} "
              f"(and assert the truth), print a device-neutral fact, or, after review, tag the cell "
              f"{REVIEWED_TAG!r}. See docs/authoring.md, 'The portable rule'.")
    if rerun:
        print(f"{rerun} cell(s) may fail when run again: make what they need in the cell itself, or, after review "
              f"(make test-rerun passes), tag the cell {RERUN_REVIEWED_TAG!r}. "
              f"See docs/authoring.md, 'Every cell can be run again'.")
    return 1 if offenders else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
