"""A discovery computed once and reused: notebooks (and any script) share one result.

:func:`load_or_discover` runs :func:`icpml.discover` (untracked, no report) the first
time it sees a (data, config, icpml) combination and keeps the result in a cache file;
every later call with the same combination loads that file instead of fitting again.

The key is a hash of

* the account table's content (:func:`icpml.data.data_fingerprint`),
* the config (every setting; the project root excluded, so a moved project keeps its cache),
* icpml's version and source code, and the versions of the libraries whose objects are
  stored (scikit-learn, pandas, numpy),

so a change to any of them computes afresh; an old entry is never read for new inputs.
Entries live under ``<project root>/.cache/icpml/discoveries/`` (git-ignored), or under
``ICPML_CACHE_DIR`` when that is set. The files are Python pickles written by icpml
itself: load only a cache folder you trust, as with any pickle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from functools import cache
from pathlib import Path

import pandas as pd

from icpml._io import atomic_write_bytes
from icpml.config import Config, find_project_root
from icpml.data import data_fingerprint, load_source
from icpml.provenance import config_hash, library_versions

__all__ = ["load_or_discover", "discovery_key", "cache_dir"]

log = logging.getLogger(__name__)


@cache
def _code_digest() -> str:
    """Hash of icpml's own source files (a changed stage must not reuse an old result)."""
    h = hashlib.sha256(json.dumps(library_versions(), sort_keys=True).encode())
    package = Path(__file__).resolve().parent
    for p in sorted(package.rglob("*.py")):  # subpackages (adapters) too
        h.update(p.relative_to(package).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def discovery_key(cfg: Config, accounts: pd.DataFrame) -> str:
    """The cache key of ``discover(cfg, accounts)``: 24 hex digits.

    Built from the data fingerprint, a hash of the config's settings (its project
    root excluded) and icpml's version and code.

    Parameters
    ----------
    cfg : Config
        The config of the discovery.
    accounts : pandas.DataFrame
        The account table. Not modified.

    Returns
    -------
    str
        24 hex digits of a SHA-256; any change of data, settings or icpml code
        changes it.
    """
    h = hashlib.sha256()
    h.update(data_fingerprint(accounts).encode())
    h.update(config_hash(cfg).encode())
    h.update(_code_digest().encode())
    return h.hexdigest()[:24]


def cache_dir(cfg: Config | None = None) -> Path:
    """Where discoveries are cached: ``ICPML_CACHE_DIR``, else ``<project root>/.cache/icpml``.

    Parameters
    ----------
    cfg : Config, optional
        Its ``project_root`` is used; found from the working directory when None
        or unset.

    Returns
    -------
    pathlib.Path
        The folder (not created here).
    """
    env = os.environ.get("ICPML_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = (cfg.project_root if cfg is not None else None) or find_project_root()
    return Path(root) / ".cache" / "icpml"


def load_or_discover(cfg: Config, accounts: pd.DataFrame | None = None, *,
                     refresh: bool = False, directory: str | os.PathLike[str] | None = None):
    """The :class:`~icpml.pipeline.Discovery` of ``cfg`` on ``accounts``, computed at most once.

    Parameters
    ----------
    cfg : Config
    accounts : DataFrame, optional
        The account table; default: the config's ``data`` section (as ``icpml discover``).
        Never modified.
    refresh : bool
        Recompute and overwrite the cached entry.
    directory : path-like, optional
        Cache folder; default :func:`cache_dir`.

    Returns
    -------
    Discovery
        As ``discover(cfg, accounts)`` returns it: nothing is
        logged to MLflow and no report is written.

    Raises
    ------
    ConfigError, DataError
        As :func:`icpml.discover` does. An unreadable cache entry (e.g. a truncated file)
        is not an error: it is recomputed and replaced.
    """
    from filelock import FileLock

    from icpml.pipeline import discover

    if accounts is None:
        accounts = load_source(cfg, None)[0]
    folder = Path(directory) if directory is not None else cache_dir(cfg)
    key = discovery_key(cfg, accounts)
    path = folder / "discoveries" / f"{cfg.name}-{key}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    # one computation per key, even with several notebooks started at once
    with FileLock(str(path) + ".lock"):
        if path.is_file() and not refresh:
            try:
                res = pickle.loads(path.read_bytes())
                log.info("discovery loaded from cache %s", path)
                return res
            except Exception as err:  # any unreadable entry is recomputed
                log.warning("cache entry %s is unreadable (%s); computing it again", path, err)
        res = discover(cfg, accounts)
        atomic_write_bytes(path, pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))
        log.info("discovery cached at %s", path)
        return res
