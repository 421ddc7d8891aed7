"""Run provenance, assembled in one place: what produced a model and a criteria.json.

* :func:`library_versions`: icpml and the libraries a model depends on (a pickled model
  is only trusted with the scikit-learn it was built with);
* :func:`config_hash`: the settings that change a model (project root excluded);
* :func:`git_commit`: the project's commit, when it is a git checkout;
* :func:`run_provenance`: all of it with the data fingerprint, as MLflow tags.

:func:`icpml.pipeline.discover` stamps the versions into ``criteria.json``;
:mod:`icpml.tracking` tags every run with :func:`run_provenance`; the model version is
added by the registry (``icpml.fit_model_version`` tags); :mod:`icpml.cache` keys results by
the same versions.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from icpml._vocab import VERSION

if TYPE_CHECKING:
    from icpml.config import Config

__all__ = ["library_versions", "config_hash", "git_commit", "run_provenance"]

#: the libraries whose version can change a model or its scores
LIBRARIES = ("scikit-learn", "shap", "mlflow", "pandas", "numpy", "scipy")


@cache
def library_versions() -> dict[str, str]:
    """``{"icpml": ..., "scikit-learn": ..., ...}``: the installed versions (``"unknown"``
    for a library that is not installed); icpml's is :data:`icpml._vocab.VERSION`."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"icpml": VERSION}
    for pkg in LIBRARIES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def config_hash(cfg: Config) -> str:
    """A short hash of the settings that change a model (project root excluded).

    Parameters
    ----------
    cfg : Config
        The validated config; not modified.

    Returns
    -------
    str
        16 lowercase hex digits: the start of the SHA-256 of ``cfg.to_dict()`` without
        ``project_root``, as JSON with sorted keys. Equal settings give equal hashes
        wherever the project lives.
    """
    d = cfg.to_dict()
    d.pop("project_root", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def git_commit(root: str | Path | None) -> str | None:
    """The commit checked out in the git repository at ``root``, read from ``.git``.

    No subprocess is run: ``HEAD`` is followed to its ref, loose or packed, in the
    repository or (for a worktree or submodule, whose ``.git`` is a file) its common
    directory. Unreadable files are not an error.

    Parameters
    ----------
    root : str or pathlib.Path or None
        The directory holding ``.git`` (the project root); ``None`` gives ``None``.

    Returns
    -------
    str or None
        The commit's 40-hex-digit id (whatever ``HEAD`` holds when detached); ``None``
        when ``root`` is not a git checkout or the commit cannot be read.
    """
    if root is None:
        return None
    git = Path(root) / ".git"
    try:
        if git.is_file():  # a worktree or submodule: "gitdir: <path>"
            git = (git.parent / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head[5:]
        for base in (git, _common_dir(git)):
            if (base / ref).is_file():
                return (base / ref).read_text().strip()
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
    except (OSError, IndexError):
        return None
    return None


def _common_dir(git: Path) -> Path:
    common = git / "commondir"
    return (git / common.read_text().strip()).resolve() if common.is_file() else git


def run_provenance(cfg: Config, data_fingerprint: str) -> dict[str, str]:
    """MLflow tags saying what produced a run.

    Parameters
    ----------
    cfg : Config
        The run's config: its name, :func:`config_hash` and project root (for
        :func:`git_commit`).
    data_fingerprint : str
        Fingerprint of the account table the run read.

    Returns
    -------
    dict of str to str
        ``icpml.config_name``, ``icpml.config_hash``, ``icpml.data_fingerprint``,
        ``icpml.git_commit`` (only when known) and ``icpml.version.<library>`` for
        icpml and each of :data:`LIBRARIES` (:func:`library_versions`).
    """
    tags = {"icpml.config_name": cfg.name, "icpml.config_hash": config_hash(cfg),
            "icpml.data_fingerprint": data_fingerprint}
    commit = git_commit(cfg.project_root)
    if commit:
        tags["icpml.git_commit"] = commit
    tags.update({f"icpml.version.{k}": v for k, v in library_versions().items()})
    return tags
