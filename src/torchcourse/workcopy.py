"""Your own copy of the course: ``make lab`` opens ``my-course/``, which git ignores; ``git pull`` never meets it.

In one sentence, as the README puts it: you work in ``my-course/``, a copy that ``make lab`` keeps, and each
``make lab`` brings in the course's new and fixed notebooks except those you changed, which it names.

Route: :func:`sync` (called by ``torchcourse lab``) walks :func:`shipped` (the course home, the README, the
lessons, the exercises and the solutions) and, for each, compares three versions: the course's file in the
checkout, the copy in ``my-course/``, and what was copied there last (its hash, in the manifest
:data:`MANIFEST`). A file the copy lacks is copied; one the course changed and you did not is updated; one you
changed is kept, and when the course changed it too the report names it (``torchcourse reset`` takes the
course's version, keeping yours aside). :func:`restore` is that reset for one file of the copy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FOLDER", "MANIFEST", "SyncReport", "restore", "shipped", "sync"]

#: The working copy's folder, in the course's checkout (``.gitignore`` lists it).
FOLDER = "my-course"
#: The hashes of the course's files as last copied, per path, inside the working copy.
MANIFEST = ".torchcourse-copied.json"


def shipped(root: Path) -> list[Path]:
    """The course's files a learner opens, relative to the checkout ``root``."""
    found = [Path("index.ipynb"), Path("README.md")]
    for pattern in ("notebooks/*/*.ipynb", "exercises/*.ipynb", "solutions/*.ipynb"):
        found += sorted(p.relative_to(root) for p in root.glob(pattern) if ".ipynb_checkpoints" not in p.parts)
    return [p for p in found if (root / p).is_file()]


@dataclass
class SyncReport:
    """What :func:`sync` did, by path relative to the copy."""

    copied: list[Path] = field(default_factory=list)  # new to the copy
    updated: list[Path] = field(default_factory=list)  # the course changed them, you had not
    kept: list[Path] = field(default_factory=list)  # you changed them and the course did too: yours stay

    def lines(self) -> list[str]:
        """What to tell the learner (nothing when nothing changed)."""
        said = []
        if self.copied:
            said.append(f"Copied {len(self.copied)} course notebook(s) into {FOLDER}/ (your working copy).")
        if self.updated:
            said.append(f"Updated {len(self.updated)} notebook(s) you had not changed: {_names(self.updated)}.")
        for path in self.kept:
            said.append(f"Kept your edited {FOLDER}/{path.as_posix()}; the course has a newer version: "
                        f"`torchcourse reset {FOLDER}/{path.as_posix()}` takes it (yours is kept aside).")
        return said


def _names(paths: list[Path]) -> str:
    shown = ", ".join(p.as_posix() for p in paths[:5])
    return shown + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(copy: Path) -> dict[str, str]:
    try:
        return json.loads((copy / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save(copy: Path, manifest: dict[str, str]) -> None:
    (copy / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def sync(root: Path) -> SyncReport:
    """Bring ``root/my-course`` up to date with the course in ``root``, never overwriting a file you changed."""
    copy = root / FOLDER
    copy.mkdir(exist_ok=True)
    manifest, report = _manifest(copy), SyncReport()
    for relative in shipped(root):
        source, target, key = root / relative, copy / relative, relative.as_posix()
        course = _hash(source)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            manifest[key] = course
            report.copied.append(relative)
            continue
        yours, copied = _hash(target), manifest.get(key)
        if yours == course:  # the same file
            manifest[key] = course
            continue
        if course == copied:  # the course did not change it since it was copied: yours, edited or not, stays
            continue
        if yours == copied:  # the course changed it and you did not
            shutil.copy2(source, target)
            manifest[key] = course
            report.updated.append(relative)
        else:
            report.kept.append(relative)
    _save(copy, manifest)
    return report


def restore(root: Path, relative: Path) -> None:
    """Put the course's version of ``relative`` (a path inside the copy) back into ``root/my-course``."""
    source, target = root / relative, root / FOLDER / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    manifest = _manifest(root / FOLDER)
    manifest[relative.as_posix()] = _hash(source)
    _save(root / FOLDER, manifest)
