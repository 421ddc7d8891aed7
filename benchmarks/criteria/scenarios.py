"""Benchmark scenarios: account tables with a planted truth that can be computed per row.

Every scenario function takes ``(seed, n)`` and returns a :class:`ScenarioData`:
the account table, the icpml config to run on it, and two functions giving the
planted truth per row (``truth_icp(df)``: the accounts the planted ICP targets,
i.e. every ICP condition and no anti-ICP condition; ``truth_anti(df)``: any
anti-ICP condition). The same function with another seed draws fresh accounts
from the same generator (used for membership F1).

Scenarios
---------
clean        ``make_accounts(3000, seed)``: planted ICP ``industry in {SaaS, FinTech}``
             AND ``150 <= employees <= 600`` AND ``crm == Salesforce``; anti-ICP
             ``requires_onprem`` OR ``employees < 50``.
messy        the clean draw, then 15% extra missing values in six feature columns,
             case / whitespace spelling variants of ``industry`` and ``crm`` values,
             an identifier-like column and a leaked outcome listed as features.
             Truth is computed on the clean values (kept in hidden ``_clean_*`` columns
             that are not in the config).
small        ``make_accounts(300, seed)``.
interaction  own generator: the ICP's industry and size only pay off *together*
             (no main effect of either alone), Salesforce is a main effect, and on-prem
             only hurts small companies (anti-ICP ``requires_onprem AND employees < 200``).
null         ``make_accounts(3000, seed, signal=False)``: no ICP exists; truth is empty.
large        ``make_accounts(30000, seed)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from icpml import demo_config
from icpml.config import Config, config_from_dict
from icpml.synthetic import (
    interaction_anti_match,
    interaction_icp_match,
    make_accounts,
    make_interaction_accounts,
    planted_anti_match,
    planted_icp_match,
)

PROJECT = Path(__file__).resolve().parents[2]

Truth = Callable[[pd.DataFrame], pd.Series]

#: Messy scenario: feature columns that get 15% extra missing values.
MESSY_MISSING_COLUMNS = ("employees", "annual_revenue_musd", "region", "intent_score",
                         "funding_stage", "marketing_automation")
MESSY_MISSING_SHARE = 0.15
#: Messy scenario: columns whose values get spelling variants, and the share of rows affected.
MESSY_VARIANT_COLUMNS = ("industry", "crm")
MESSY_VARIANT_SHARE = 0.15
#: Messy scenario: the identifier-like and the leaked columns listed among the features.
MESSY_ID_COLUMN = "crm_account_ref"
MESSY_LEAK_COLUMN = "renewal_flag"
#: Columns no method may name in a criterion, per scenario.
FORBIDDEN_COLUMNS = {"messy": (MESSY_ID_COLUMN, MESSY_LEAK_COLUMN)}



class ScenarioData(NamedTuple):
    """One scenario draw: accounts, config, and the planted truth per row."""

    accounts: pd.DataFrame
    config: Config
    truth_icp: Truth
    truth_anti: Truth


# ----------------------------------------------------------------------------- configs
def _config(update_features: dict[str, list[str]] | None = None) -> Config:
    """The demo config (``configs/demo.yaml``), optionally with extra feature columns."""
    data = demo_config(project_root=PROJECT).model_dump(mode="json")
    data.pop("project_root", None)
    for group, cols in (update_features or {}).items():
        data["columns"]["features"].setdefault(group, [])
        data["columns"]["features"][group] = [*data["columns"]["features"][group], *cols]
    return config_from_dict(data, project_root=PROJECT, source="benchmark config")


# ----------------------------------------------------------------------------- truths
def _clean_view(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every column that has a hidden ``_clean_<col>`` copy replaced by that copy."""
    out = df.copy()
    for c in df.columns:
        if c.startswith("_clean_"):
            out[c.removeprefix("_clean_")] = df[c]
    return out


def planted_truth_icp(df: pd.DataFrame) -> pd.Series:
    """Planted ICP of ``make_accounts`` and no planted anti-ICP, on the clean values."""
    clean = _clean_view(df)
    return (planted_icp_match(clean) & ~planted_anti_match(clean)).astype(bool)


def planted_truth_anti(df: pd.DataFrame) -> pd.Series:
    """Planted anti-ICP of ``make_accounts``, on the clean values."""
    return planted_anti_match(_clean_view(df)).astype(bool)


def interaction_truth_icp(df: pd.DataFrame) -> pd.Series:
    """All three ICP conditions of the interaction scenario, and not its anti-ICP."""
    return interaction_icp_match(df) & ~interaction_anti_match(df)


def interaction_truth_anti(df: pd.DataFrame) -> pd.Series:
    """``requires_onprem AND employees < 200``."""
    return interaction_anti_match(df)


def no_truth(df: pd.DataFrame) -> pd.Series:
    """No ICP and no anti-ICP exists (null scenario)."""
    return pd.Series(False, index=df.index)


# ----------------------------------------------------------------------------- scenarios
def clean(seed: int, n: int = 3000) -> ScenarioData:
    """``make_accounts(n, seed)`` with the demo config."""
    return ScenarioData(make_accounts(n, seed), _config(), planted_truth_icp, planted_truth_anti)


def small(seed: int, n: int = 300) -> ScenarioData:
    """Few accounts: ``make_accounts(300, seed)``."""
    return clean(seed, n)


def large(seed: int, n: int = 30_000) -> ScenarioData:
    """Many accounts: ``make_accounts(30000, seed)``."""
    return clean(seed, n)


def null(seed: int, n: int = 3000) -> ScenarioData:
    """Outcomes independent of every feature: ``make_accounts(n, seed, signal=False)``."""
    return ScenarioData(make_accounts(n, seed, signal=False), _config(), no_truth, no_truth)


def _spelling_variants(value: str) -> list[str]:
    """Variants a case/whitespace normaliser (strip + casefold) maps back to ``value``."""
    return [value.lower(), value.upper(), f" {value}", f"{value} "]


def _add_variants(s: pd.Series, rng: np.random.Generator, share: float) -> pd.Series:
    """Replace ``share`` of the non-missing values by a random spelling variant."""
    out = s.astype(object).copy()
    hit = np.flatnonzero(s.notna().to_numpy() & (rng.random(len(s)) < share))
    picks = rng.integers(0, 4, size=len(hit))
    for i, k in zip(hit, picks, strict=True):
        out.iloc[i] = _spelling_variants(str(out.iloc[i]))[k]
    return out.astype("string")


def _blank(s: pd.Series, rng: np.random.Generator, share: float) -> pd.Series:
    """Set ``share`` of the values (drawn at random) to missing."""
    out = s.astype(float) if pd.api.types.is_numeric_dtype(s) else s.astype("string")
    return out.mask(rng.random(len(s)) < share)


def messy(seed: int, n: int = 3000) -> ScenarioData:
    """The clean draw made messy (see the module docstring); truth on the clean values.

    * 15% extra missing values in :data:`MESSY_MISSING_COLUMNS`;
    * 15% of ``industry`` and ``crm`` values respelt: ``saas``, ``SAAS``, `` SaaS``,
      ``SaaS `` (a strip + casefold normaliser fixes every one; icpml's loader strips
      whitespace but keeps case, so ``saas`` stays a category of its own);
    * ``crm_account_ref``: unique Salesforce-style ids, listed as a technographic feature;
    * ``renewal_flag``: ``nrr > 1.0`` (an outcome in disguise, best-vs-worst AUC ~0.995),
      listed as a behavioural feature.
    """
    df = make_accounts(n, seed)
    rng = np.random.default_rng([seed, 7919])
    touched = (*MESSY_MISSING_COLUMNS, *MESSY_VARIANT_COLUMNS)
    for c in touched:
        df[f"_clean_{c}"] = df[c]
    for c in MESSY_MISSING_COLUMNS:
        df[c] = _blank(df[c], rng, MESSY_MISSING_SHARE)
    for c in MESSY_VARIANT_COLUMNS:
        df[c] = _add_variants(df[c], rng, MESSY_VARIANT_SHARE)
    alphabet = np.array(list("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789"))
    tails = rng.choice(alphabet, size=(n, 9))
    df[MESSY_ID_COLUMN] = pd.array([f"0016A{i:05d}{''.join(t)}" for i, t in enumerate(tails)],
                                   dtype="string")
    df[MESSY_LEAK_COLUMN] = df["nrr"] > 1.0
    cfg = _config({"technographic": [MESSY_ID_COLUMN], "behavioural": [MESSY_LEAK_COLUMN]})
    return ScenarioData(df, cfg, planted_truth_icp, planted_truth_anti)


def interaction(seed: int, n: int = 3000) -> ScenarioData:
    """Value from combinations only (see :func:`make_interaction_accounts`)."""
    return ScenarioData(make_interaction_accounts(n, seed), _config(), interaction_truth_icp,
                        interaction_truth_anti)


#: name -> scenario function, in report order.
SCENARIOS: dict[str, Callable[..., ScenarioData]] = {
    "clean": clean,
    "messy": messy,
    "small": small,
    "interaction": interaction,
    "large": large,
    "null": null,
}
#: scenarios whose outcomes carry a planted signal
WITH_SIGNAL = ("clean", "messy", "small", "interaction", "large")
