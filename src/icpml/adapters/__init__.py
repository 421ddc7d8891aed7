"""Data adapters: raw exports -> one icpml account table (one row per account).

One registry, :data:`ADAPTERS`, names every builder ``data.adapter`` may select, and the
public datasets among them (a short ``dataset`` name and a config file under the
project's ``configs/``). Two rooms:

* :mod:`icpml.adapters.crm`: the core CRM join, accounts + opportunities -> outcomes
  (``data.opportunities``; :func:`icpml.adapters.crm.crm_accounts`);
* :mod:`icpml.adapters.public`: recipes for public datasets (Olist, IBM Telco, Maven),
  used by the benchmarks and the real-data tests.

The registry names each builder as ``"module:function"`` and imports it only when it is
used, so :mod:`icpml.config` can check ``data.adapter`` against it without importing the
builders (which import the config types).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Adapter", "ADAPTERS", "get_adapter", "public_datasets"]


@dataclass(frozen=True)
class Adapter:
    """One registered builder.

    Parameters
    ----------
    name : str
        The ``data.adapter`` value that selects it.
    target : str
        ``"module:function"`` of the builder; its first argument is the path in ``data.path``.
    dataset : str, optional
        Short name of the public dataset it reads (``"olist"``), when it has a ready config.
    config : str, optional
        That config's file name under the project's ``configs/``.
    """

    name: str
    target: str
    dataset: str | None = None
    config: str | None = None

    @property
    def build(self) -> Callable:
        """The builder function (imported on first use)."""
        module, func = self.target.split(":")
        return getattr(importlib.import_module(module), func)


_PUBLIC = "icpml.adapters.public"

#: every adapter, by its ``data.adapter`` name
ADAPTERS: dict[str, Adapter] = {a.name: a for a in (
    Adapter("olist_sellers", f"{_PUBLIC}:olist_sellers", dataset="olist", config="olist.yaml"),
    Adapter("olist_mql_conversion", f"{_PUBLIC}:olist_mql_conversion"),
    Adapter("telco_accounts", f"{_PUBLIC}:telco_accounts", dataset="telco", config="telco.yaml"),
    Adapter("maven_accounts", f"{_PUBLIC}:maven_accounts", dataset="maven", config="maven.yaml"),
)}


def get_adapter(name: str) -> Adapter:
    """The registered adapter called ``name``.

    Parameters
    ----------
    name : str
        A ``data.adapter`` value, a key of :data:`ADAPTERS` (``"olist_sellers"``).

    Returns
    -------
    Adapter
        The registry entry; its ``build`` property imports the builder.

    Raises
    ------
    KeyError
        No adapter has that name (config validation names the choices before this
        is reached).
    """
    return ADAPTERS[name]


def public_datasets() -> dict[str, Adapter]:
    """The adapters that read a public dataset with a ready config, by short dataset name.

    Returns
    -------
    dict of str to Adapter
        Short dataset name -> its adapter, for every adapter with both ``dataset`` and
        ``config`` set (``{"olist": ..., "telco": ..., "maven": ...}``).
    """
    return {a.dataset: a for a in ADAPTERS.values() if a.dataset and a.config}
