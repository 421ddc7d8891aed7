"""Deferred interruptions (:mod:`icpml.interrupts`): raised at once outside a deferred
block, at the next checkpoint inside one."""

from __future__ import annotations

import pytest

from icpml import interrupts


class _Stop(KeyboardInterrupt):
    pass


def test_outside_a_deferred_block_the_interruption_is_raised_at_once():
    with pytest.raises(_Stop):
        interrupts.request(_Stop())
    assert not interrupts.pending()


def test_inside_a_deferred_block_it_waits_for_the_checkpoint():
    steps = []
    with pytest.raises(_Stop):
        with interrupts.deferred():
            interrupts.request(_Stop())  # as the SIGTERM handler does, inside a store write
            steps.append("write finished")
            assert interrupts.pending()
            interrupts.checkpoint()
            steps.append("next write")  # not reached
    assert steps == ["write finished"] and not interrupts.pending()


def test_the_end_of_a_checked_block_raises_a_late_interruption():
    with pytest.raises(_Stop):
        with interrupts.deferred():
            interrupts.request(_Stop())
    with interrupts.deferred(check=False):  # left for the caller's next checkpoint
        interrupts.request(_Stop())
    assert interrupts.pending()
    with pytest.raises(_Stop):
        interrupts.checkpoint()
    assert not interrupts.pending()


def test_the_command_line_starts_without_the_heavy_imports():
    """`icpml` installs its SIGTERM handler before pandas, scikit-learn or MLflow load (they
    took 1.5 s, in which a SIGTERM killed the process without a word), and ``from icpml
    import discover`` still works."""
    import subprocess
    import sys

    code = ("import sys, icpml.cli; heavy = [m for m in ('pandas', 'sklearn', 'mlflow', "
            "'shap', 'numpy') if m in sys.modules]; print(heavy); "
            "from icpml import discover, make_accounts, TrackingError; print(discover.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "icpml.pipeline"]


def test_a_sigterm_while_the_command_line_is_parsed_says_so_and_exits_143():
    """A SIGTERM 0.06-0.09 s after start lands in click's parsing, before any command: it
    exited 130 (click's Ctrl-C code) without a word."""
    import subprocess
    import sys

    code = ("import os, signal, sys\n"
            "import icpml.cli as cli\n"
            "from typer.core import TyperGroup\n"
            "orig = TyperGroup.parse_args\n"
            "def parse(self, ctx, args):\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    return orig(self, ctx, args)\n"
            "TyperGroup.parse_args = parse\n"
            "sys.argv = ['icpml', 'export', '--help']\n"
            "cli.main()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 143, out.stderr
    assert out.stderr.strip().splitlines() == ["interrupted: nothing was half-written; the champion "
                                               "is unchanged"]
