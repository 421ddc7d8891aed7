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
