"""The retraining gate never lets a challenger without an ICP wipe out the champion's.

Found on a wholesale-like table: fresh rows with scrambled outcomes gave a champion AUC of
0.438 and a challenger with no reliable ICP at AUC 0.512; the challenger "passed" (its AUC did
not trail) and was promoted, exit 0, every criterion removed, in a cron job with nobody told.
"""

from __future__ import annotations

import math

from icpml.config import demo_config
from icpml.retrain import _gate


def _m(auc, found, lo=math.nan, lift=math.nan):
    return {"fit_roc_auc": auc, "icp_found": found, "icp_lift": lift,
            "icp_lift_ci": [lo, lo + 0.5] if found else [math.nan, math.nan]}


def test_no_icp_challenger_fails_against_a_degraded_champion_with_criteria():
    cfg = demo_config()
    ok, why = _gate(_m(0.438, True, lo=0.56, lift=0.92), _m(0.512, False), cfg)
    assert not ok and any("found no reliable ICP to replace the champion's" in w for w in why)
    # another input of the kind: the champion's interval barely includes 1, AUCs near 0.5
    ok, why = _gate(_m(0.55, True, lo=0.98, lift=1.3), _m(0.58, False), cfg)
    assert not ok


def test_the_gate_is_unchanged_otherwise():
    cfg = demo_config()
    # the champion still holds: as before, with its own reason
    ok, why = _gate(_m(0.8, True, lo=1.4), _m(0.8, False), cfg)
    assert not ok and any("while the champion's still holds" in w for w in why)
    # neither has an ICP: the AUC decides
    assert _gate(_m(0.52, False), _m(0.53, False), cfg)[0]
    # a challenger with an ICP replaces a degraded champion
    assert _gate(_m(0.45, True, lo=0.7), _m(0.8, True, lo=1.5), cfg)[0]


def test_a_tentative_challenger_icp_does_not_replace_a_stable_one_that_holds():
    """Found on wholesale: a retrain promoted `Channel = 1 and Region = 2`, reappearing in 0 of
    5 refits, over the champion's stable `Channel = 2`."""
    cfg = demo_config()
    champ, chall = _m(0.8, True, lo=1.4), {**_m(0.81, True, lo=1.5), "icp_tentative": True}
    ok, why = _gate(champ, chall, cfg)
    assert not ok and any("challenger's ICP is tentative" in w for w in why)
    # a stable challenger, a tentative champion, or a champion that no longer holds: as before
    assert _gate(champ, {**chall, "icp_tentative": False}, cfg)[0]
    assert _gate({**champ, "icp_tentative": True}, chall, cfg)[0]
    assert _gate(_m(0.8, True, lo=0.9), chall, cfg)[0]
