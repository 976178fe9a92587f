"""`torchcourse lab`, `test` and `reset` (src/torchcourse/commands.py): the course's commands on every platform."""

from __future__ import annotations

import subprocess
import sys

import pytest

from torchcourse import commands
from torchcourse.cli import main


def test_lab_opens_the_course_home_with_idle_kernels_culled(monkeypatch):
    ran = []
    monkeypatch.setattr(commands, "_ensure_kernel", lambda: False)
    monkeypatch.setattr(commands, "ensure_lab_settings", lambda prefix: False)
    monkeypatch.setattr(commands.subprocess, "call", lambda command, cwd: ran.append((command, cwd)) or 0)
    assert main(["lab", "--in-place", "--cull-idle", "600", "--port", "8890"]) == 0
    (command, cwd), = ran
    assert command[:3] == [sys.executable, "-m", "jupyterlab"] and command[-1] == "index.ipynb"
    assert f"--ServerApp.root_dir={commands.course_root()}" in command and cwd == commands.course_root()
    assert "--MappingKernelManager.cull_idle_timeout=600" in command and "--port" in command
    assert ("--KernelManager.transport=ipc" in command) == commands.ipc_fits()


def test_lab_can_keep_every_kernel(monkeypatch):
    assert not any("cull" in part for part in commands.lab_command(commands.course_root(), cull_idle=0))


def test_lab_registers_the_course_kernel_only_where_it_is_missing(monkeypatch):
    from jupyter_client import kernelspec

    installed = []
    monkeypatch.setattr(kernelspec.KernelSpecManager, "find_kernel_specs", lambda self: {"python3": "/k"})
    monkeypatch.setattr("ipykernel.kernelspec.install", lambda **options: installed.append(options))
    assert commands._ensure_kernel() and installed[0]["kernel_name"] == "torchcourse"
    monkeypatch.setattr(kernelspec.KernelSpecManager, "find_kernel_specs", lambda self: {"torchcourse": "/k"})
    assert not commands._ensure_kernel() and len(installed) == 1


def test_test_runs_lint_then_the_traced_suite_then_the_coverage_gate(monkeypatch):
    ran = []
    monkeypatch.setattr(commands.subprocess, "call", lambda command, cwd, env: ran.append((command, env)) or 0)
    assert main(["test", "--jobs", "2"]) == 0
    assert [c[2:4] for c, _ in ran] == [["ruff", "check"], [], ["pytest", "-n"], ["pytest", "-q"]]
    suite_env, gate_env = ran[2][1], ran[3][1]
    assert suite_env["TORCHCOURSE_STRICT"] == "1" and suite_env["TORCHCOURSE_TRACE_DIR"] == gate_env[
        "TORCHCOURSE_COVERAGE_RECORDS"]
    ran.clear()
    monkeypatch.setattr(commands.subprocess, "call", lambda command, cwd, env: ran.append(command) or 1)
    assert main(["test"]) == 1 and len(ran) == 1  # a failed lint stops the run


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A git clone-like course: one committed notebook. Its backups go beside it, in this test's own folder (the
    folder above ``tmp_path`` is shared by every test of a pytest-xdist worker)."""
    root = tmp_path / "course"
    (root / "notebooks").mkdir(parents=True)
    (root / "index.ipynb").write_text("{}")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / "notebooks" / "a.ipynb").write_text('{"original": true}')
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"], cwd=root, check=True)
    monkeypatch.setattr(commands, "course_root", lambda: root)
    monkeypatch.setenv("TORCHCOURSE_BACKUPS", str(tmp_path / "backups"))
    return root


def test_reset_restores_the_committed_notebook_and_keeps_the_learners(course, capsys):
    notebook = course / "notebooks" / "a.ipynb"
    notebook.write_text('{"mine": true}')
    assert main(["reset", str(notebook)]) == 0
    assert notebook.read_text() == '{"original": true}'
    (kept,) = (course.parent / "backups").iterdir()
    assert kept.read_text() == '{"mine": true}' and str(kept) in capsys.readouterr().out
    assert main(["reset", str(notebook)]) == 0 and "nothing to do" in capsys.readouterr().out


def test_reset_refuses_what_is_not_the_courses(course, tmp_path):
    with pytest.raises(SystemExit, match="no committed version"):
        main(["reset", str(course / "notebooks" / "new.ipynb")])
    with pytest.raises(SystemExit, match="not a notebook of the course"):
        main(["reset", str(tmp_path / "elsewhere.ipynb")])


def _lesson(course):
    lesson = course / "notebooks" / "01_a" / "a.ipynb"
    lesson.parent.mkdir()
    lesson.write_text('{"original": true}')
    return lesson


def test_lab_serves_the_learners_working_copy(course, monkeypatch, capsys):
    _lesson(course)
    ran = []
    monkeypatch.setattr(commands, "_ensure_kernel", lambda: False)
    monkeypatch.setattr(commands, "ensure_lab_settings", lambda prefix: False)
    monkeypatch.setattr(commands.subprocess, "call", lambda command, cwd: ran.append((command, cwd)) or 0)
    assert main(["lab"]) == 0
    (command, cwd), = ran
    copy = course / "my-course"
    assert cwd == copy and f"--ServerApp.root_dir={copy}" in command and command[-1] == "index.ipynb"
    assert (copy / "notebooks" / "01_a" / "a.ipynb").read_text() == '{"original": true}'
    assert "Copied 2 course notebook(s)" in capsys.readouterr().out


def test_closing_a_tab_shuts_its_kernel_down_and_other_settings_stay(tmp_path):
    overrides = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    overrides.parent.mkdir(parents=True)
    overrides.write_text('{"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}')
    assert commands.ensure_lab_settings(tmp_path)
    settings = commands.json.loads(overrides.read_text())
    assert settings["@jupyterlab/notebook-extension:tracker"]["kernelShutdown"] is True
    assert settings["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
    assert not commands.ensure_lab_settings(tmp_path)  # already there: left alone


def test_reset_in_the_working_copy_takes_the_courses_version(course, capsys):
    from torchcourse import workcopy

    lesson = _lesson(course)
    workcopy.sync(course)
    mine = course / "my-course" / "notebooks" / "01_a" / "a.ipynb"
    mine.write_text('{"mine": true}')
    assert main(["reset", str(mine)]) == 0
    assert mine.read_text() == '{"original": true}' and "the course's version again" in capsys.readouterr().out
    (kept,) = (course.parent / "backups").iterdir()
    assert kept.read_text() == '{"mine": true}'
    lesson.write_text('{"fixed": true}')  # a course update: yours was not changed since the reset
    assert workcopy.sync(course).updated == [commands.Path("notebooks/01_a/a.ipynb")]
    with pytest.raises(SystemExit, match="not one of the course's notebooks"):
        main(["reset", str(course / "my-course" / "notebooks" / "b.ipynb")])


def test_ipc_only_where_the_socket_path_fits(monkeypatch):
    monkeypatch.setattr(commands.os, "name", "posix")
    assert commands.ipc_fits("/home/ada/.local/share/jupyter/runtime")
    long_mac_name = "/Users/" + "a" * 40 + "/Library/Jupyter/runtime"  # past macOS's 104-byte socket paths
    assert not commands.ipc_fits(long_mac_name)
    monkeypatch.setattr(commands.os, "name", "nt")
    assert not commands.ipc_fits("C:/Users/ada/AppData/Roaming/jupyter/runtime")
