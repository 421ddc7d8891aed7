"""The core CRM join: accounts + an opportunities export -> one row per account with outcomes.

The adapter behind ``data.opportunities`` (see :func:`crm_accounts`); the public-dataset
recipes (:mod:`icpml.adapters.public`) reuse it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from icpml.errors import DataError
from icpml.schema import date_unreadable, read_dates, read_numbers

if TYPE_CHECKING:
    from icpml.config import OpportunitiesConfig

__all__ = ["crm_accounts", "CRM_OUTCOMES"]

CRM_OUTCOMES = ("n_opportunities", "n_closed", "n_won", "won_value", "win_rate")


def _slug(value: object) -> str:
    text = "".join(ch if ch.isalnum() else "_" for ch in str(value).strip().lower())
    return "_".join(t for t in text.split("_") if t) or "blank"


def _utc_dates(raw: pd.Series) -> pd.Series:
    """Dates as UTC timestamps: offsets ("+02:00", "Z") converted, naive dates taken as UTC.

    Mixed offsets (daylight saving) are fine; ISO 8601 with and without a time too;
    "12/04/2024" is read day-first or month-first for the whole column
    (:func:`icpml.schema.read_dates`). Unreadable values are NaT.
    """
    return read_dates(raw)  # day-first or month-first decided for the whole column


def _utc(day: str) -> pd.Timestamp:
    """A config date bound in UTC (a naive date is midnight UTC)."""
    ts = pd.Timestamp(day)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def crm_accounts(accounts: pd.DataFrame, opportunities: pd.DataFrame,
                 spec: OpportunitiesConfig, *, id_column: str,
                 source: str = "opportunities") -> pd.DataFrame:
    """Join a CRM opportunities export onto an accounts table as per-account outcomes.

    The generic adapter for the most common shape of B2B data (Salesforce or
    HubSpot: accounts + opportunities), driven by ``data.opportunities`` in the
    config rather than by code. Deals are matched to accounts on
    ``spec.account`` == ``accounts[id_column]`` (whitespace-trimmed text), kept
    only inside the ``[after, before)`` date window when one is set (deal dates in
    UTC: offsets such as "+02:00" or "Z" converted, naive dates and the bounds taken as
    UTC), and counted per account:

    * ``n_opportunities``: deals in the window, any stage;
    * ``n_closed``: deals whose stage is in ``won`` or ``lost``;
    * ``n_won`` and ``won_value`` (sum of ``amount`` over won deals; 0 without
      an ``amount`` column);
    * ``win_rate``: ``n_won / n_closed``, missing when nothing closed (an
      account with no closed deal has no win rate, not a rate of 0).

    With ``spec.product`` the same five are added per product line as
    ``<name>__<product slug>`` (for a cross-product ICP). Accounts with no deal
    get zero counts. Neither input is modified.

    Parameters
    ----------
    accounts : pandas.DataFrame
        The account table, one row per account; not modified.
    opportunities : pandas.DataFrame
        The opportunities (deals) export, one row per deal; not modified.
    spec : OpportunitiesConfig
        ``data.opportunities``: the column names (``account``, ``stage``, and optional
        ``amount``, ``date``, ``product``), the ``won`` / ``lost`` stage values and the
        optional ``after`` / ``before`` date window.
    id_column : str
        The accounts' id column (``columns.id``) that ``spec.account`` refers to.
    source : str, default "opportunities"
        Name of the opportunities input, used in error messages.

    Returns
    -------
    pandas.DataFrame
        A copy of ``accounts`` (same rows, same order) with the outcome columns
        added (five, plus five per product line with ``spec.product``); ``attrs``
        carries ``n_deals_matched`` and ``n_deals_unmatched`` (deals in the window
        that matched / matched no account).

    Raises
    ------
    DataError
        A named column is missing, the outcome names clash with account
        columns, a date is unreadable, a won deal has a non-numeric amount, or
        no deal matches any account.
    """
    need = [spec.account, spec.stage, spec.amount, spec.date, spec.product]
    missing = [c for c in need if c and c not in opportunities.columns]
    if missing:
        raise DataError(f"column(s) {', '.join(missing)} named in data.opportunities are not in "
                        f"the opportunities table; fix the names in the config", source)
    if id_column not in accounts.columns:
        raise DataError(f"id column '{id_column}' is not in the accounts table; "
                        "fix columns.id in the config", "accounts")
    key = opportunities[spec.account].astype("string").str.strip()
    stage = opportunities[spec.stage].astype("string").str.strip()
    keep = key.notna().to_numpy(bool, copy=True)
    if spec.date:
        when = _utc_dates(opportunities[spec.date])
        bad = int(date_unreadable(opportunities[spec.date], when).sum())
        if bad:
            raise DataError(f"column '{spec.date}' (data.opportunities.date) has {bad} unreadable "
                            "date(s); export dates as YYYY-MM-DD or ISO 8601", source)
        if spec.after:
            keep &= (when >= _utc(spec.after)).fillna(False).to_numpy(bool)
        if spec.before:
            keep &= (when < _utc(spec.before)).fillna(False).to_numpy(bool)
    won = stage.isin(spec.won).fillna(False).to_numpy(bool)
    closed = won | stage.isin(spec.lost).fillna(False).to_numpy(bool)
    if spec.amount:
        # "$1,200.00" reads as 1200, as the schema reads any numeric column
        amount = pd.Series(read_numbers(opportunities[spec.amount])[0], index=opportunities.index)
        if amount[won & keep].isna().any():
            n = int(amount[won & keep].isna().sum())
            raise DataError(f"{n} won deal(s) have a missing or non-numeric '{spec.amount}'; "
                            "fill them or drop data.opportunities.amount", source)
        amount = amount.fillna(0.0).to_numpy(float)
    else:
        amount = np.zeros(len(opportunities))
    ids = accounts[id_column].astype("string").str.strip()
    deals = pd.DataFrame({"account": key, "won": won, "closed": closed,
                          "value": np.where(won, amount, 0.0)})[keep]
    deals = deals[deals["account"].isin(set(ids.dropna()))]
    if deals.empty:
        raise DataError(f"no opportunity matches an account: '{spec.account}' values must equal "
                        f"the accounts' '{id_column}'; fix data.opportunities.account", source)
    groups: list[tuple[str, pd.DataFrame]] = [("", deals)]
    if spec.product:
        prod = opportunities[spec.product].astype("string").str.strip().fillna("blank")[keep]
        prod = prod[deals.index]
        groups += [(f"__{_slug(p)}", deals[prod == p]) for p in sorted(prod.unique())]
    out = accounts.copy()
    for suffix, d in groups:
        g = d.groupby("account")
        stats = pd.DataFrame({"n_opportunities": g.size(), "n_closed": g["closed"].sum(),
                              "n_won": g["won"].sum(), "won_value": g["value"].sum()})
        stats = stats.reindex(ids.to_numpy()).fillna(0)
        names = {c: c + suffix for c in CRM_OUTCOMES}
        clash = [n for n in names.values() if n in out.columns]
        if clash:
            raise DataError(f"the accounts table already has column(s) {', '.join(clash)}; "
                            "rename them before joining opportunities", "accounts")
        for c in ("n_opportunities", "n_closed", "n_won"):
            out[names[c]] = stats[c].to_numpy().astype(int)
        out[names["won_value"]] = stats["won_value"].to_numpy().astype(float)
        n_closed = stats["n_closed"].to_numpy(float)
        out[names["win_rate"]] = np.where(n_closed > 0, stats["n_won"].to_numpy(float)
                                          / np.maximum(n_closed, 1), np.nan)
    out.attrs.update({"n_deals_matched": int(len(deals)),
                      "n_deals_unmatched": int(keep.sum() - len(deals))})
    return out


# ----------------------------------------------------------------------------- Maven
