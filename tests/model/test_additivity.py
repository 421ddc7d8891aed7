"""SHAP additivity for every model we explain: grouped SHAP + base value == raw output (1e-6)."""

from __future__ import annotations

import numpy as np
import pytest

from icpml.explain import AdditivityError, explain


@pytest.mark.parametrize("which", ["fit_model", "churn_model"])
def test_grouped_shap_adds_up_to_decision_function(discovery, which):
    model = getattr(discovery, which)
    X = discovery.accounts.iloc[:400]
    e = explain(model, X)
    Z = model.pipeline.named_steps["prep"].transform(X[model.columns])
    raw = model.pipeline.named_steps["clf"].decision_function(Z)
    assert np.max(np.abs(e.values.to_numpy().sum(axis=1) + e.base_value - raw)) < 1e-6
    assert list(e.values.columns) == model.columns  # one column per business column


def test_one_hot_columns_are_grouped_back(discovery):
    e = discovery.fit_explanation
    assert "industry" in e.values.columns
    assert not any("SaaS" in c for c in e.values.columns)


def test_wrong_explanations_are_refused(discovery, monkeypatch):
    import shap

    real = shap.TreeExplainer

    class Off(real):  # an explainer whose SHAP values are slightly off
        def shap_values(self, *a, **k):
            return np.asarray(super().shap_values(*a, **k)) + 0.01

    monkeypatch.setattr(shap, "TreeExplainer", Off)
    with pytest.raises(AdditivityError, match="miss the model output"):
        explain(discovery.fit_model, discovery.accounts.iloc[:50])
