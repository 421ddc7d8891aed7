"""Runtime settings read from the environment (a leaf module: imports nothing from icpml)."""

from __future__ import annotations

import os

__all__ = ["env_threads"]


def env_threads() -> int | None:
    """``ICPML_THREADS`` as a positive number of threads, or ``None`` when it is unset or not one."""
    n = os.environ.get("ICPML_THREADS", "")
    return int(n) if n.isdigit() and int(n) > 0 else None
