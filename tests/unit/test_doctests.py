"""Every ``Examples`` section in the package runs and prints what it says.

The docstrings of every ``icpml`` module are collected (one test per docstring with examples);
an example that runs a whole discovery (``discover(`` or ``retrain(``) is in the integration
tier, the rest are unit tests. Output is compared with ``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil

import pytest

import icpml

HEAVY = ("discover(", "retrain(", "discover_products(")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _docstring_tests() -> list:
    finder = doctest.DocTestFinder(exclude_empty=True)
    params = []
    for info in sorted(pkgutil.iter_modules(icpml.__path__, "icpml."), key=lambda i: i.name):
        if info.name == "icpml.__main__":
            continue  # importing it runs the command line
        module = importlib.import_module(info.name)
        for test in finder.find(module, module.__name__):
            if not test.examples:
                continue
            heavy = any(h in ex.source for ex in test.examples for h in HEAVY)
            params.append(pytest.param(test, id=test.name,
                                       marks=[pytest.mark.integration] if heavy else []))
    return sorted(params, key=lambda p: p.id)


DOCTESTS = _docstring_tests()


def test_the_package_has_examples():
    assert len(DOCTESTS) >= 5, [p.id for p in DOCTESTS]


@pytest.mark.parametrize("test", DOCTESTS)
def test_docstring_examples(test: doctest.DocTest):
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(test, out=out.write, clear_globs=True)
    assert result.failed == 0, out.getvalue()
    assert result.attempted == len(test.examples)
