"""JupyterLab for real: a server on loopback and headless Chromium driven by Playwright.

Run with `make test-browser` (or `pytest tests/browser`); `make test` does not collect this folder
(tests/conftest.py). The server serves a temporary copy of the course, so nothing the test types can
reach the repository; its config, runtime, data, settings and workspace folders are temporary too.
Screenshots go to a temporary folder printed at the end of the run.
"""

from __future__ import annotations

import json
import os
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from torchcourse.commands import ipc_fits

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("TORCHCOURSE_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium floods a closed network with refused connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
INSTALL = (
    "The browser test drives Debian's Chromium with Playwright for Python and downloads no browser.\n"
    "  Debian/Ubuntu: sudo apt-get install chromium\n"
    "  elsewhere:     TORCHCOURSE_CHROMIUM=/path/to/chrome-or-chromium make test-browser\n"
    "  (Playwright itself comes with `make install`; never `playwright install`.)"
)
SERVER_START_S = 120
# JupyterLab settings for a test run: no autosave (nothing is ever written back), no news or update
# checks (no network). Everything else is as a learner gets it.
SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}
_STARTED = time.monotonic()
_SHOTS: list[Path] = []


def _usage() -> float:
    """CPU seconds of this process and every child it waited for (the server with its kernels, Chromium)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed in this environment (`make install` installs it)."
    if not CHROMIUM.is_file():
        return f"No Chromium at {CHROMIUM}."
    return None


@pytest.fixture(scope="session")
def shots() -> Path:
    """The folder screenshots go to; its path is printed at the end of the run."""
    folder = Path(tempfile.mkdtemp(prefix="torchcourse-browser-"))
    _SHOTS.append(folder)
    return folder


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """A JupyterLab server on 127.0.0.1, a free port and a random token, serving a copy of the course."""
    base = tmp_path_factory.mktemp("lab")
    course = base / "course"
    course.mkdir()
    skip = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    for name in ("index.ipynb", "README.md"):
        shutil.copy2(ROOT / name, course / name)
    for name in ("notebooks", "exercises", "solutions", "docs"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, course / name, ignore=skip)
    dirs = {name: base / name for name in ("config", "runtime", "data", "settings", "workspaces", "ipython")}
    for folder in dirs.values():
        folder.mkdir()
    for rel, values in SETTINGS.items():
        (dirs["settings"] / rel).parent.mkdir(parents=True, exist_ok=True)
        (dirs["settings"] / rel).write_text(json.dumps(values), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORCHCOURSE_", "JUPYTER", "MPLBACKEND"))}
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        # A private data folder: only the environment's kernels (the course's "torchcourse"), not the user's.
        JUPYTER_DATA_DIR=str(dirs["data"]), JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]), IPYTHONDIR=str(dirs["ipython"]),
        # The kernel imports the sources under test, whichever checkout the environment was installed from.
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    port, token = _free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={course}",
        f"--LabApp.workspaces_dir={dirs['workspaces']}", f"--LabApp.user_settings_dir={dirs['settings']}",
        "--LabApp.expose_app_in_browser=True", "--ServerApp.terminals_enabled=False",
    ]
    if ipc_fits(str(dirs["runtime"])):
        command.append("--KernelManager.transport=ipc")  # as `make lab`: no "running over TCP" warning
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = (base / "server.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=course)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/kernelspecs?token={token}", timeout=5) as reply:
                specs = json.load(reply)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"JupyterLab did not start:\n{(base / 'server.log').read_text()}") from None
            time.sleep(0.25)
    try:
        assert "torchcourse" in specs["kernelspecs"], (
            f"the course's kernel is not registered in this environment (make install does it): {specs}")
        yield {"url": url, "token": token, "root": course, "log": base / "server.log", "settings": dirs["settings"]}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium through Playwright; without one (outside CI), skip and say how to install it."""
    problem = _missing_browser()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}\n{INSTALL}", pytrace=False)
        pytest.skip(f"{problem}\n{INSTALL}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def page(browser, lab):
    """One page for the whole run, opened on the course home as `make lab` opens it."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(f"{lab['url']}/lab/tree/index.ipynb?reset&token={lab['token']}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.context", timeout=120_000)
    yield page
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A screenshot of the page as it was when a test failed."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "page" in item.funcargs and _SHOTS:
        shot = _SHOTS[0] / f"FAILED-{re.sub(r'[^A-Za-z0-9_.-]+', '_', item.name)}.png"
        try:
            item.funcargs["page"].screenshot(path=str(shot), full_page=True)
            report.sections.append(("screenshot", str(shot)))
        except Exception as error:  # the page may be gone; the failure itself matters more
            report.sections.append(("screenshot", f"none: {error}"))


def pytest_terminal_summary(terminalreporter):
    if _SHOTS:
        terminalreporter.write_line(f"browser test screenshots: {_SHOTS[0]}")
        terminalreporter.write_line(f"browser test time: {time.monotonic() - _STARTED:.0f} s wall, "
                                    f"{_usage():.0f} s CPU (pytest, JupyterLab and its kernels, Chromium)")
