"""icpml: discover a B2B company's Ideal Customer Profile from its own customer data.

Public API::

    from icpml import load_config, demo_config, discover, make_accounts
    res = discover(demo_config(), make_accounts(3000, seed=0))   # pure: writes nothing
    res.criteria.icp            # inclusion criteria with held-out evidence
    res.scored                  # every account: fit score, churn risk, tier, reasons

    from icpml import run_discovery
    run = run_discovery(cfg)     # what `icpml discover` does: MLflow run, models, report
    run.discovery, run.run_id, run.report_dir

    from icpml import load_or_discover
    res = load_or_discover(cfg)  # computed once per (data, config, icpml), then read back

Warnings are kept in ``Discovery.warnings`` and logged to the ``icpml`` logger, which
prints nothing until the application configures logging (the command line does).
"""

import logging as _logging

from icpml._vocab import VERSION as __version__  # noqa: E402  (one spelling: icpml._vocab)

# a library logs, the application decides what is shown (no stray stderr in notebooks)
_logging.getLogger("icpml").addHandler(_logging.NullHandler())

# The public names load on first use (PEP 562): `import icpml` and the command line's start
# stay light (0.1 s, not 1.5 s), so `icpml --help` is quick and the CLI's SIGTERM handler is
# in place before scikit-learn, MLflow and pandas are imported.
_PUBLIC = {
    "load_or_discover": "icpml.cache",
    "Config": "icpml.config",
    "demo_config": "icpml.config",
    "load_config": "icpml.config",
    "CriteriaSet": "icpml.criteria",
    "Criterion": "icpml.criteria",
    "ConfigError": "icpml.errors",
    "DataError": "icpml.errors",
    "IcpmlError": "icpml.errors",
    "TrackingError": "icpml.errors",
    "Discovery": "icpml.pipeline",
    "discover": "icpml.pipeline",
    "DiscoveryRun": "icpml.run",
    "run_discovery": "icpml.run",
    "Scorer": "icpml.scoring",
    "make_accounts": "icpml.synthetic",
}


def __getattr__(name: str):
    import importlib

    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # once
        return value
    raise AttributeError(f"module 'icpml' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


__all__ = [
    "__version__",
    "Config",
    "ConfigError",
    "CriteriaSet",
    "Criterion",
    "DataError",
    "Discovery",
    "DiscoveryRun",
    "IcpmlError",
    "Scorer",
    "TrackingError",
    "demo_config",
    "discover",
    "load_config",
    "load_or_discover",
    "make_accounts",
    "run_discovery",
]
