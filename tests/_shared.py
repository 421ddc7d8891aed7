"""Where the shared inputs live: ``../shared`` beside the repository (as CI lays it out).

``ICPML_CASES`` / ``ICPML_REAL_DATA`` point elsewhere (a git worktree is not next to shared/).
Tests that need a case folder skip with a reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CASES = Path(os.environ.get("ICPML_CASES") or SHARED / "cases")
REAL_DATA = Path(os.environ.get("ICPML_REAL_DATA") or SHARED / "data")


def case_dir(name: str) -> Path:
    """``shared/cases/<name>`` (read-only: copy it before running a command there); skips
    the calling test, with the path, when the folder is absent."""
    import pytest

    folder = CASES / name
    if not folder.is_dir():
        pytest.skip(f"case folder {folder} is absent")
    return folder
