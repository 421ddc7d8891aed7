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

from icpml.cache import load_or_discover  # noqa: E402
from icpml.config import Config, demo_config, load_config  # noqa: E402
from icpml.criteria import CriteriaSet, Criterion  # noqa: E402
from icpml.errors import ConfigError, DataError, IcpmlError, TrackingError  # noqa: E402
from icpml.pipeline import Discovery, discover  # noqa: E402
from icpml.run import DiscoveryRun, run_discovery  # noqa: E402
from icpml.scoring import Scorer  # noqa: E402
from icpml.synthetic import make_accounts  # noqa: E402

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
