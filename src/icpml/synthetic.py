"""Synthetic B2B accounts with a planted, known ICP and anti-ICP.

:func:`make_accounts` is the demo data of ``icpml demo`` and the ground truth of
the behavioural tests. It draws realistic firmographic, technographic, intent
and procurement columns, post-sale usage and support columns, and outcomes
(ARR, NRR, tenure, churn, NPS) from one latent *account value*:

* **Planted ICP** (each condition raises value; all three together add a bonus):
  ``industry in {SaaS, FinTech}``, ``150 <= employees <= 600``,
  ``crm == Salesforce``.
* **Planted anti-ICP** (each sharply lowers value and, for on-prem, raises churn):
  ``requires_onprem == True``, ``employees < 50``.

Everything else is noise or only correlated with the signal: revenue follows
employees, funding stage and procurement complexity follow size, the marketing
automation tool follows the CRM. Revenue, CRM and intent have missing values.
With ``signal=False`` the outcomes are drawn independently of every feature,
which is the "no ICP exists" case the criteria stage must not invent one for.

:func:`make_interaction_accounts` draws the same columns with outcomes from
*combinations* only: the industries and the size band pay off together, not
alone, and on-prem hurts only companies under 200 employees (anti-ICP
``requires_onprem AND employees < 200``), the case for interaction criteria.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["make_accounts", "PLANTED_ICP", "PLANTED_ANTI_ICP", "planted_icp_match", "planted_anti_match",
           "make_interaction_accounts", "interaction_icp_match", "interaction_anti_match"]

#: The planted ICP: every condition together.
PLANTED_ICP = {
    "industry": {"SaaS", "FinTech"},
    "employees": (150, 600),
    "crm": {"Salesforce"},
}
#: The planted anti-ICP: any condition.
PLANTED_ANTI_ICP = {
    "requires_onprem": True,
    "employees_below": 50,
}

_INDUSTRIES = ["SaaS", "FinTech", "E-commerce", "Healthcare", "Manufacturing", "Retail",
               "Education", "Logistics", "Media"]
_INDUSTRY_P = [0.20, 0.14, 0.12, 0.11, 0.11, 0.10, 0.08, 0.08, 0.06]
_REGIONS = ["North America", "EMEA", "APAC", "LATAM"]
_CRMS = ["Salesforce", "HubSpot", "Pipedrive", "Zoho", "Microsoft Dynamics"]
_CRM_P = [0.40, 0.28, 0.12, 0.10, 0.10]
_CLOUDS = ["AWS", "Azure", "GCP", "On-prem"]
_SYL = ["nor", "vex", "al", "tri", "qua", "zen", "lum", "cor", "bri", "sol", "ver", "pax",
        "kin", "dra", "mo", "tel", "ori", "fyn", "gal", "ux"]
_SUFFIX = ["Systems", "Labs", "Group", "Technologies", "Analytics", "Health", "Logistics",
           "Retail", "Partners", "Cloud", "Works", "Inc."]


def planted_icp_match(df: pd.DataFrame) -> pd.Series:
    """True where an account meets every planted ICP condition.

    The ground truth of :func:`make_accounts`: industry in the planted set,
    employees in the planted band and the planted CRM.

    Parameters
    ----------
    df : pandas.DataFrame
        Accounts from :func:`make_accounts`. Not modified.

    Returns
    -------
    pandas.Series of bool
        Same index as ``df``.
    """
    emp = df["employees"]
    return (
        df["industry"].isin(PLANTED_ICP["industry"])
        & emp.between(*PLANTED_ICP["employees"])
        & df["crm"].isin(PLANTED_ICP["crm"])
    ).astype(bool)


def planted_anti_match(df: pd.DataFrame) -> pd.Series:
    """True where any planted anti-ICP condition holds (on-prem required, or fewer than 50 employees).

    Parameters
    ----------
    df : pandas.DataFrame
        Accounts from :func:`make_accounts`. Not modified.

    Returns
    -------
    pandas.Series of bool
        Same index as ``df``.
    """
    return (df["requires_onprem"].astype(bool) | (df["employees"] < 50)).astype(bool)


def _names(rng: np.random.Generator, n: int) -> list[str]:
    first = rng.choice(_SYL, size=(n, 2))
    suffix = rng.choice(_SUFFIX, size=n)
    return [f"{a.capitalize()}{b} {s}" for (a, b), s in zip(first, suffix, strict=True)]


def make_accounts(n: int = 3000, seed: int = 0, *, signal: bool = True) -> pd.DataFrame:
    """Draw ``n`` synthetic B2B customer accounts.

    Parameters
    ----------
    n : int
        Number of accounts.
    seed : int
        Seed; the same ``(n, seed, signal)`` always gives the same table.
    signal : bool
        If False, outcomes do not depend on any feature (no ICP exists).

    Returns
    -------
    pandas.DataFrame
        One row per account: ``account_id``, ``company_name``, ``domain``,
        pre-sale features, post-sale columns, and outcomes ``arr``, ``nrr``,
        ``nps``, ``tenure_months``, ``churned``.

    Raises
    ------
    ValueError
        ``n`` is below 1.

    Examples
    --------
    >>> df = make_accounts(200, seed=1)
    >>> df.shape[0], df["account_id"].is_unique
    (200, True)
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    rng = np.random.default_rng(seed)

    industry = rng.choice(_INDUSTRIES, size=n, p=_INDUSTRY_P)
    employees = np.clip(np.round(np.exp(rng.normal(np.log(250), 1.0, n))), 3, 50_000).astype(int)
    # revenue follows size (a correlated column the model must not be fooled by)
    revenue = employees * np.exp(rng.normal(np.log(0.15), 0.5, n))
    revenue = np.round(revenue, 2).astype(float)
    revenue[rng.random(n) < 0.10] = np.nan
    region = rng.choice(_REGIONS, size=n, p=[0.45, 0.3, 0.17, 0.08])
    size_z = (np.log(employees) - np.log(250)) / 1.0
    stage_idx = np.clip(np.round(2 + 1.2 * size_z + rng.normal(0, 0.9, n)), 0, 5).astype(int)
    funding_stage = np.array(["Bootstrapped", "Seed", "Series A", "Series B", "Series C+", "Public"])[
        stage_idx
    ]
    crm = rng.choice(_CRMS, size=n, p=_CRM_P).astype(object)
    crm[rng.random(n) < 0.06] = None  # tech stack unknown
    ma_choices = np.array(["Marketo", "HubSpot", "Pardot", "None"])
    ma = ma_choices[rng.choice(4, size=n, p=[0.25, 0.2, 0.2, 0.35])].astype(object)
    ma[(crm == "HubSpot") & (rng.random(n) < 0.7)] = "HubSpot"
    ma[(crm == "Salesforce") & (rng.random(n) < 0.4)] = "Pardot"
    cloud = rng.choice(_CLOUDS, size=n, p=[0.48, 0.26, 0.16, 0.10])
    onprem_p = np.where(cloud == "On-prem", 0.55, 0.07)
    requires_onprem = rng.random(n) < onprem_p
    proc_idx = np.clip(np.round(0.8 + 0.6 * size_z + rng.normal(0, 0.7, n)), 0, 2).astype(int)
    procurement = np.array(["low", "medium", "high"])[proc_idx]
    intent_score = np.clip(rng.normal(50, 18, n), 0, 100).round(1)
    webinars = rng.poisson(1.2, n)

    if signal:
        in_ind = np.isin(industry, list(PLANTED_ICP["industry"]))
        lo, hi = PLANTED_ICP["employees"]
        in_band = (employees >= lo) & (employees <= hi)
        in_crm = crm == "Salesforce"
        anti = requires_onprem | (employees < PLANTED_ANTI_ICP["employees_below"])
        value = (
            0.9 * in_ind
            + 0.9 * in_band
            + 0.9 * in_crm
            + 0.8 * (in_ind & in_band & in_crm)
            + 0.15 * (np.nan_to_num(intent_score, nan=50) - 50) / 18
            - 2.0 * anti
            + rng.normal(0, 0.6, n)
        )
        value = value - value.mean()
        onprem_churn = 1.2 * requires_onprem
    else:
        value = rng.normal(0, 1.0, n)
        onprem_churn = 0.0
        size_z = np.zeros(n)  # no feature may carry signal, not even through ARR
    intent_score = intent_score.astype(float)
    intent_score[rng.random(n) < 0.08] = np.nan

    outcomes = _outcomes(rng, value, size_z, requires_onprem, onprem_churn)

    names = _names(rng, n)
    domains = [nm.split()[0].lower() + f"{i}.example.com" for i, nm in enumerate(names)]
    df = pd.DataFrame(
        {
            "account_id": [f"ACC-{i:05d}" for i in range(1, n + 1)],
            "company_name": names,
            "domain": domains,
            "industry": industry,
            "employees": employees,
            "annual_revenue_musd": revenue,
            "region": region,
            "funding_stage": funding_stage,
            "crm": pd.array(crm, dtype="string"),
            "marketing_automation": ma,
            "cloud_provider": cloud,
            "procurement_complexity": procurement,
            "requires_onprem": requires_onprem,
            "intent_score": intent_score,
            "webinars_attended": webinars,
            "product_usage_pct": outcomes["product_usage_pct"],
            "support_tickets_per_month": outcomes["support_tickets_per_month"],
            "arr": outcomes["arr"],
            "nrr": outcomes["nrr"],
            "nps": outcomes["nps"],
            "tenure_months": outcomes["tenure_months"],
            "churned": outcomes["churned"],
        }
    )
    for c in ("company_name", "domain", "industry", "region", "funding_stage",
              "marketing_automation", "cloud_provider", "procurement_complexity"):
        df[c] = df[c].astype("string")
    return df


#: Interaction generator: on-prem hurts only companies below this size.
INTERACTION_SMALL = 200


def interaction_icp_match(df: pd.DataFrame) -> pd.Series:
    """Every ICP condition of :func:`make_interaction_accounts` (same as the planted ICP).

    Parameters
    ----------
    df : pandas.DataFrame
        Accounts from :func:`make_interaction_accounts`. Not modified.

    Returns
    -------
    pandas.Series of bool
        Same index as ``df``.
    """
    return planted_icp_match(df)


def interaction_anti_match(df: pd.DataFrame) -> pd.Series:
    """The interaction anti-ICP: ``requires_onprem AND employees < 200``.

    Parameters
    ----------
    df : pandas.DataFrame
        Accounts from :func:`make_interaction_accounts`. Not modified.

    Returns
    -------
    pandas.Series of bool
        Same index as ``df``.
    """
    emp = pd.to_numeric(df["employees"], errors="coerce")
    return (df["requires_onprem"].astype(bool) & (emp < INTERACTION_SMALL)).astype(bool)


def make_interaction_accounts(n: int, seed: int) -> pd.DataFrame:
    """``make_accounts`` columns with outcomes redrawn from an interaction-only value.

    ``value = 1.8 [industry in {SaaS, FinTech} AND 150 <= employees <= 600]
    + 0.9 [crm == Salesforce] - 2.0 [requires_onprem AND employees < 200]
    + 0.15 z(intent) + N(0, 0.6)``: neither industry nor the size band pays off alone,
    on-prem is harmless for companies of 200 or more. ARR, NRR, NPS, churn, tenure,
    usage and tickets follow the value as in ``make_accounts`` (both call ``_outcomes``).

    Parameters
    ----------
    n : int
        Number of accounts.
    seed : int
        Seed; the same ``(n, seed)`` always gives the same table.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`make_accounts`, one row per account.
    """
    df = make_accounts(n, seed)
    rng = np.random.default_rng([seed, 104729])
    emp = df["employees"].to_numpy(float)
    in_ind = df["industry"].isin(["SaaS", "FinTech"]).to_numpy()
    in_band = (emp >= 150) & (emp <= 600)
    in_crm = df["crm"].isin(["Salesforce"]).fillna(False).to_numpy(bool)
    onprem = df["requires_onprem"].to_numpy(bool)
    anti = onprem & (emp < INTERACTION_SMALL)
    intent = np.nan_to_num(df["intent_score"].to_numpy(float), nan=50.0)
    value = (1.8 * (in_ind & in_band) + 0.9 * in_crm - 2.0 * anti
             + 0.15 * (intent - 50) / 18 + rng.normal(0, 0.6, n))
    value = value - value.mean()
    size_z = np.log(emp) - np.log(250)
    for col, v in _outcomes(rng, value, size_z, onprem, 1.2 * anti).items():
        df[col] = v
    return df


def _outcomes(rng: np.random.Generator, value: np.ndarray, size_z: np.ndarray,
              onprem: np.ndarray, onprem_churn) -> dict[str, np.ndarray]:
    """ARR, NRR, NPS, churn, tenure, usage and tickets of accounts of latent ``value``.

    ``onprem_churn`` is added to the churn log-odds (on-prem accounts churn more).
    Draws from ``rng`` in a fixed order, so each generator stays reproducible.
    """
    n = len(value)
    arr = np.round(np.exp(np.log(30_000) + 0.45 * value + 0.15 * size_z + rng.normal(0, 0.3, n)), -1)
    nrr = np.round(1.0 + 0.08 * value + rng.normal(0, 0.06, n), 3)
    nps = np.clip(np.round(25 + 18 * value + rng.normal(0, 15, n)), -100, 100).astype(int)
    churned = rng.random(n) < 1 / (1 + np.exp(-(-1.3 - 0.9 * value + onprem_churn)))
    tenure = np.where(churned, rng.integers(3, 25, n), rng.integers(6, 61, n))
    usage = np.clip(0.55 + 0.1 * value + rng.normal(0, 0.12, n), 0, 1).round(3)
    tickets = rng.poisson(np.exp(0.6 + 0.6 * onprem - 0.15 * value))
    return {"arr": arr, "nrr": nrr, "nps": nps, "churned": churned, "tenure_months": tenure,
            "product_usage_pct": usage, "support_tickets_per_month": tickets}
