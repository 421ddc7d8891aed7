"""icpml: discover a B2B company's Ideal Customer Profile from its own customer data.

Public API::

    from icpml import load_config, demo_config, discover, make_accounts
    res = discover(demo_config(), make_accounts(3000, seed=0), track=False)
    res.criteria.icp            # inclusion criteria with held-out evidence
    res.scored                  # every account: fit score, churn risk, tier, reasons
"""

__version__ = "0.1.0"

from icpml.config import Config, demo_config, load_config  # noqa: E402
from icpml.criteria import CriteriaSet, Criterion  # noqa: E402
from icpml.errors import ConfigError, DataError, IcpmlError, TrackingError  # noqa: E402
from icpml.pipeline import Discovery, discover  # noqa: E402
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
    "IcpmlError",
    "Scorer",
    "TrackingError",
    "demo_config",
    "discover",
    "load_config",
    "make_accounts",
]
