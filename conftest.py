"""Loaded by every pytest run in the repository (tests/conftest.py only by runs that collect tests/): nbval's kernel
start is tried again when the new kernel dies before it answers.

A kernel binds five TCP ports that jupyter_client chose by binding port 0 and letting go; two pytest-xdist workers
starting kernels in the same moment can be handed the same port, and the loser exits at once ("Kernel died before
replying to kernel_info", every cell of its notebook an error). It happened once in many ``make test`` runs on two
cores. A kernel that dies for a lasting reason dies on every try, so the last try's error is raised.
"""

from __future__ import annotations

import time

KERNEL_START_TRIES = 3


def _retrying(start):
    def start_new_kernel(*args, **kwargs):
        for attempt in range(1, KERNEL_START_TRIES + 1):
            try:
                return start(*args, **kwargs)
            except RuntimeError:  # jupyter_client's "Kernel died before replying to kernel_info"
                if attempt == KERNEL_START_TRIES:
                    raise
                time.sleep(attempt)

    start_new_kernel.__wrapped__ = start
    return start_new_kernel


def pytest_configure(config) -> None:
    try:
        from nbval import kernel
    except ImportError:  # nbval is a development dependency
        return
    if not hasattr(kernel.start_new_kernel, "__wrapped__"):
        kernel.start_new_kernel = _retrying(kernel.start_new_kernel)
