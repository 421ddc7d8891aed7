"""The ``icpml`` command line: thin (parse, load config, call the pipeline, report).

Commands: ``demo``, ``discover``, ``score``, ``promote``, ``export``, ``retrain``,
``validate``, ``report``. Exit codes
are those of :class:`icpml.errors.ExitCode`: 0 done, 2 config/usage, 3 data, 4
gate alert, 5 tracking store, 6 another retrain running, 1 a bug. A user error prints one line naming the key or column
and the fix, without a traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import typer
from typer.core import TyperGroup

from icpml import __version__
from icpml.errors import ConfigError, IcpmlError, redact


def _plain_usage_message(msg: str) -> str:
    """An option's parse error without the pydantic wording typer passes through.

    ``Value error, 'xml' is not one of 'sql', ...`` -> ``'xml' is not one of 'sql', ...``;
    ``Input should be greater than or equal to 200`` -> ``must be at least 200``.
    """
    msg = msg.removeprefix("Value error, ")
    for old, new in (("Input should be greater than or equal to", "must be at least"),
                     ("Input should be less than or equal to", "must be at most"),
                     ("Input should be a valid integer, unable to parse string as an integer",
                      "must be a whole number"),
                     ("Input should be a valid number, unable to parse string as a number",
                      "must be a number"),
                     ("Input should be", "must be")):
        msg = msg.replace(old, new)
    return msg


class _Group(TyperGroup):
    """The ``icpml`` command group: option parse errors reach the user in plain words."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except typer.BadParameter as err:
            err.message = _plain_usage_message(err.message)
            raise


app = typer.Typer(
    name="icpml",
    help="Discover your Ideal Customer Profile (ICP) and anti-ICP from your own customer data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain help: flags without a type column ("<bool>"), choices listed as <sql|pandas|json>,
    # and usage errors as plain lines rather than boxed panels
    rich_markup_mode=None,
    cls=_Group,
)

log = logging.getLogger("icpml")


class _State:
    quiet = False
    verbose = False
    #: set by a command whose work is all on disk and that tracks nothing (``score``):
    #: the console script then exits without the interpreter's teardown
    exit_now = False
    #: SIGTERM arrived (see :func:`_on_sigterm`)
    terminated = False


def _setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    root = logging.getLogger("icpml")
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(asctime)s %(levelname)s %(name)s %(message)s" if verbose else "%(levelname)s %(message)s"
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    # stage lines are for unattended jobs; a terminal gets a progress line instead
    if not verbose and sys.stderr.isatty() and not quiet:
        for name in ("icpml.pipeline", "icpml.run"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"icpml {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings, errors and output paths.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging with timestamps.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """icpml: evidence-based ICP and anti-ICP criteria, fit and churn scores, tiers."""
    if quiet and verbose:
        raise typer.BadParameter("use --quiet or --verbose, not both")
    _State.quiet, _State.verbose = quiet, verbose
    _setup_logging(quiet, verbose)


def _handle_errors(fn):
    """Turn user errors into one line on stderr and the matching exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except IcpmlError as err:
            if _State.terminated:  # e.g. a SIGTERM inside the store's commit, come out as
                # "logging to the store failed": it unwound like the interruption it was
                typer.echo(f"interrupted: {_interrupted_state()}", err=True)
                raise typer.Exit(Interrupted.exit_code) from None
            # one line naming the key or column and the fix (each line prefixed, should there be more)
            for line in redact(str(err)).splitlines() or [""]:
                typer.secho(f"error: {line}", err=True, fg="red")
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt as err:
            typer.echo(f"interrupted: {_interrupted_state()}", err=True)
            raise typer.Exit(getattr(err, "exit_code", 130)) from None
        except Exception:
            # a SIGTERM that lands inside a C extension (e.g. matplotlib drawing) can come out
            # as that library's own error; it has unwound like the interruption it was
            if _State.terminated:
                typer.echo(f"interrupted: {_interrupted_state()}", err=True)
                raise typer.Exit(Interrupted.exit_code) from None
            raise

    return wrapper


def _interrupted_state() -> str:
    """What the interruption left: the tracking module's note (a rolled-back or half-done
    promotion), else the default promise, true when no champion write had started."""
    tracking = sys.modules.get("icpml.tracking")
    note = tracking.interruption_note() if tracking is not None else None
    return note or "nothing was half-written; the champion is unchanged"


def _progress():
    """A one-line stage progress display on a terminal; None elsewhere (logs suffice).

    The line shows a bar over the stages, the stage (with its count and time left while a
    long stage reports steps, e.g. ``stability 3/8, ~40 s left at most``) and the time so
    far. Outside a terminal, with --quiet or with --verbose the stage log lines say it.
    """
    if _State.quiet or _State.verbose or not sys.stderr.isatty():
        return None
    t0 = time.perf_counter()

    def show(stage: str, done: int, total: int) -> None:
        width = 24
        filled = int(width * done / max(total, 1))
        bar = "#" * filled + "-" * (width - filled)
        msg = f"\r[{bar}] {done}/{total} {stage:<18} {time.perf_counter() - t0:5.1f}s\x1b[K"
        sys.stderr.write(msg)
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _out(text: str = "", *, always: bool = False) -> None:
    if always or not _State.quiet:
        typer.echo(text)


def _promotion_note(run, config_arg: str | None) -> list[str]:
    """What ``icpml score`` will use after this run, and how to change it (``run``: a
    :class:`icpml.run.DiscoveryRun`; ``config_arg``: the --config as typed; None for the
    demo, which has no config file to name)."""
    from icpml.tracking import champion

    res = run.discovery
    fit_uri = run.model_versions.get("fit")
    if not fit_uri:
        return []
    version = fit_uri.rsplit("/", 1)[-1]
    name = res.config.tracking.fit_model_name
    if run.model_aliases.get("fit") == "champion":
        if config_arg is None:
            return []
        return [f"note:      icpml score -c {config_arg} scores with this version "
                f"({name} version {version}, @champion)"]
    champ = champion(res.config)
    if config_arg is None:  # the demo: no config file to promote with
        kept = f"version {champ['version']} (@champion)" if champ else "no @champion"
        return [f"note:      {name} keeps {kept}; score with this run's version: "
                f"icpml score --model models:/{name}/{version}"]
    how = f"icpml promote -c {config_arg} --version {version}"
    if champ is None:
        return [f"note:      {name} has no @champion; make this version it: {how}"]
    return [f"note:      icpml score keeps using version {champ['version']} (@champion) until you "
            f"promote version {version}: {how}"]


def _print_summary(run, elapsed: float, config_arg: str | None = None) -> None:
    res = run.discovery
    cs = res.criteria
    _out()
    _out(cs.verdict.get("message", ""))
    if cs.icp:
        _out("\nICP (every criterion):")
        for c in cs.icp:
            ev = c.evidence
            _out(f"  + {c.describe():<42} coverage {ev['coverage']:>3.0%}  lift {ev['lift']:.2f}x")
    if cs.anti_icp:
        _out("\nAnti-ICP (any one excludes):")
        for c in cs.anti_icp:
            ev = c.evidence
            _out(f"  - {c.describe():<42} coverage {ev['coverage']:>3.0%}  "
                 f"wrongly drops {ev['best_wrongly_excluded']:.0%} of best customers")
    elif cs.icp:
        where = ("out of fold" if (cs.meta.get("evidence") or {}).get("method") == "crossfit"
                 else "on the held-out accounts")
        _out(f"\nAnti-ICP: none found (no exclusion held up {where}; "
             "no account is tiered Excluded)")
    fit = res.fit_model.holdout
    def auc(h: dict) -> str:
        ci = (f" (95% CI {h['roc_auc_ci_low']:.2f}-{h['roc_auc_ci_high']:.2f})"
              if "roc_auc_ci_low" in h else "")
        return f"{h['roc_auc']:.3f}{ci}"

    line = f"\nFit model held-out ROC AUC {auc(fit)}"
    if res.churn_model is not None:
        line += f"; churn model {auc(res.churn_model.holdout)}"
    _out(line)
    # res.warnings were logged as they arose (stderr, WARNING): not repeated here
    _out()
    if run.report_dir:
        _out(f"report:    {run.report_dir / 'report.html'}", always=True)
        _out(f"criteria:  {run.report_dir / 'criteria.json'}  (and criteria.md)", always=True)
    if run.run_id:
        from icpml.tracking import redact, tracking_uri

        uri = redact(tracking_uri(res.config))
        _out(f"mlflow:    run {run.run_id} in experiment '{res.config.tracking.experiment}'",
             always=True)
        for k, v in run.model_versions.items():
            _out(f"model:     {v} (@{run.model_aliases.get(k, '')})", always=True)
        for line in _promotion_note(run, config_arg):
            _out(line, always=True)
        _out(f"browse:    {_mlflow_command()} ui --backend-store-uri {uri}")
    _out(f"done in {elapsed:.1f}s")


def _mlflow_command() -> str:
    """How to run the ``mlflow`` of this environment from the user's shell: ``mlflow`` when
    that is the one on PATH, else its full path (an environment that is not activated)."""
    import shutil

    here = Path(sys.executable).parent / ("mlflow.exe" if os.name == "nt" else "mlflow")
    if not here.exists():
        return f"{shlex.quote(sys.executable)} -m mlflow"
    on_path = shutil.which("mlflow")
    if on_path and Path(on_path).resolve() == here.resolve():
        return "mlflow"
    return shlex.quote(str(here))


def _print_diff(diff: dict) -> None:
    """The criteria diff of a retrain as plain terminal text (the report keeps the Markdown)."""
    kinds = {"icp": "ICP", "anti_icp": "anti-ICP"}
    rows = ([("added", e, e["criterion"]) for e in diff.get("added", [])]
            + [("removed", e, e["criterion"]) for e in diff.get("removed", [])]
            + [("changed", e, f"{e['was']} -> {e['criterion']}") for e in diff.get("changed", [])])
    if not rows:
        _out("Changes since the last champion: none (no criterion added, removed or changed)")
        return
    _out("Changes since the last champion:")
    for what, e, text in rows:
        label = f"{what} ({kinds.get(e.get('kind'), e.get('kind'))})"
        _out(f"  {label:<20} {text}")


@app.command()
@_handle_errors
def demo(
    n: Annotated[int, typer.Option(metavar="N", help="Number of synthetic accounts (200 or more).",
                                   min=200)] = 3000,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of the synthetic data.")] = 0,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log to MLflow.")] = True,
) -> None:
    """Run the whole pipeline on built-in synthetic accounts with a planted ICP.

    Writes data/demo/accounts.csv, a report under reports/, and an MLflow run
    under mlruns/ (all relative to the project root).
    """
    from icpml._io import write_table
    from icpml.config import demo_config
    from icpml.data import load_source
    from icpml.run import run_discovery
    from icpml.synthetic import PLANTED_ANTI_ICP, PLANTED_ICP, make_accounts

    t0 = time.perf_counter()
    cfg = demo_config()
    accounts = make_accounts(n, seed=seed)
    path = write_table(accounts, cfg.resolve(cfg.data.path), excel_safe=False)  # input data
    _out(f"demo data: {len(accounts)} synthetic accounts -> {path}")
    # discover on the file as written, as `icpml discover` / `retrain` will read it: the same
    # data fingerprint, so a retrain on unchanged data is a no-op
    accounts, _ = load_source(cfg)
    run = run_discovery(cfg, accounts, track=track, report=True, progress=_progress(),
                        source=str(path))
    _finish(cfg, run, time.perf_counter() - t0)
    _out(f"\nplanted truth: ICP = industry in {sorted(PLANTED_ICP['industry'])}, "
         f"{PLANTED_ICP['employees'][0]} <= employees <= {PLANTED_ICP['employees'][1]}, "
         f"crm = {next(iter(PLANTED_ICP['crm']))}; anti-ICP = requires_onprem, "
         f"employees < {PLANTED_ANTI_ICP['employees_below']}")


@app.command()
@_handle_errors
def discover(
    config: Annotated[Path, typer.Option("--config", "-c", metavar="FILE", help="YAML config.")],
    data: Annotated[Path | None, typer.Option(metavar="FILE",
                                              help="Account table (CSV/Parquet); overrides data.path.")] = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log to MLflow.")] = True,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write the report.")] = True,
) -> None:
    """Discover the ICP from your customer table: cohorts, models, criteria, report, MLflow run."""
    from icpml.config import load_config
    from icpml.data import load_source
    from icpml.run import run_discovery

    t0 = time.perf_counter()
    cfg = load_config(config)
    if cfg.columns.product:  # one row per customer and product: one ICP per product line
        _run_products(cfg, data, track=track, t0=t0)
        return
    accounts, source = load_source(cfg, data) if data else (None, None)
    run = run_discovery(cfg, accounts, track=track, report=report, progress=_progress(),
                        source=source)
    _finish(cfg, run, time.perf_counter() - t0, str(config))


@app.command()
@_handle_errors
def score(
    out: Annotated[Path, typer.Option(metavar="FILE", help="Output file (.csv or .parquet).")],
    data: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Accounts to score (CSV/Parquet): customers or prospects.")] = None,
    query: Annotated[str | None, typer.Option(
        metavar="SQL", help="Or a DuckDB SQL query returning the accounts, e.g. "
             "\"SELECT * FROM 'crm/*.parquet' WHERE country = 'DE'\".")] = None,
    model: Annotated[str | None, typer.Option(
        metavar="URI", help="Registered model URI, e.g. models:/acme-fit@champion or models:/acme-fit/3. "
             "Default: the config's model @champion (tracking.fit_model_name, else "
             "<name>-fit); without --config, the store's only model.")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", metavar="FILE", help="Config whose model (@champion) and tracking store to use.")] = None,
    explain: Annotated[bool, typer.Option(
        "--explain/--no-explain", help="top_reasons from per-account exact SHAP values (much "
        "slower) instead of the ICP criteria each account meets or misses.")] = False,
    reasons: Annotated[bool | None, typer.Option("--reasons/--no-reasons", hidden=True,
                                                 help="Older name of --explain.")] = None,
    excel_safe: Annotated[bool, typer.Option(
        "--excel-safe/--no-excel-safe", help="CSV output: text cells starting with = + - @ "
        "(or a tab or CR) get a leading ' so a spreadsheet shows them instead of running them "
        "(CSV injection); numbers are untouched, Parquet is never changed.")] = True,
) -> None:
    """Score an account table: fit score, churn risk, tier, ICP match, reasons.

    Uses the config's model at @champion (or --model) and says on stderr which
    version and run it loaded. The table is read, scored and written in chunks, so
    memory stays flat however many rows it has; the output file appears only when
    every row is scored. Exit 3 when the table has none of the model's columns.
    With a columns.product config and no --model, every account is scored against every
    product's @champion (icp_/fit_/tier_<product>, best_product, n_product_icps).
    """
    import pandas as pd

    from icpml import tracking
    from icpml._io import prefetch, table_suffix, write_table_stream
    from icpml.config import load_config
    from icpml.data import iter_accounts, iter_query
    from icpml.scoring import TIERS, round_scores

    if (data is None) == (query is None):
        raise ConfigError("pass exactly one of --data accounts.csv or --query \"SELECT ...\"")
    if data is not None and out.resolve() == data.resolve():
        raise ConfigError("--out must differ from --data; input files are never overwritten")
    # a CSV is read by people: scores with 4 decimals, not 17 digits (Parquet keeps full doubles)
    readable = table_suffix(out) == ".csv"
    cfg = load_config(config) if config else None
    if cfg is not None and cfg.columns.product and model is None:
        # one model per product line: score every account against every product's @champion
        if explain or reasons:
            raise ConfigError("--explain gives one product's reasons: add --model "
                              f"models:/{cfg.tracking.fit_model_name}-<product>@champion")
        _score_products(cfg, data, query, out, readable=readable, excel_safe=excel_safe)
        return
    ref = tracking.resolve_model(model, cfg)
    if cfg is not None and ref.name and ref.name != cfg.tracking.fit_model_name:
        log.warning("--model %s is not the model of config '%s' (%s): scoring with %s as asked",
                    model, cfg.name, cfg.tracking.fit_model_name, ref.name)
    scorer = tracking.load_scorer(ref, cfg)
    log.info("model: %s", ref.describe())  # which model scored; the last line repeats it under --quiet
    rows = scorer.chunk_size
    # read, score and write overlap: each stage runs in its own thread, a chunk or two ahead
    needed = [scorer.id_column, *scorer.label_columns, *scorer.input_columns]
    source = str(data) if data is not None else "the query"
    batches = prefetch(iter_accounts(data, rows, needed, text=scorer.text_columns) if data is not None else iter_query(query, rows))
    check = _ColumnCheck(scorer, source, header=_table_header(data) if data is not None else None)
    batches = check.first(batches)  # exit 3 before any output when no model column is there
    counts = dict.fromkeys(TIERS, 0)

    def scored_batches():
        for part in scorer.score_batches(check.watch(batches),
                                         explain=explain if reasons is None else reasons):
            for tier, k in part["tier"].value_counts().items():
                counts[tier] += int(k)
            yield round_scores(part) if readable else part

    t0 = time.perf_counter()
    n = write_table_stream(prefetch(scored_batches()), out, excel_safe=excel_safe)
    for w in check.warnings(n):
        log.warning(w)
    summary = pd.DataFrame({"tier": TIERS, "accounts": [counts[t] for t in TIERS]})
    summary["share"] = summary["accounts"] / max(n, 1)
    _out(summary.to_string(index=False, formatters={"share": "{:.0%}".format}))
    # data issues were logged once by the scorer as a warning (shown even with --quiet)
    dt = time.perf_counter() - t0
    _out(f"scored {n} accounts in {dt:.1f}s ({n / max(dt, 1e-9):,.0f} rows/s)")
    # a --quiet job's log still says which model version scored these rows
    _out(f"scored:    {out} (model {ref.describe()})", always=True)
    _State.exit_now = True


def _score_products(cfg, data: Path | None, query: str | None, out: Path, *, readable: bool,
                    excel_safe: bool) -> None:
    """``icpml score`` of a columns.product config: every product's @champion, one row per
    account (see :class:`icpml.products.ProductScorers`)."""
    import pandas as pd

    from icpml._io import prefetch, write_table_stream
    from icpml.data import iter_accounts, iter_query
    from icpml.errors import DataError
    from icpml.products import load_product_scorers
    from icpml.scoring import SCORE_DECIMALS

    ps = load_product_scorers(cfg)
    for p, why in ps.missing.items():
        log.warning("product %s is not scored: %s", p, why.splitlines()[0])
    for p, ref in ps.refs.items():
        log.info("model: %s [product %s]", ref.describe(), p)
    rows = min(s.chunk_size for s in ps.scorers.values())
    source = str(data) if data is not None else "the query"
    batches = iter_accounts(data, rows, text=True) if data is not None else iter_query(query, rows)
    counts: dict[str, int] = {}
    wanted = ps.input_columns

    def checked():
        first = True
        for b in batches:
            if first and not any(c in b.columns for c in wanted):
                shown = ", ".join(wanted[:8]) + (f" and {len(wanted) - 8} more"
                                                 if len(wanted) > 8 else "")
                raise DataError(f"none of the product models' columns is in the table ({shown}); "
                                "check the headers or --config", source)
            first = False
            yield b

    def combined():
        for part in ps.score_batches(checked()):
            for k, v in part["best_product"].fillna("(none)").value_counts().items():
                counts[k] = counts.get(k, 0) + int(v)
            if readable:
                part = part.round({**{f"fit_{p}": SCORE_DECIMALS for p in ps.products},
                                   "expected_value": 2})
            yield part

    t0 = time.perf_counter()
    n = write_table_stream(prefetch(combined()), out, excel_safe=excel_safe)
    summary = pd.DataFrame({"best_product": list(counts), "accounts": list(counts.values())})
    summary["share"] = summary["accounts"] / max(n, 1)
    _out(summary.to_string(index=False, formatters={"share": "{:.0%}".format}))
    dt = time.perf_counter() - t0
    _out(f"scored {n} accounts against {len(ps.scorers)} products in {dt:.1f}s")
    # a --quiet job's log still says which model version scored each product
    used = "; ".join(f"{p}: {ref.describe()}" for p, ref in ps.refs.items())
    _out(f"scored:    {out} (models {used})", always=True)
    _State.exit_now = True


def _table_header(path: Path) -> list[str] | None:
    """Every column name of a CSV or Parquet table (None when it cannot be read: the reader
    then says why)."""
    try:
        p = Path(path).expanduser()
        if "".join(p.suffixes).lower().endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            return list(pq.read_schema(p).names)
        import pandas as pd

        return [str(c) for c in pd.read_csv(p, nrows=0).columns]
    except Exception:  # noqa: BLE001 - best effort: iter_accounts reports unreadable files
        return None


class _ColumnCheck:
    """What a prospect table lacks for the model: no model column at all is an error (exit 3);
    a criterion column that is absent or never filled gets a warning saying which tiers it
    costs (an ICP criterion that cannot hold leaves no account in Tier 1)."""

    def __init__(self, scorer, source: str, header: list[str] | None = None):
        self.scorer, self.source = scorer, source
        self.header = header  # the table's every column (the chunks hold only the model's)
        self.present: list[str] = []
        self.filled: set[str] = set()
        self.criteria_columns = scorer.criteria.columns

    def near_names(self, names) -> dict[str, str]:
        """The model's columns (and id) the table lacks but holds up to case and spacing
        ('CRM' for 'crm', 'Account_ID ' for 'account_id'): model name -> table name."""
        from icpml.data import spelling_key

        names = [str(n) for n in names]
        by_key = {spelling_key(n): n for n in reversed(names)}  # the first one written
        have = set(names)
        out = {}
        for c in [self.scorer.id_column, *self.scorer.input_columns]:
            twin = by_key.get(spelling_key(c))
            if c not in have and twin is not None:
                out[c] = twin
        return out

    def first(self, batches):
        from icpml.errors import DataError

        it = iter(batches)
        head = next(it, None)
        cols = set(head.columns) if head is not None else set()
        self.present = [c for c in self.scorer.input_columns if c in cols]
        near = self.near_names(self.header if self.header is not None else cols)
        renames = ", ".join(f"{t!r} to {c!r}" for c, t in near.items())
        if not self.present:
            close = getattr(batches, "close", None)
            if close is not None:  # stop the reader thread
                close()
            want = self.scorer.input_columns
            shown = ", ".join(want[:8]) + (f" and {len(want) - 8} more" if len(want) > 8 else "")
            fix = (f"rename {renames} (the names differ only in case or spacing)" if near else
                   "check the headers, or --model / --config")
            raise DataError(f"none of the model's columns is in the table ({shown}); every "
                            f"account would be scored on unknowns: {fix}", self.source)
        if near:
            log.warning("%s: column name(s) %s differ from the model's only in case or "
                        "spacing, so those columns are scored as missing: rename %s",
                        self.source, ", ".join(repr(t) for t in near.values()), renames)

        def chain():
            if head is not None:
                yield head
            yield from it

        return chain()

    def watch(self, batches):
        todo = [c for c in self.criteria_columns if c in self.present]
        for b in batches:
            if todo:
                hit = [c for c in todo if b[c].notna().any()]
                self.filled.update(hit)
                todo = [c for c in todo if c not in self.filled]
            yield b

    def warnings(self, n: int) -> list[str]:
        import pandas as pd

        out: list[str] = []
        if n == 0:
            return out
        empty = self.scorer.prepare(pd.DataFrame({self.scorer.id_column: ["?"]}))[0]
        for col in self.criteria_columns:
            if col in self.filled:
                continue
            state = "missing" if col not in self.present else "empty in every row"
            for c in self.scorer.criteria.icp + self.scorer.criteria.anti_icp:
                if col not in c.columns:
                    continue
                holds = bool(c.mask(empty).iloc[0])
                if c.kind == "icp":
                    effect = ("holds for every account whatever its real value" if holds else
                              "cannot hold, so no account can reach Tier 1")
                    what = "ICP criterion"
                else:
                    effect = ("excludes every account" if holds else
                              "can exclude no account, so excluded accounts get a tier")
                    what = "anti-ICP exclusion"
                out.append(f"column '{col}' is {state}: {what} '{c.describe()}' {effect} "
                           f"(the tiers of all {n} accounts)")
        return out


@app.command()
@_handle_errors
def promote(
    config: Annotated[Path, typer.Option("--config", "-c", metavar="FILE",
                                          help="YAML config (its models and store).")],
    version: Annotated[str, typer.Option(metavar="N", help="Version of the fit model to make @champion.")],
) -> None:
    """Make a version @champion: fit model and its run's churn model, both or neither.

    Then `icpml score -c <config>` scores with it. Use it after a discover whose
    models became @challenger (the config already had a champion), for example
    after fixing the config. Recorded in reports/promotions.json like a retrain.
    """
    from icpml.config import load_config
    from icpml.tracking import promote_version

    cfg = load_config(config)
    done = promote_version(cfg, version)
    t = cfg.tracking
    churn = f" and {t.churn_model_name} version {done['churn']}" if done["churn"] else ""
    was = f" (was version {done['previous']})" if done["previous"] else ""
    if done["record"] is None:
        _out(f"{t.fit_model_name} version {done['fit']} is already @champion; nothing changed",
             always=True)
        return
    _record_promotion(cfg, done["record"])
    _out(f"promoted:  {t.fit_model_name} version {done['fit']}{churn} to @champion{was}",
         always=True)
    _out(f"icpml score -c {config} now scores with version {done['fit']} (run {done['run_id']})")


def _finish(cfg, run, elapsed: float, config_arg: str | None = None) -> None:
    """After a recorded discovery: its promotion record and the summary. The run is complete
    (models, aliases, report), so a SIGTERM from here on stops nothing: the command ends
    with exit 0, as does the interpreter's teardown (:func:`main`)."""
    from icpml import interrupts

    with interrupts.deferred(check=False):
        _record_first_champion(cfg, run)
        _print_summary(run, elapsed, config_arg)


def _record_first_champion(cfg, run) -> None:
    """A first run's models became @champion: record that decision in reports/promotions.json
    and index.md now, as every later promotion is (not left for the next run to 'repair')."""
    if run.model_aliases.get("fit") != "champion":
        return
    from icpml.tracking import reconcile_history

    try:
        reconcile_history(cfg)
    except Exception as err:  # the models are registered; only the history could not be written
        log.warning("the first champion could not be added to reports/promotions.json (%s); "
                    "the next run adds it", err)


def _record_promotion(cfg, entry: dict) -> None:
    """A promotion by hand is recorded like retraining's: promotions.json and index.md (the
    run's decision tags were set with the aliases, by :func:`icpml.tracking.promote`)."""
    from icpml.tracking import record_promotion

    try:
        record_promotion(cfg, entry)
    except Exception as err:  # the aliases moved; only the history could not be written
        log.warning("promoted, but the promotion history could not be written (%s)", err)


@app.command()
@_handle_errors
def export(
    criteria: Annotated[Path | None, typer.Option(
        metavar="FILE", help="criteria.json from a report folder.")] = None,
    format: Annotated[Literal["sql", "pandas", "json"], typer.Option(
        "--format", "-f", help="SQL WHERE clauses, pandas query strings or JSON.")] = "sql",
    dialect: Annotated[str | None, typer.Option(
        metavar="DIALECT", help="SQL dialect (any sqlglot dialect: duckdb, sqlite, postgres, snowflake, bigquery, ...); "
             "default: portable SQL that runs in DuckDB and SQLite.")] = None,
    out: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Write here instead of stdout (with a product-line config: a "
             "folder, one sub-folder per product).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", metavar="FILE", help="Or export the criteria of this config's "
             "@champion model (every product's, with columns.product).")] = None,
) -> None:
    """Export ICP and anti-ICP criteria as enforceable filters (SQL WHERE, pandas, JSON).

    The filters run on the raw account table (as the warehouse stores it, or as
    ``pd.read_csv`` reads it) and select the rows icpml marks: category and yes/no
    spellings are folded, formatted numbers cleaned, as the criteria's schema says.
    With ``--config`` of a product-line config every product's @champion criteria are
    exported in one command: to stdout one section per product, or with ``--out DIR``
    ``DIR/<product>/criteria.sql`` (``criteria_pandas.py``, ``criteria.json``).
    """
    from icpml._io import atomic_write_text
    from icpml.criteria import CriteriaSet

    if format not in ("sql", "pandas", "json"):
        raise ConfigError(f"--format '{format}' is unknown; use sql, pandas or json")
    if dialect is not None and format != "sql":
        raise ConfigError(f"--dialect applies to --format sql only (not {format}); drop --dialect")
    if (criteria is None) == (config is None):
        raise ConfigError("pass exactly one of --criteria criteria.json or --config <config>.yaml")
    if config is not None:
        _export_config(config, format, dialect, out)
        return
    try:
        cs = CriteriaSet.from_dict(json.loads(criteria.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ConfigError(f"criteria file '{criteria}' does not exist; pass a criteria.json "
                          "from a report folder") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"'{criteria}' is not a valid criteria.json ({err})") from None
    text = _export_text(cs, format, dialect)
    if out:
        atomic_write_text(out, text)
        _out(f"written:   {out}", always=True)
    else:
        typer.echo(text, nl=False)


#: file name of each export format in a per-product export folder
_EXPORT_FILES = {"sql": "criteria.sql", "pandas": "criteria_pandas.py", "json": "criteria.json"}


def _export_config(config: Path, format: str, dialect: str | None, out: Path | None) -> None:
    """``icpml export -c``: the champion's criteria, or every product's (one section or
    sub-folder per product, written all or nothing)."""
    from icpml import tracking
    from icpml.config import load_config, model_slug

    cfg = load_config(config)
    if cfg.columns.product:  # one model per product line, as `icpml score -c` uses them
        from icpml.products import load_product_scorers

        ps = load_product_scorers(cfg)
        for p, why in ps.missing.items():
            log.warning("product %s is not exported: %s", p, why.splitlines()[0])
        sets = {p: ps.scorers[p].criteria for p in ps.products if p in ps.scorers}
        for p, ref in ps.refs.items():
            log.info("model: %s [product %s]", ref.describe(), p)
        sources = {p: ps.refs[p].describe() for p in sets if p in ps.refs}
    else:
        ref = tracking.resolve_model(None, cfg)
        log.info("model: %s", ref.describe())
        sets = {None: tracking.load_scorer(ref, cfg).criteria}
        sources = {None: ref.describe()}
    # the SQL and pandas texts name the model version they came from (a --quiet job's file too)
    texts = {p: _export_text(cs, format, dialect, source=sources.get(p)) for p, cs in sets.items()}
    if None in texts:
        if out:
            from icpml._io import atomic_write_text

            atomic_write_text(out, texts[None])
            # a --quiet job's log still says which model version the filters came from
            _out(f"written:   {out} (model {ref.describe()})", always=True)
        else:
            typer.echo(texts[None], nl=False)
        return
    if out is None:
        if format == "json":  # one document: product -> its criteria.json
            typer.echo(json.dumps({p: json.loads(t) for p, t in texts.items()}, indent=2))
            return
        mark = "--" if format == "sql" else "#"
        for p, text in texts.items():
            typer.echo(f"{mark} ===== product {p} =====")
            typer.echo(text, nl=False)
        return
    from icpml.products import write_folder

    write_folder(out, {f"{model_slug(p)}/{_EXPORT_FILES[format]}": t for p, t in texts.items()})
    for p in texts:
        _out(f"written:   {out / model_slug(p) / _EXPORT_FILES[format]}", always=True)


def _export_text(cs, format: str, dialect: str | None, source: str | None = None) -> str:
    """One criteria set as the text ``icpml export`` writes in ``format``; ``source`` (the
    model version, for ``export -c``) is named in a comment of the SQL and pandas texts."""
    if format == "sql":
        try:
            q = cs.to_sql(dialect)
        except ValueError:
            raise ConfigError(f"--dialect '{dialect}' is unknown; use a sqlglot dialect such as "
                              "duckdb, sqlite, postgres, snowflake or bigquery") from None
        shown = dialect or "portable, runs in DuckDB and SQLite; --dialect for another engine"
        notes = [f"-- icpml criteria as SQL filters for the raw account table ({shown}).",
                 *([f"-- model: {source}"] if source else []),
                 "-- Categories and yes/no cells compare case- and space-folded; formatted numbers "
                 "are cleaned before the cast."]
        if not cs.schema:
            notes.append("-- criteria.json has no column schema: numbers are read as plain numbers and "
                         "yes/no as the usual spellings.")
        if dialect is None:
            notes.append("-- Folded here: spaces and tabs (other whitespace: pick a --dialect).")
            notes.append("-- Numbers: a separator, currency mark or second sign inside one ('1,5', '--1') "
                         "is dropped here, where icpml reads no number (--dialect duckdb reads it as icpml).")
        elif dialect.lower() == "sqlite":
            notes.append("-- SQLite has no REGEXP_REPLACE: ASCII whitespace runs of up to 64 characters "
                         "are folded; non-ASCII spaces are not.")
            notes.append("-- Numbers: a separator, currency mark or second sign inside one ('1,5', '--1') "
                         "is dropped here, where icpml reads no number.")
        return ("\n".join(notes) + "\n\n-- ICP: accounts meeting every inclusion and no exclusion\n"
                f"WHERE {q['icp']}\n\n-- anti-ICP: accounts to walk past\nWHERE {q['anti_icp']}\n")
    if format == "pandas":
        code = cs.to_pandas(code=True)
        head = ["# icpml criteria as pandas filters on the raw account table as pd.read_csv reads it",
                "# (category and yes/no spellings folded, formatted numbers parsed).",
                *([f"# model: {source}"] if source else [])]
        try:
            q = cs.to_pandas()
            head += ['# df.query(icp, engine="python") keeps the ICP rows; icp_mask(df) is the same filter.',
                     f"icp = {q['icp']!r}", f"anti_icp = {q['anti_icp']!r}"]
        except ConfigError as err:
            log.warning("no df.query strings written: %s", err)
            head += [f"# no df.query strings: {err}", "# df[icp_mask(df)] keeps the ICP rows."]
        return ("\n".join(head) + "\n\n\n"
                'def icp_mask(df):\n    """True for the ICP rows of df: every inclusion, no exclusion."""\n'
                f"    return {code['icp']}\n\n\n"
                'def anti_icp_mask(df):\n    """True for the anti-ICP rows of df: any exclusion."""\n'
                f"    return {code['anti_icp']}\n")
    return cs.to_json()


@app.command()
@_handle_errors
def retrain(
    config: Annotated[Path, typer.Option("--config", "-c", metavar="FILE", help="YAML config.")],
    data: Annotated[Path | None, typer.Option(metavar="FILE",
                                              help="Fresh account table; overrides data.path.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide, but log and promote nothing.")] = False,
) -> None:
    """Train a challenger; promote it to @champion only if it is at least as good.

    Exit 0 when promoted, kept or unchanged; 4 when the challenger fails and the
    champion no longer holds (alert); 3 bad data; 5 tracking store; 6 locked.
    """
    from icpml.config import load_config
    from icpml.data import load_source
    from icpml.retrain import retrain as run

    t0 = time.perf_counter()
    cfg = load_config(config)
    accounts = load_source(cfg, data)[0] if data else None
    result = run(cfg, accounts, dry_run=dry_run, progress=_progress())
    # a --quiet cron log still says which version scores from now on, why, and any warning
    _out(f"decision:  {result.decision}{_retrain_versions(result, cfg.tracking.fit_model_name)}",
         always=True)
    for r in result.reasons:
        _out(f"  - {r}", always=True)
    if result.diff:
        _print_diff(result.diff)
    if result.criteria_drift is not None and len(result.criteria_drift):
        stopped = result.criteria_drift[~result.criteria_drift["holds"]]
        for _, row in stopped.iterrows():
            _out(f"warning: criterion no longer holds on fresh data: {row['criterion']}", always=True)
    if result.run is not None and result.run.report_dir:
        _out(f"report:    {result.run.report_dir / 'report.html'}", always=True)
    _out(f"done in {time.perf_counter() - t0:.1f}s")
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _retrain_versions(result, name: str) -> str:
    """Which fit model version is @champion after a retrain, for the decision line."""
    champ, chall = result.champion_version, result.challenger_version
    if result.decision == "promoted" and chall:
        return f" ({name} version {chall} is @champion" + (f"; was version {champ})" if champ else ")")
    if result.decision in ("kept", "alert") and champ:
        return (f" ({name} version {champ} stays @champion"
                + (f"; version {chall} is @challenger)" if chall else ")"))
    if result.decision == "unchanged" and champ:
        return f" ({name} version {champ} stays @champion)"
    return ""


@app.command()
@_handle_errors
def validate(
    config: Annotated[Path, typer.Option("--config", "-c", metavar="FILE", help="YAML config (column roles).")],
    data: Annotated[Path | None, typer.Option(metavar="FILE",
                                              help="Accounts with known outcomes; overrides data.path.")] = None,
    criteria: Annotated[Path | None, typer.Option(metavar="FILE",
                                                  help="Hand-written hypothesis ICP (YAML).")] = None,
    model: Annotated[str | None, typer.Option(metavar="URI", help="Model version whose tiers to check, e.g. "
                                              "models:/acme-fit@champion.")] = None,
) -> None:
    """Check an ICP on data: a hypothesis ICP (--criteria) and/or a model's tiers (--model)."""
    from icpml.config import load_config
    from icpml.data import feature_kinds, load_source, normalize_categories, validate_accounts
    from icpml.hypothesis import evaluate_criteria, load_hypothesis, validate_tiers

    cfg = load_config(config)
    if criteria is None and model is None:
        raise ConfigError("pass --criteria mine.yaml, --model "
                          f"models:/{cfg.tracking.fit_model_name}@champion, or both")
    if data is None and not cfg.data.path:
        raise ConfigError("no data: pass --data or set data.path in the config")
    raw, source = load_source(cfg, data)
    df = validate_accounts(raw, cfg, source=source)
    df, _ = normalize_categories(df, [c for c, k in feature_kinds(df, cfg).items() if k == "categorical"])
    sets = []
    if criteria is not None:
        sets.append(("hypothesis ICP", evaluate_criteria(load_hypothesis(criteria, cfg), df, cfg)))
    scorer = None
    if model is not None:
        from icpml import tracking

        ref = tracking.resolve_model(model, cfg)
        if ref.name and ref.name != cfg.tracking.fit_model_name:
            log.warning("--model %s is not the model of config '%s' (%s): validating %s as asked",
                        model, cfg.name, cfg.tracking.fit_model_name, ref.name)
        scorer = tracking.load_scorer(ref, cfg)
        log.info("model: %s", ref.describe())
        # the title names the version checked, so a --quiet log still says which one
        sets.append((ref.describe(), evaluate_criteria(scorer.criteria, df, cfg)))
    # the evidence is this command's output: printed under --quiet too (as export's text is)
    for title, cs in sets:
        _out(f"\n== {title}: {cs.verdict['message']}", always=True)
        for c in cs.icp + cs.anti_icp:
            ev = c.evidence
            lo, hi = ev["lift_ci"]
            sign = "+" if c.kind == "icp" else "-"
            _out(f"  {sign} {c.describe():<40} coverage {ev['coverage']:.0%}  lift {ev['lift']:.2f}x "
                 f"(95% CI {lo:.2f}-{hi:.2f})  q {ev['q_value']:.3g}", always=True)
    if scorer is not None:
        table = validate_tiers(scorer, df, cfg)
        _out("\nOutcomes per tier (rates with 95% Wilson intervals):", always=True)
        _out(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"), always=True)


@app.command()
@_handle_errors
def products(
    config: Annotated[Path, typer.Option("--config", "-c", metavar="FILE", help="YAML config with columns.product or products:.")],
    data: Annotated[Path | None, typer.Option(metavar="FILE", help="Account table; overrides data.path.")] = None,
    track: Annotated[bool, typer.Option("--track/--no-track",
                                        help="Log and register each product's models.")] = False,
) -> None:
    """Cross-product ICP: one ICP per product line, their overlap, and a combined score.

    Product lines are either ``columns.product`` (one row per customer and product; each
    product's ICP from its own rows; ``icpml discover`` runs this too) or ``products:``
    (an outcome set per product). Writes ``reports/<name>_products_<data>/``: products.html
    and products.md (one section per product, the overlap), per product report.html,
    products_scored.csv (every account against every product), overlap.csv, summary.csv
    and per product criteria.json / criteria.sql / criteria_pandas.txt.
    """
    from icpml.config import load_config

    t0 = time.perf_counter()
    _run_products(load_config(config), data, track=track, t0=t0)


def _run_products(cfg, data: Path | None, *, track: bool, t0: float) -> None:
    """``icpml products`` (and ``icpml discover`` with columns.product): discover, write, print."""
    from icpml.data import data_fingerprint, load_source
    from icpml.products import discover_products

    accounts, _ = load_source(cfg, data)
    res = discover_products(cfg, accounts, track=track)
    folder = res.write(cfg.resolve(cfg.report.dir)
                       / f"{cfg.name}_products_{data_fingerprint(accounts)[:8]}")
    _out(res.to_markdown())
    _out(f"done in {time.perf_counter() - t0:.1f}s")
    _out(f"products:  {folder / 'products.html'}  (and products.md)", always=True)


@app.command()
@_handle_errors
def report(
    run: Annotated[str, typer.Option(metavar="ID|URI",
                                     help="Run id, or a model URI such as models:/acme-fit@champion.")],
    config: Annotated[Path | None, typer.Option("--config", "-c", metavar="FILE",
                                                help="Config (tracking store, report folder).")] = None,
) -> None:
    """Restore the report of any run or model version from MLflow into reports/."""
    from icpml.config import find_project_root, load_config
    from icpml.tracking import restore_report

    cfg = load_config(config) if config else None
    dest_root = cfg.resolve(cfg.report.dir) if cfg else find_project_root() / "reports"
    what = f"run {run}"
    if run.startswith("models:/"):  # pin the version an alias points to now, and say which
        from icpml.tracking import resolve_model

        ref = resolve_model(run, cfg)
        run, what = ref.load_uri, f"model {ref.describe()}"
    dest = restore_report(run, dest_root, cfg)
    _out(f"report:    {dest / 'report.html'} ({what})", always=True)


class Interrupted(KeyboardInterrupt):
    """SIGTERM (e.g. from cron's timeout or systemd) handled like Ctrl-C: unwind, clean up."""

    exit_code = 128 + 15


def _on_sigterm(signum, frame):  # noqa: ARG001
    from icpml import interrupts

    _State.terminated = True
    interrupts.request(Interrupted())  # raised now, or between two store writes


def main(prog_name: str | None = None) -> None:
    """Console-script entry point (``icpml`` and ``python -m icpml``).

    SIGTERM raises :class:`Interrupted` so that, as with Ctrl-C, every ``finally``
    runs: temporary files are removed, the MLflow run is closed, a half-built
    report folder is deleted and aliases stay as they were. Exit code 130
    (SIGINT) or 143 (SIGTERM).
    """
    import signal

    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        pass
    try:
        app(prog_name=prog_name or "icpml")
    except SystemExit as done:
        if _State.terminated and done.code == 130:
            # a SIGTERM before any command ran (while the command line was parsed): click
            # turned it into its Ctrl-C exit, 130, without a word (a SIGTERM once a run is
            # recorded keeps that run's exit code, see _finish)
            typer.echo(f"interrupted: {_interrupted_state()}", err=True)
            done = SystemExit(Interrupted.exit_code)
        if _State.exit_now:
            _exit_now(done.code)
        try:  # the command is over: a SIGTERM during the interpreter's teardown (1-2 s)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # would only turn its exit code to 143
        except ValueError:  # not the main thread
            pass
        raise done from None


def _exit_now(code) -> None:
    """Flush and leave at once (after ``score``, whose output is already renamed into place).

    Tearing down an interpreter that imported scikit-learn, MLflow, SQLAlchemy and numba
    takes a second or more (measured 0.9-1.6 s), nothing of which a finished ``score``
    needs: its file is closed and renamed, its threads and worker processes stopped.
    """
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))
