"""Every public function, method and class of icpml has a numpydoc docstring that validates.

The same rules are written up for people in ``docs/api.md``.

What "public" means here (the same rule as the docs):

* modules: ``icpml`` and every ``icpml.<name>`` whose name does not start with ``_``,
  except the command line (``icpml.cli``, ``icpml.__main__``), whose public surface is
  ``icpml --help`` (typer shows the docstrings verbatim, so they stay prose);
* objects: the names in a module's ``__all__`` when it has one, else every function and
  class whose name does not start with ``_`` and that the module defines itself (not
  names it imports);
* members: the methods, class/static methods and properties a public class defines in
  its own body whose names do not start with ``_`` (inherited pydantic / dataclass
  machinery is not ours to document).

The checks are numpydoc's own validator (:func:`numpydoc.validate.validate`) restricted to
:data:`CHECKS`, plus one of ours, ``RS01``: a function whose body raises an exception
itself (``raise SomeError(``) has a ``Raises`` section. numpydoc's validator skips
``RT01`` for functions that return nothing, so procedures need no ``Returns`` section.

:data:`PENDING` lists the objects documented before this check existed and not yet
brought up to it. It may only shrink: the test fails when a pending object passes (take
it off the list) and when any other public object fails (document it).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import tomllib
from pathlib import Path

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate", reason="numpydoc is not installed")

import icpml  # noqa: E402

# numpydoc check codes enforced (https://numpydoc.readthedocs.io/en/latest/validation.html),
# listed once, in pyproject.toml [tool.numpydoc_validation]
CHECKS = set(tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml")
                           .read_text(encoding="utf-8"))["tool"]["numpydoc_validation"]["checks"])
OURS = {"RS01"}  # raises directly but has no Raises section
EXCLUDED_MODULES = {"icpml.cli", "icpml.__main__"}

_RAISES = re.compile(r"^\s*raise\s+[A-Z]\w*(Error|Exception)\(", re.M)


def public_objects() -> dict[str, object]:
    """Qualified name -> function, method or class, for every public object of icpml."""
    mods = [icpml]
    for m in pkgutil.walk_packages(icpml.__path__, "icpml."):
        if m.name in EXCLUDED_MODULES or any(p.startswith("_") for p in m.name.split(".")[1:]):
            continue
        mods.append(importlib.import_module(m.name))
    out: dict[str, object] = {}
    for mod in mods:
        names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        for name in names:
            obj = getattr(mod, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            owner = getattr(obj, "__module__", "") or ""
            if not owner.startswith("icpml") or (mod is not icpml and owner != mod.__name__):
                continue
            qual = f"{owner}.{obj.__qualname__}"
            out[qual] = obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    if isinstance(member, property):
                        member = member.fget
                    if inspect.isfunction(member):
                        out[f"{qual}.{attr}"] = member
    return out


def problems(qual: str, obj: object) -> list[str]:
    """The enforced check codes ``qual`` fails, with numpydoc's messages."""
    res = numpydoc_validate.validate(qual)
    errs = [f"{code} {msg}" for code, msg in res["errors"] if code in CHECKS]
    if inspect.isfunction(obj):
        try:
            src = inspect.getsource(obj)
        except (OSError, TypeError):
            src = ""
        body = src.split('"""', 2)[-1] if src.count('"""') >= 2 else src
        if _RAISES.search(body) and not re.search(r"^\s*Raises\n\s*-{3,}", obj.__doc__ or "", re.M):
            errs.append("RS01 raises an exception itself but has no Raises section")
    return errs


# documented before the check existed, not yet up to it; may only shrink
PENDING: frozenset[str] = frozenset()


def _report() -> dict[str, list[str]]:
    return {q: p for q, o in sorted(public_objects().items()) if (p := problems(q, o))}


def test_public_api_docstrings_validate():
    failing = _report()
    new = {q: p for q, p in failing.items() if q not in PENDING}
    fixed = sorted(PENDING - set(failing))
    lines = [f"{q}: {'; '.join(p)}" for q, p in new.items()]
    assert not new, ("public objects whose numpydoc docstring fails the checks "
                     f"({len(new)}; document them):\n" + "\n".join(lines))
    assert not fixed, f"now documented, take them off PENDING: {fixed}"


def test_public_means_something():
    objs = public_objects()
    # the entry points are in, private helpers and the command line are not
    for q in ("icpml.pipeline.discover", "icpml.config.load_config", "icpml.scoring.Scorer.score",
              "icpml.criteria.rule.CriteriaSet.to_sql", "icpml.criteria.rule.CriteriaSet.to_frame"):
        assert q in objs
    assert not any(q.rsplit(".", 1)[-1].startswith("_") for q in objs)
    assert not any(q.startswith("icpml.cli") for q in objs)


# the main entry points show how they are called, as doctests (run by --doctest-modules)
ENTRY_POINTS_WITH_EXAMPLES = (
    "icpml.pipeline.discover", "icpml.scoring.Scorer.score", "icpml.config.load_config",
    "icpml.config.config_from_dict", "icpml.criteria.rule.CriteriaSet.to_sql",
    "icpml.criteria.rule.CriteriaSet.to_pandas", "icpml.criteria.rule.CriteriaSet.to_frame",
    "icpml.hypothesis.load_hypothesis",
)


def test_entry_points_have_examples():
    objs = public_objects()
    missing = [q for q in ENTRY_POINTS_WITH_EXAMPLES
               if not re.search(r"^\s*Examples\n\s*-{3,}\n(.*\n)*?\s*>>> ", objs[q].__doc__ or "", re.M)]
    assert not missing, f"entry points without a doctest Examples section: {missing}"
