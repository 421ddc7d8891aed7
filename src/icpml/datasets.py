"""Adapters: public datasets -> icpml account tables (one row per account).

Each builder reads raw CSV exports (never modifying them), returns a *new*
DataFrame shaped for :func:`icpml.discover`, and raises
:class:`~icpml.errors.DataError` with a one-line message naming the missing
file and the fix. The matching configs live in ``configs/`` of the project
(see :data:`DATASETS`). Every builder accepts either the dataset's own folder
or the shared data root that holds it (``<root>/olist_marketing_funnel/...``).

Datasets (provenance, licences and traps: ``shared/data/README.md``):

* :func:`olist_sellers`: Olist marketing funnel, sellers won by a B2B sales team,
  with outcomes from their sales in a fixed window after the deal. Real data,
  CC BY-NC-SA 4.0 (non-commercial, share-alike): never copy it into the repo.
* :func:`olist_mql_conversion`: the 8,000 Olist marketing-qualified leads with a
  ``converted`` flag, for a lead-conversion view.
* :func:`telco_accounts`: IBM Telco churn. **B2C** (subscribers), used only as
  a stand-in with well-known churn drivers.
* :func:`maven_accounts`: Maven Analytics CRM sample: B2B in form but
  **fictional**; 85 accounts, so it tests that icpml does not over-claim.

Every table carries ``df.attrs["dataset"]`` and, where a choice was made,
``df.attrs`` entries recording it (window, data end, rows dropped).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from icpml.config import OpportunitiesConfig
from icpml.data import _coerce_numeric
from icpml.errors import DataError
from icpml.schema import date_unreadable, read_dates

__all__ = [
    "DATASETS",
    "OLIST_DATA_END",
    "olist_sellers",
    "olist_mql_conversion",
    "telco_accounts",
    "maven_accounts",
    "crm_accounts",
]

OLIST_DIR = "olist_marketing_funnel"
TELCO_DIR = "ibm_telco_churn"
MAVEN_DIR = "maven_crm_sales_opportunities"

#: Last day of usable Olist sales data. The order-items table thins out after it:
#: about 300 items a day through August 2018 (``shipping_limit_date``), 81 on
#: 2018-08-31, then fewer than 40 a day and 99 items in all of September (the
#: data README: sales data end "around 2018-08-31"), plus four 2020 rows that
#: are known anomalies. A window ending later would undercount its last days.
OLIST_DATA_END = "2018-08-31"

_OLIST_FILES = {
    "deals": "olist_closed_deals_dataset.csv",
    "mql": "olist_marketing_qualified_leads_dataset.csv",
    "items": "olist_order_items_dataset.csv",
}
_TELCO_FILE = "Telco-Customer-Churn.csv"
_MAVEN_FILES = {"accounts": "accounts.csv", "pipeline": "sales_pipeline.csv"}


# ----------------------------------------------------------------------------- helpers
def _locate(data_dir: str | os.PathLike[str], subdir: str, filename: str, *,
            any_file: bool = False) -> Path:
    """``data_dir/filename`` or ``data_dir/subdir/filename``; else a DataError naming it.

    ``data_dir`` may be the file itself (any name when ``any_file``)."""
    base = Path(data_dir).expanduser()
    if base.is_file() and (any_file or base.name == filename):
        return base
    for cand in (base / filename, base / subdir / filename):
        if cand.is_file():
            return cand
    raise DataError(
        f"'{filename}' not found in {base} or {base / subdir}; pass the folder holding the "
        f"{subdir} files (see shared/data/README.md for where to get them)",
        str(base / subdir / filename),
    )


def _read_csv(path: Path, required: list[str], **kwargs) -> pd.DataFrame:
    """Read a CSV read-only; DataError (one line) if unreadable or a required column is missing."""
    try:
        df = pd.read_csv(path, low_memory=False, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
            ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot be read ({first}); replace it with the original CSV",
                        str(path)) from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}; replace it with the original "
                        "export (see shared/data/README.md)", str(path))
    return df


def _to_datetime(s: pd.Series, path: Path, column: str) -> pd.Series:
    out = pd.to_datetime(s, errors="coerce")
    bad = int((out.isna() & s.notna()).sum())
    if bad:
        raise DataError(f"column '{column}' has {bad} unreadable date(s); "
                        "replace it with the original export", str(path))
    return out


def _blank_to_na(s: pd.Series) -> pd.Series:
    t = s.astype("string").str.strip()
    return t.mask(t == "", pd.NA)


def _last_date_before_stray_tail(t: pd.Series, *, gap_days: int = 30,
                                 max_share: float = 0.001) -> pd.Timestamp:
    """Last timestamp, ignoring a stray tail: rows after a gap of more than ``gap_days``
    that hold under ``max_share`` of all rows (Olist's four 2020 anomalies)."""
    d = np.sort(t.dropna().to_numpy())
    gap = np.diff(d) > np.timedelta64(gap_days, "D")
    after = len(d) - 1 - np.arange(len(d) - 1)  # rows after each gap
    stray = np.flatnonzero(gap & (after < max_share * len(d)))
    return pd.Timestamp(d[stray[0]] if len(stray) else d[-1])


# ----------------------------------------------------------------------------- Olist
def olist_sellers(data_dir: str | os.PathLike[str], window_days: int = 90, *,
                  churn_days: int = 30,
                  data_end: str | pd.Timestamp | None = OLIST_DATA_END) -> pd.DataFrame:
    """Seller-level accounts from the Olist closed deals, outcomes in a fixed window.

    One row per seller won by Olist's sales team (``olist_closed_deals_dataset.csv``,
    842 sellers), keeping only sellers whose whole outcome window lies inside the
    sales data: ``won_date + window_days <= data_end + 1 day`` (the end day counts
    in full; 667 of 842 sellers for 90 days).
    Sellers won later are right-censored (README: "observation window") and
    are dropped, never zero-filled.

    Features (known before or at the sale; categorical):

    * from the deal: ``business_segment``, ``lead_type``, ``business_type``
      (firmographic) and ``lead_behaviour_profile`` (DISC-like profile the SDR
      noted; missing for every deal won in January 2018 and half of February:
      the field did not exist yet, so "unknown" there is a date artefact, not a
      trait);
    * from the MQL table, joined on ``mql_id``: ``origin`` (acquisition channel;
      blank becomes missing, ``unknown`` stays a value).

    Columns deliberately left out:

    * ``has_company``, ``has_gtin``, ``average_stock``,
      ``declared_product_catalog_size``, ``declared_monthly_revenue``: pre-sale,
      but the sales form gained them in mid-2018: filled for 0% of deals won
      before July 2018 (``declared_monthly_revenue`` is 0 = not asked), i.e.
      blank for every seller with a complete window. Kept, they would only
      encode the won date (a censoring proxy).
    * ``sdr_id``, ``sr_id``: who sold, not who bought (process, not targetable).
    * ``landing_page_id``: a 495-value identifier of a web page, not a property of
      the seller; ``first_contact_date`` and the sales cycle
      (``won_date - first_contact_date``): timing of the funnel, not targetable.
    * seller city/state (``olist_sellers_dataset.csv``): that table lists only
      sellers that sold, so joining it leaks activation. Products and order
      items are only ever used for outcomes.

    ``won_date`` is kept (the ``date`` role: out-of-time holdout), never a feature.

    Outcomes, from ``olist_order_items_dataset.csv`` items whose
    ``shipping_limit_date`` (the seller's hand-over deadline, a few days after
    purchase: the only order time available) lies in
    ``[won_date, won_date + window_days)``:

    * ``gmv``: sum of item ``price`` (freight excluded: the buyer pays it);
    * ``n_orders``: distinct ``order_id``; ``n_items``: item rows;
    * ``active_months``: how many of the window's 30-day periods (the last one
      may be shorter) hold at least one sale;
    * ``days_to_first_sale``: days from ``won_date`` to the first sale (missing
      if none; informational, not an outcome in the config).

    Sellers with no sale in the window get 0 for ``gmv``, ``n_orders``, ``n_items``
    and ``active_months`` (about 59% for 90 days), so they tie at the bottom of the
    value score and form the worst cohort by themselves.

    Churn-like flags (a marketplace seller has no contract to cancel; going quiet
    is the only observable way to leave):

    * ``churned``: no sale in the last ``churn_days`` of the window, i.e. not an
      active seller when the window closes. It includes sellers that never sold.
      30 days lies between the 90th (22 days) and 95th (35 days) percentiles of
      the gap between consecutive sale days of these sellers, so a 30-day
      silence is unusual for an active seller, yet short enough to leave 60
      days to activate.
    * ``activated``: at least one sale in the window;
      ``lapsed``: activated but ``churned`` (the "sold, then stopped" failure,
      separate from never activating). Informational only.

    Parameters
    ----------
    data_dir : path-like
        The ``olist_marketing_funnel`` folder, or the folder that holds it.
    window_days : int
        Length of the outcome window after ``won_date`` (default 90, as
        suggested by the README; 120 days keeps only 550 sellers).
    churn_days : int
        Final part of the window that must hold a sale for the seller not to be
        ``churned``; must be shorter than ``window_days``.
    data_end : str or Timestamp, optional
        Last day of usable sales data (inclusive); default :data:`OLIST_DATA_END`.
        A later date is clamped to the last sale day in the file.
        None takes the last ``shipping_limit_date`` in the file, ignoring a stray
        tail after a gap of more than 30 days holding under 0.1% of the rows
        (the four 2020 anomalies): 2018-09-18. That includes the thin
        September 2018 tail, so prefer the default.

    Returns
    -------
    DataFrame
        ``seller_id``, ``won_date``, the five features, the outcomes and flags
        above; ``attrs`` records ``window_days``, ``churn_days``, ``data_end``,
        ``n_deals`` and ``n_censored`` (sellers dropped for an incomplete window).

    Raises
    ------
    DataError
        A file or column is missing, a date is unreadable, ``seller_id`` is
        duplicated, or the window leaves no seller.
    """
    if int(window_days) != window_days or window_days < 1:
        raise DataError(f"window_days must be a positive whole number of days (got {window_days})",
                        "olist_sellers")
    if not 0 < churn_days < window_days:
        raise DataError(f"churn_days must be between 1 and window_days-1 (got {churn_days})",
                        "olist_sellers")
    p_deals = _locate(data_dir, OLIST_DIR, _OLIST_FILES["deals"])
    p_mql = _locate(data_dir, OLIST_DIR, _OLIST_FILES["mql"])
    p_items = _locate(data_dir, OLIST_DIR, _OLIST_FILES["items"])

    deals = _read_csv(p_deals, ["mql_id", "seller_id", "won_date", "business_segment",
                                "lead_type", "lead_behaviour_profile", "business_type"],
                      dtype=str, keep_default_na=True)
    mql = _read_csv(p_mql, ["mql_id", "origin"], dtype=str)
    items = _read_csv(p_items, ["order_id", "seller_id", "shipping_limit_date", "price"],
                      usecols=["order_id", "seller_id", "shipping_limit_date", "price"],
                      dtype={"order_id": str, "seller_id": str, "price": float})

    if deals["seller_id"].duplicated().any():
        raise DataError("seller_id is duplicated; replace it with the original export",
                        str(p_deals))
    won = _to_datetime(deals["won_date"], p_deals, "won_date")
    sold_at = _to_datetime(items["shipping_limit_date"], p_items, "shipping_limit_date")

    last = _last_date_before_stray_tail(sold_at).normalize()
    # never beyond the data: a later data_end is clamped to the last real sale day
    end = last if data_end is None else min(pd.Timestamp(data_end).normalize(), last)
    # windows are half-open [won, won + W); the end day counts in full
    end_excl = end + pd.Timedelta(days=1)
    window = pd.Timedelta(days=int(window_days))
    complete = (won + window) <= end_excl

    acc = pd.DataFrame({
        "seller_id": deals["seller_id"].astype("string"),
        "won_date": won,
        "business_segment": _blank_to_na(deals["business_segment"]),
        "lead_type": _blank_to_na(deals["lead_type"]),
        "business_type": _blank_to_na(deals["business_type"]),
        "lead_behaviour_profile": _blank_to_na(deals["lead_behaviour_profile"]),
    })
    origin = mql.drop_duplicates("mql_id").set_index("mql_id")["origin"]
    acc["origin"] = _blank_to_na(deals["mql_id"].map(origin))
    acc = acc[complete.to_numpy()].reset_index(drop=True)
    if acc.empty:
        raise DataError(f"no seller has a complete {window_days}-day window before {end.date()}; "
                        "use a shorter window_days", str(p_deals))

    # sales inside each seller's own window
    it = pd.DataFrame({"seller_id": items["seller_id"], "order_id": items["order_id"],
                       "price": items["price"], "t": sold_at})
    it = it.merge(acc[["seller_id", "won_date"]], on="seller_id", how="inner")
    age = it["t"] - it["won_date"]
    it = it[(age >= pd.Timedelta(0)) & (age < window)].copy()
    it["days"] = (it["t"] - it["won_date"]).dt.total_seconds() / 86400.0
    it["period"] = (it["days"] // 30).astype(int)
    late = it["days"] >= (window_days - churn_days)
    g = it.groupby("seller_id")
    out = pd.DataFrame({
        "gmv": g["price"].sum().round(2),
        "n_orders": g["order_id"].nunique(),
        "n_items": g.size(),
        "active_months": g["period"].nunique(),
        "days_to_first_sale": g["days"].min().round(1),
        "_late": it[late].groupby("seller_id").size(),
    })
    acc = acc.merge(out, left_on="seller_id", right_index=True, how="left")
    for c in ("gmv", "n_orders", "n_items", "active_months", "_late"):
        acc[c] = acc[c].fillna(0)
    acc["gmv"] = acc["gmv"].astype(float)
    for c in ("n_orders", "n_items", "active_months"):
        acc[c] = acc[c].astype(int)
    acc["activated"] = acc["n_items"] > 0
    acc["churned"] = acc["_late"] == 0
    acc["lapsed"] = acc["activated"] & acc["churned"]
    acc = acc.drop(columns="_late")
    acc["seller_id"] = acc["seller_id"].astype("string")
    acc.attrs.update({
        "dataset": "olist_sellers", "window_days": int(window_days),
        "churn_days": int(churn_days), "data_end": str(end.date()),
        "n_deals": int(len(deals)), "n_censored": int((~complete).sum()),
    })
    return acc


def olist_mql_conversion(data_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The 8,000 Olist marketing-qualified leads with a ``converted`` flag.

    One row per MQL (``olist_marketing_qualified_leads_dataset.csv``): ``mql_id``,
    ``first_contact_date`` (datetime), ``landing_page_id``, ``origin`` (blank
    becomes missing) and ``converted`` (bool: the ``mql_id`` has a closed deal;
    842 of 8,000, 10.5%).

    Only those MQL columns are returned: every closed-deals field exists only for
    won leads, so even its presence reveals the label (README: "target
    leakage"). ``landing_page_id`` is a page identifier: group it before using
    it as a feature. Leads first contacted near the end (May 2018) had less
    time to convert, but deals were recorded until November 2018 and the median
    sales cycle is 14 days, so this censoring is small.

    Raises
    ------
    DataError
        A file or column is missing, an ``mql_id`` is duplicated, or a deal
        names an ``mql_id`` absent from the MQL table.
    """
    p_mql = _locate(data_dir, OLIST_DIR, _OLIST_FILES["mql"])
    p_deals = _locate(data_dir, OLIST_DIR, _OLIST_FILES["deals"])
    mql = _read_csv(p_mql, ["mql_id", "first_contact_date", "landing_page_id", "origin"],
                    dtype=str)
    deals = _read_csv(p_deals, ["mql_id"], usecols=["mql_id"], dtype=str)
    if mql["mql_id"].duplicated().any():
        raise DataError("mql_id is duplicated; replace it with the original export", str(p_mql))
    unknown = ~deals["mql_id"].isin(mql["mql_id"])
    if unknown.any():
        raise DataError(f"{int(unknown.sum())} deal(s) name an mql_id absent from "
                        f"{p_mql.name}; use the matching MQL export", str(p_deals))
    out = pd.DataFrame({
        "mql_id": mql["mql_id"].astype("string"),
        "first_contact_date": _to_datetime(mql["first_contact_date"], p_mql, "first_contact_date"),
        "landing_page_id": mql["landing_page_id"].astype("string"),
        "origin": _blank_to_na(mql["origin"]),
        "converted": mql["mql_id"].isin(set(deals["mql_id"])).to_numpy(),
    })
    out.attrs["dataset"] = "olist_mql_conversion"
    return out


# ----------------------------------------------------------------------------- Telco
_TELCO_YES_NO = ["Partner", "Dependents", "PhoneService", "PaperlessBilling"]
_TELCO_CATEGORIES = ["gender", "MultipleLines", "InternetService", "OnlineSecurity",
                     "OnlineBackup", "DeviceProtection", "TechSupport", "StreamingTV",
                     "StreamingMovies", "Contract", "PaymentMethod"]


def telco_accounts(path: str | os.PathLike[str]) -> pd.DataFrame:
    """IBM Telco subscribers as an account table (a **B2C** stand-in, not B2B).

    One row per ``customerID`` (7,043). Values are those of
    ``Telco-Customer-Churn.csv`` with types made explicit:

    * ``SeniorCitizen`` (0/1) and the Yes/No columns ``Partner``, ``Dependents``,
      ``PhoneService``, ``PaperlessBilling`` become bool;
    * ``Churn`` (Yes/No) becomes bool: the churn label (26.5%);
    * ``TotalCharges`` becomes a number; its 11 blanks, all with ``tenure`` = 0
      (just signed, not yet billed), become 0.0 rather than missing, so those
      customers are not ranked on retention alone;
    * the other columns keep their text categories (``No internet service`` is
      a category of its own).

    Roles used by ``configs/telco.yaml``: demographics (``gender``,
    ``SeniorCitizen``, ``Partner``, ``Dependents``), the services and the
    contract terms are the features: what a subscriber is and signs up for.
    This is the usual reading of the dataset, but it is a snapshot: a service
    added after sign-up (an upsell) is post-sale, and the file cannot tell.
    ``tenure`` and ``TotalCharges`` record how long the customer stayed, so they
    are never features (the config makes ``TotalCharges`` an outcome, ``tenure``
    post-sale); ``MonthlyCharges`` is the price of the chosen services and a
    factor of ``TotalCharges``, so it is post-sale too.

    Parameters
    ----------
    path : path-like
        The CSV itself (any name, e.g. Kaggle's ``WA_Fn-UseC_-Telco-Customer-Churn.csv``),
        the folder holding ``Telco-Customer-Churn.csv``, or the folder holding
        ``ibm_telco_churn/``.

    Raises
    ------
    DataError
        The file or a column is missing, ``customerID`` is duplicated, or a
        Yes/No or charge column holds other values.
    """
    p = _locate(path, TELCO_DIR, _TELCO_FILE, any_file=True)
    cols = ["customerID", "SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges", "Churn",
            *_TELCO_YES_NO, *_TELCO_CATEGORIES]
    raw = _read_csv(p, cols, dtype=str, keep_default_na=False)
    if raw["customerID"].duplicated().any():
        raise DataError("customerID is duplicated; replace it with the original export", str(p))
    df = raw.copy()
    for c in [*_TELCO_YES_NO, "Churn"]:
        v = df[c].str.strip()
        if not v.isin(["Yes", "No"]).all():
            raise DataError(f"column '{c}' holds values other than Yes/No; "
                            "replace it with the original export", str(p))
        df[c] = v == "Yes"
    sc = df["SeniorCitizen"].str.strip()
    if not sc.isin(["0", "1"]).all():
        raise DataError("column 'SeniorCitizen' holds values other than 0/1; "
                        "replace it with the original export", str(p))
    df["SeniorCitizen"] = sc == "1"
    for c in ("tenure", "MonthlyCharges", "TotalCharges"):
        text = df[c].str.strip()
        num = pd.to_numeric(text.mask(text == ""), errors="coerce")
        if (num.isna() & (text != "")).any():
            raise DataError(f"column '{c}' holds non-numeric values; "
                            "replace it with the original export", str(p))
        df[c] = num
    if df["tenure"].isna().any() or df["MonthlyCharges"].isna().any():
        raise DataError("tenure or MonthlyCharges has blanks; replace it with the original export",
                        str(p))
    blank_total = df["TotalCharges"].isna()
    if (blank_total & (df["tenure"] > 0)).any():
        raise DataError("TotalCharges is blank for a customer with tenure > 0; "
                        "replace it with the original export", str(p))
    df["TotalCharges"] = df["TotalCharges"].fillna(0.0)
    df["tenure"] = df["tenure"].astype(int)
    for c in _TELCO_CATEGORIES:
        df[c] = df[c].astype("string").str.strip()
    df["customerID"] = df["customerID"].astype("string")
    df = df[list(raw.columns)]
    df.attrs.update({"dataset": "telco_accounts", "n_total_charges_blank": int(blank_total.sum())})
    return df


# ----------------------------------------------------------------------------- CRM export
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
        amount, _ = _coerce_numeric(opportunities[spec.amount])  # "$1,200.00" reads as 1200
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
_MAVEN_FIXES = {"sector": {"technolgy": "technology"},
                "office_location": {"Philipines": "Philippines"}}


def maven_accounts(data_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Account-level table from the Maven CRM sample (**fictional** B2B data).

    One row per account of ``accounts.csv`` (85), keyed by ``account`` (the
    company name, unique). Firmographics, all known before any deal:
    ``sector``, ``year_established``, ``revenue`` (USD millions), ``employees``,
    ``office_location`` and ``subsidiary_of`` (blank = independent) with
    ``is_subsidiary`` (bool) derived from it. Two misspellings of the original
    are corrected in the output (``technolgy`` -> ``technology``,
    ``Philipines`` -> ``Philippines``); the input is untouched.

    Outcomes, from ``sales_pipeline.csv`` opportunities of that account whose
    ``deal_stage`` is Won or Lost (open Engaging / Prospecting ones have no
    outcome yet and 1,425 of them have no account):

    * ``won_value``: sum of ``close_value`` over Won deals;
    * ``win_rate``: Won / (Won + Lost);
    * ``n_won``, ``n_closed`` and ``n_opportunities`` (all stages): context.

    Deliberately not used: ``sales_agent`` / ``manager`` / ``regional_office``
    (process, not the customer), ``product`` (what was pitched: a deal
    attribute, not an account one), ``engage_date`` / ``close_date`` and the
    sales cycle (known only after the outcome). There is no churn label (no
    renewals in the data). Win rates span only 53-75% across accounts, so the
    firmographic signal is expected to be weak.

    Raises
    ------
    DataError
        A file or column is missing, an account is duplicated, or a Won deal
        has no value (see :func:`crm_accounts`, which does the join).
    """
    p_acc = _locate(data_dir, MAVEN_DIR, _MAVEN_FILES["accounts"])
    p_pipe = _locate(data_dir, MAVEN_DIR, _MAVEN_FILES["pipeline"])
    acc = _read_csv(p_acc, ["account", "sector", "year_established", "revenue", "employees",
                            "office_location", "subsidiary_of"])
    pipe = _read_csv(p_pipe, ["opportunity_id", "account", "deal_stage", "close_value"])
    if acc["account"].isna().any() or acc["account"].duplicated().any():
        raise DataError("account names must be unique and present; "
                        "replace it with the original export", str(p_acc))
    out = pd.DataFrame({"account": acc["account"].astype("string").str.strip()})
    for c in ("sector", "office_location"):
        out[c] = _blank_to_na(acc[c]).replace(_MAVEN_FIXES[c])
    for c in ("year_established", "employees"):
        out[c] = pd.to_numeric(acc[c], errors="coerce").astype("Int64")
    out["revenue"] = pd.to_numeric(acc["revenue"], errors="coerce").astype(float)
    out["subsidiary_of"] = _blank_to_na(acc["subsidiary_of"])
    out["is_subsidiary"] = out["subsidiary_of"].notna().to_numpy(bool)
    out = out[["account", "sector", "year_established", "revenue", "employees",
               "office_location", "subsidiary_of", "is_subsidiary"]]

    spec = OpportunitiesConfig(path=str(p_pipe), account="account", stage="deal_stage",
                               won=["Won"], lost=["Lost"], amount="close_value")
    out = crm_accounts(out, pipe, spec, id_column="account", source=str(p_pipe))
    out.attrs["dataset"] = "maven_accounts"
    return out


# ----------------------------------------------------------------------------- registry
#: name -> (builder, config file name under the project's ``configs/``). Each
#: builder takes the shared data root (or its own folder) as first argument.
DATASETS: dict[str, tuple[Callable[..., pd.DataFrame], str]] = {
    "olist": (olist_sellers, "olist.yaml"),
    "telco": (telco_accounts, "telco.yaml"),
    "maven": (maven_accounts, "maven.yaml"),
}
