"""Run the icpml CLI and stop the process at a chosen point (kill -9 or SIGTERM there).

usage: python _killat.py POINT icpml-args...   (signal from KILLSIG, default SIGKILL)

POINT: after-first-champion  right after the first @champion alias write
       during-churn-register as the churn model is about to be registered
       during-report          inside the report folder's build (a hidden temp folder exists)
"""

import os
import signal
import sys

point = sys.argv.pop(1)
sig = getattr(signal, os.environ.get("KILLSIG", "SIGKILL"))

from icpml import report, tracking  # noqa: E402


def _kill():
    os.kill(os.getpid(), sig)


if point == "after-first-champion":
    real = tracking.set_alias

    def set_alias(name, alias, version):
        real(name, alias, version)
        if alias == "champion":
            _kill()

    tracking.set_alias = set_alias
elif point == "during-churn-register":
    real_reg = tracking._register

    def _register(name, model, sig_, reg):
        if name == "churn_model":
            _kill()
        return real_reg(name, model, sig_, reg)

    tracking._register = _register
elif point == "during-report":
    real_md = report.render_markdown

    def render_markdown(res, *args, **kwargs):  # report.html and figures are already written
        _kill()
        return real_md(res, *args, **kwargs)

    report.render_markdown = render_markdown
else:
    raise SystemExit(f"unknown point {point}")

from icpml.cli import main  # noqa: E402

sys.argv = ["icpml", *sys.argv[1:]]
main()
