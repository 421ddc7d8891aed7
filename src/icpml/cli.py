"""The ``icpml`` command line: thin (parse, load config, call the pipeline, report).

Commands: ``demo``, ``discover``, ``score``, ``export``, ``retrain``, ``validate``,
``report``. Exit codes
are those of :class:`icpml.errors.ExitCode`: 0 done, 2 config/usage, 3 data, 4
gate alert, 5 tracking store, 6 another retrain running, 1 a bug. A user error prints one line naming the key or column
and the fix, without a traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from icpml import __version__
from icpml.errors import ConfigError, IcpmlError

app = typer.Typer(
    name="icpml",
    help="Discover your Ideal Customer Profile (ICP) and anti-ICP from your own customer data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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
        logging.getLogger("icpml.pipeline").setLevel(logging.WARNING)


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
            typer.secho(f"error: {err}", err=True, fg="red")
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt as err:
            typer.echo("interrupted: nothing was half-written; the champion is unchanged", err=True)
            raise typer.Exit(getattr(err, "exit_code", 130)) from None
        except Exception:
            # a SIGTERM that lands inside a C extension (e.g. matplotlib drawing) can come out
            # as that library's own error; it has unwound like the interruption it was
            if _State.terminated:
                typer.echo("interrupted: nothing was half-written; the champion is unchanged", err=True)
                raise typer.Exit(Interrupted.exit_code) from None
            raise

    return wrapper


def _progress():
    """A one-line stage progress display on a terminal; None elsewhere (logs suffice)."""
    if _State.quiet or _State.verbose or not sys.stderr.isatty():
        return None
    t0 = time.perf_counter()

    def show(stage: str, done: int, total: int) -> None:
        width = 24
        filled = int(width * done / max(total, 1))
        bar = "#" * filled + "-" * (width - filled)
        msg = f"\r[{bar}] {done}/{total} {stage:<18} {time.perf_counter() - t0:5.1f}s"
        sys.stderr.write(msg)
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _out(text: str = "", *, always: bool = False) -> None:
    if always or not _State.quiet:
        typer.echo(text)


def _print_summary(res, elapsed: float) -> None:
    cs = res.criteria
    _out()
    _out(cs.verdict.get("message", ""))
    if cs.icp:
        _out("\nICP (every criterion):")
        for c in cs.icp:
            ev = c.evidence
            _out(f"  + {c.describe():<42} coverage {ev['coverage']:.0%}  lift {ev['lift']:.2f}x")
    if cs.anti_icp:
        _out("\nAnti-ICP (any one excludes):")
        for c in cs.anti_icp:
            ev = c.evidence
            _out(f"  - {c.describe():<42} coverage {ev['coverage']:.0%}  "
                 f"wrongly drops {ev['best_wrongly_excluded']:.0%} of best customers")
    fit = res.fit.holdout
    def auc(h: dict) -> str:
        ci = (f" (95% CI {h['roc_auc_ci_low']:.2f}-{h['roc_auc_ci_high']:.2f})"
              if "roc_auc_ci_low" in h else "")
        return f"{h['roc_auc']:.3f}{ci}"

    line = f"\nFit model held-out ROC AUC {auc(fit)}"
    if res.churn is not None:
        line += f"; churn model {auc(res.churn.holdout)}"
    _out(line)
    for w in res.warnings:
        _out(f"warning: {w}")
    _out()
    if res.report_dir:
        _out(f"report:    {res.report_dir / 'report.html'}", always=True)
        _out(f"criteria:  {res.report_dir / 'criteria.json'}  (and criteria.md)", always=True)
    if res.run_id:
        from icpml.tracking import redact, tracking_uri

        uri = redact(tracking_uri(res.config))
        _out(f"mlflow:    run {res.run_id} in experiment '{res.config.tracking.experiment}'",
             always=True)
        for k, v in res.model_versions.items():
            _out(f"model:     {v} (@{res.model_aliases.get(k, '')})", always=True)
        _out(f"browse:    mlflow ui --backend-store-uri {uri}")
    _out(f"done in {elapsed:.1f}s")


@app.command()
@_handle_errors
def demo(
    n: Annotated[int, typer.Option(help="Number of synthetic accounts.", min=200)] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 0,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log to MLflow.")] = True,
) -> None:
    """Run the whole pipeline on built-in synthetic accounts with a planted ICP.

    Writes data/demo/accounts.csv, a report under reports/, and an MLflow run
    under mlruns/ (all relative to the project root).
    """
    from icpml._io import write_table
    from icpml.config import demo_config
    from icpml.pipeline import discover
    from icpml.synthetic import PLANTED_ANTI_ICP, PLANTED_ICP, make_accounts

    t0 = time.perf_counter()
    cfg = demo_config()
    accounts = make_accounts(n, seed=seed)
    path = write_table(accounts, cfg.resolve(cfg.data.path))
    _out(f"demo data: {len(accounts)} synthetic accounts -> {path}")
    res = discover(cfg, accounts, track=track, progress=_progress(), source=str(path))
    _print_summary(res, time.perf_counter() - t0)
    _out(f"\nplanted truth: ICP = industry in {sorted(PLANTED_ICP['industry'])}, "
         f"{PLANTED_ICP['employees'][0]} <= employees <= {PLANTED_ICP['employees'][1]}, "
         f"crm = {next(iter(PLANTED_ICP['crm']))}; anti-ICP = requires_onprem, "
         f"employees < {PLANTED_ANTI_ICP['employees_below']}")


@app.command()
@_handle_errors
def discover(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML config.")],
    data: Annotated[Path | None, typer.Option(help="Account table (CSV/Parquet); overrides data.path.")] = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log to MLflow.")] = True,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write the report.")] = True,
) -> None:
    """Discover the ICP from your customer table: cohorts, models, criteria, report, MLflow run."""
    from icpml.config import load_config
    from icpml.data import load_source
    from icpml.pipeline import discover as run

    t0 = time.perf_counter()
    cfg = load_config(config)
    accounts, source = load_source(cfg, data) if data else (None, None)
    res = run(cfg, accounts, track=track, report=report, progress=_progress(), source=source)
    _print_summary(res, time.perf_counter() - t0)


@app.command()
@_handle_errors
def score(
    out: Annotated[Path, typer.Option(help="Output file (.csv or .parquet).")],
    data: Annotated[Path | None, typer.Option(
        help="Accounts to score (CSV/Parquet): customers or prospects.")] = None,
    query: Annotated[str | None, typer.Option(
        help="Or a DuckDB SQL query returning the accounts, e.g. "
             "\"SELECT * FROM 'crm/*.parquet' WHERE country = 'DE'\".")] = None,
    model: Annotated[str, typer.Option(help="Registered model URI.")] = "models:/icp-fit@champion",
    config: Annotated[Path | None, typer.Option("--config", "-c",
                                                help="Config (for its tracking store).")] = None,
    explain: Annotated[bool, typer.Option(
        "--explain/--no-explain", help="top_reasons from per-account exact SHAP values (much "
        "slower) instead of the ICP criteria each account meets or misses.")] = False,
    reasons: Annotated[bool | None, typer.Option("--reasons/--no-reasons", hidden=True,
                                                 help="Older name of --explain.")] = None,
) -> None:
    """Score an account table: fit score, churn risk, tier, ICP match, reasons.

    The table is read, scored and written in chunks, so memory stays flat however
    many rows it has; the output file appears only when every row is scored.
    """
    import pandas as pd

    from icpml._io import prefetch, table_suffix, write_table_stream
    from icpml.config import load_config
    from icpml.data import iter_accounts, iter_query
    from icpml.scoring import TIERS
    from icpml.tracking import load_scorer

    if (data is None) == (query is None):
        raise ConfigError("pass exactly one of --data accounts.csv or --query \"SELECT ...\"")
    if data is not None and out.resolve() == data.resolve():
        raise ConfigError("--out must differ from --data; input files are never overwritten")
    table_suffix(out)
    cfg = load_config(config) if config else None
    scorer = load_scorer(model, cfg)
    rows = scorer.chunk_size
    # read, score and write overlap: each stage runs in its own thread, a chunk or two ahead
    needed = [scorer.id_column, *scorer.input_columns]
    batches = prefetch(iter_accounts(data, rows, needed, text=scorer.text_columns) if data is not None
                       else iter_query(query, rows))
    counts = dict.fromkeys(TIERS, 0)

    def scored_batches():
        for part in scorer.score_batches(batches, explain=explain if reasons is None else reasons):
            for tier, k in part["tier"].value_counts().items():
                counts[tier] += int(k)
            yield part

    t0 = time.perf_counter()
    n = write_table_stream(prefetch(scored_batches()), out)
    summary = pd.DataFrame({"tier": TIERS, "accounts": [counts[t] for t in TIERS]})
    summary["share"] = summary["accounts"] / max(n, 1)
    _out(summary.to_string(index=False, formatters={"share": "{:.0%}".format}))
    # data issues were logged once by the scorer as a warning (shown even with --quiet)
    dt = time.perf_counter() - t0
    _out(f"scored {n} accounts in {dt:.1f}s ({n / max(dt, 1e-9):,.0f} rows/s)")
    _out(f"scored:    {out}", always=True)
    _State.exit_now = True


@app.command()
@_handle_errors
def export(
    criteria: Annotated[Path, typer.Option(help="criteria.json from a report folder.")],
    format: Annotated[str, typer.Option("--format", "-f", help="sql, pandas or json.")] = "sql",
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """Export ICP and anti-ICP criteria as enforceable filters (SQL WHERE, pandas query, JSON)."""
    from icpml._io import atomic_write_text
    from icpml.criteria import CriteriaSet

    if format not in ("sql", "pandas", "json"):
        raise ConfigError(f"--format '{format}' is unknown; use sql, pandas or json")
    try:
        cs = CriteriaSet.from_dict(json.loads(criteria.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ConfigError(f"criteria file '{criteria}' does not exist; pass a criteria.json "
                          "from a report folder") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"'{criteria}' is not a valid criteria.json ({err})") from None
    if format == "sql":
        q = cs.to_sql()
        text = (f"-- ICP: accounts meeting every inclusion and no exclusion\n"
                f"WHERE {q['icp']}\n\n-- anti-ICP: accounts to walk past\nWHERE {q['anti_icp']}\n")
    elif format == "pandas":
        q = cs.to_pandas()
        text = f"icp = {q['icp']!r}\nanti_icp = {q['anti_icp']!r}\n"
    else:
        text = cs.to_json()
    if out:
        atomic_write_text(out, text)
        _out(f"written:   {out}", always=True)
    else:
        typer.echo(text, nl=False)


@app.command()
@_handle_errors
def retrain(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML config.")],
    data: Annotated[Path | None, typer.Option(help="Fresh account table; overrides data.path.")] = None,
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
    _out(f"decision:  {result.decision}", always=True)
    for r in result.reasons:
        _out(f"  - {r}")
    if result.diff:
        from icpml.retrain import diff_markdown

        _out(diff_markdown(result.diff))
    if result.criteria_drift is not None and len(result.criteria_drift):
        stopped = result.criteria_drift[~result.criteria_drift["holds"]]
        for _, row in stopped.iterrows():
            _out(f"warning: criterion no longer holds on fresh data: {row['criterion']}")
    if result.challenger is not None and result.challenger.report_dir:
        _out(f"report:    {result.challenger.report_dir / 'report.html'}", always=True)
    _out(f"done in {time.perf_counter() - t0:.1f}s")
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@app.command()
@_handle_errors
def validate(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML config (column roles).")],
    data: Annotated[Path | None, typer.Option(help="Accounts with known outcomes; overrides data.path.")] = None,
    criteria: Annotated[Path | None, typer.Option(help="Hand-written hypothesis ICP (YAML).")] = None,
    model: Annotated[str | None, typer.Option(help="Model version whose tiers to check, e.g. "
                                              "models:/icp-fit@champion.")] = None,
) -> None:
    """Check an ICP on data: a hypothesis ICP (--criteria) and/or a model's tiers (--model)."""
    from icpml.config import load_config
    from icpml.data import feature_kinds, load_source, normalize_categories, validate_accounts
    from icpml.validate import evaluate_criteria, load_hypothesis, validate_tiers

    cfg = load_config(config)
    if criteria is None and model is None:
        raise ConfigError("pass --criteria mine.yaml, --model models:/icp-fit@champion, or both")
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
        from icpml.tracking import load_scorer

        scorer = load_scorer(model, cfg)
        sets.append((f"{model}", evaluate_criteria(scorer.criteria, df, cfg)))
    for title, cs in sets:
        _out(f"\n== {title}: {cs.verdict['message']}")
        for c in cs.icp + cs.anti_icp:
            ev = c.evidence
            lo, hi = ev["lift_ci"]
            sign = "+" if c.kind == "icp" else "-"
            _out(f"  {sign} {c.describe():<40} coverage {ev['coverage']:.0%}  lift {ev['lift']:.2f}x "
                 f"(95% CI {lo:.2f}-{hi:.2f})  q {ev['q_value']:.3g}")
    if scorer is not None:
        table = validate_tiers(scorer, df, cfg)
        _out("\nOutcomes per tier (rates with 95% Wilson intervals):")
        _out(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


@app.command()
@_handle_errors
def products(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML config with products:.")],
    data: Annotated[Path | None, typer.Option(help="Account table; overrides data.path.")] = None,
    track: Annotated[bool, typer.Option("--track/--no-track",
                                        help="Log and register each product's models.")] = False,
) -> None:
    """Cross-product ICP: one ICP per product line, their overlap, and a combined score."""
    from icpml._io import atomic_write_text, write_table
    from icpml.config import load_config
    from icpml.data import data_fingerprint, load_source
    from icpml.products import discover_products

    t0 = time.perf_counter()
    cfg = load_config(config)
    accounts, _ = load_source(cfg, data)
    res = discover_products(cfg, accounts, track=track)
    folder = cfg.resolve(cfg.report.dir) / f"{cfg.name}_products_{data_fingerprint(accounts)[:8]}"
    md = res.to_markdown()
    write_table(res.scored, folder / "products_scored.csv")
    write_table(res.overlap, folder / "overlap.csv")
    write_table(res.summary, folder / "summary.csv")
    atomic_write_text(folder / "products.md", md)
    _out(md)
    _out(f"done in {time.perf_counter() - t0:.1f}s")
    _out(f"products:  {folder / 'products.md'}", always=True)


@app.command()
@_handle_errors
def report(
    run: Annotated[str, typer.Option(help="Run id, or a model URI such as models:/icp-fit@champion.")],
    config: Annotated[Path | None, typer.Option("--config", "-c",
                                                help="Config (tracking store, report folder).")] = None,
) -> None:
    """Restore the report of any run or model version from MLflow into reports/."""
    from icpml.config import find_project_root, load_config
    from icpml.tracking import restore_report

    cfg = load_config(config) if config else None
    dest_root = cfg.resolve(cfg.report.dir) if cfg else find_project_root() / "reports"
    dest = restore_report(run, dest_root, cfg)
    _out(f"report:    {dest / 'report.html'}", always=True)


class Interrupted(KeyboardInterrupt):
    """SIGTERM (e.g. from cron's timeout or systemd) handled like Ctrl-C: unwind, clean up."""

    exit_code = 128 + 15


def _on_sigterm(signum, frame):  # noqa: ARG001
    _State.terminated = True
    raise Interrupted()


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
        if _State.exit_now:
            _exit_now(done.code)
        raise


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
