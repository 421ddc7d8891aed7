"""What a newcomer ran into on data icpml never saw (the "newbie" pass over the public
datasets and self-made hostile inputs): secrets glued into one-word setting names, figures
with characters the fonts lack, and one-line errors that name the fix.
"""

from __future__ import annotations

import logging
import os
import stat
import warnings

import numpy as np
import pandas as pd
import pytest

from icpml.config import Config
from icpml.errors import DataError, redact, redact_setting


# ----------------------------------------------------------------------------- redaction
@pytest.mark.parametrize(("text", "expected"), [
    # libpq's sslpassword in a tracking URI's query (seen verbatim in the exit-5 error line)
    ("tracking store 'postgresql://***@db.example.com:5432/mlflow?sslpassword=hunter2' cannot "
     "be used", "tracking store 'postgresql://***@db.example.com:5432/mlflow?sslpassword=***' "
     "cannot be used"),
    ("PGPASSWORD=Hunter2 psql", "PGPASSWORD=*** psql"),
    ("dbpassword=Hunter2;host=db", "dbpassword=***;host=db"),
    ("clientsecret: Hunter2", "clientsecret: ***"),
    ('{"apitoken": "Hunter2", "n": 3}', '{"apitoken": "***", "n": 3}'),
    ("https://h/cb?accesstoken=Hunter2&refreshtoken=Hunter3&page=2",
     "https://h/cb?accesstoken=***&refreshtoken=***&page=2"),
    ("adminpwd = 'Hunter2'", "adminpwd = '***'"),
])
def test_secret_words_glued_to_a_prefix_are_hidden(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "monkey=banana", "hotkey=F5", "passwordless=true", "secretary=bob", "tokenizer=bert",
    "max_tokens=5", "keynote=x", "column 'clientsecret': 3 non-numeric value(s)",
])
def test_words_that_only_contain_a_secret_word_are_kept(text):
    assert redact(text) == text


def test_glued_secret_setting_names_hide_the_whole_value():
    assert redact_setting("data.options.sslpassword", "Hunter2") == "***"
    assert redact_setting("data.options.passwordless", "yes") == "yes"


# ----------------------------------------------------------------------------- figures
def test_missing_glyph_warnings_become_one_logged_line(caplog):
    from icpml.report import _one_font_warning

    msg = "Glyph {} (\\N{{CJK UNIFIED IDEOGRAPH-{:X}}}) missing from font(s) DejaVu Sans."
    with warnings.catch_warnings(record=True) as passed, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        with _one_font_warning():
            for _ in range(3):  # matplotlib warns per figure: once per character is enough
                for code in (0x5F93, 0x696D):
                    warnings.warn(msg.format(code, code), UserWarning, stacklevel=1)
            warnings.warn("an unrelated warning", RuntimeWarning, stacklevel=1)
    assert [str(w.message) for w in passed] == ["an unrelated warning"]
    lines = [r.getMessage() for r in caplog.records if r.name == "icpml.report"]
    assert len(lines) == 1
    assert "2 character(s)" in lines[0] and "(従業)" in lines[0]


def test_a_figure_titled_in_cjk_warns_once_without_python_warnings(caplog):
    from matplotlib import font_manager

    from icpml.plots import NotebookFigure
    from icpml.report import _one_font_warning, _png

    title = "従業員数"
    font = font_manager.get_font(font_manager.findfont("DejaVu Sans"))
    if all(font.get_char_index(ord(c)) for c in title):
        pytest.skip("the default font draws CJK here: nothing to warn about")
    fig = NotebookFigure()
    fig.add_subplot().set_title(title)
    with warnings.catch_warnings(record=True) as passed, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        with _one_font_warning():
            png = _png(fig)
    assert png.startswith(b"\x89PNG")
    assert [str(w.message) for w in passed if "Glyph" in str(w.message)] == []
    lines = [r.getMessage() for r in caplog.records if r.name == "icpml.report"]
    assert len(lines) == 1 and "4 character(s)" in lines[0] and title in lines[0]


# ----------------------------------------------------------------------------- one-line errors
def _config() -> Config:
    return Config.model_validate({
        "name": "t",
        "columns": {"id": "account_id", "features": {"firmographic": ["industry", "employees"]},
                    "outcomes": [{"column": "arr"}, {"column": "nrr"}], "churn": "churned"},
    })


def _accounts(n: int = 200, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "account_id": [f"{i:05d}" for i in range(n)],
        "industry": rng.choice(["SaaS", "Retail", "FinTech"], n),
        "employees": rng.integers(5, 900, n).astype(str),
        "arr": rng.gamma(2, 1e4, n).round(2).astype(str),
        "nrr": rng.normal(1, .1, n).round(3).astype(str),
        "churned": rng.choice(["Yes", "No"], n),
    })


@pytest.mark.parametrize("spelling", ["No", "false", "0", "N"])
def test_single_valued_churn_names_the_value_and_the_fix(spelling):
    from icpml.data import validate_accounts

    raw = _accounts().assign(churned=spelling)
    before = raw.copy()
    with pytest.raises(DataError) as err:
        validate_accounts(raw, _config(), source="accounts.csv")
    msg = str(err.value)
    assert "churn column 'churned' has a single value (False for every account)" in msg
    assert "remove columns.churn" in msg and "\n" not in msg
    pd.testing.assert_frame_equal(raw, before)  # the input frame is not modified


def test_an_empty_outcome_column_names_the_fix():
    from icpml.data import validate_accounts

    raw = _accounts().assign(nrr=pd.Series([pd.NA] * 200, dtype="string"))
    with pytest.raises(DataError) as err:
        validate_accounts(raw, _config(), source="accounts.csv")
    msg = str(err.value)
    assert ("outcome column 'nrr' is entirely empty; fill it in the export or remove it "
            "from columns.outcomes") in msg
    assert "'arr'" not in msg  # the other outcome is fine and not named


# ----------------------------------------------------------------------------- output modes
@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("name", ["scored.csv", "scored.parquet", "criteria.sql"])
def test_outputs_get_the_umask_mode_not_owner_only(tmp_path, name):
    """scored.csv and exported filters came out 0600 (mkstemp's mode): a team's group could
    not read what `icpml score` / `icpml export --out` wrote; `open` would have given 0644."""
    from icpml._io import atomic_write_text, write_table_stream

    old = os.umask(0o027)
    try:
        import icpml._io as io_mod

        io_mod._UMASK = 0o027
        out = tmp_path / name
        frame = pd.DataFrame({"account_id": ["007", "=1+1"], "fit_score": [0.5, 0.25]})
        if name == "criteria.sql":
            atomic_write_text(out, "WHERE TRUE\n")
        else:
            assert write_table_stream([frame], out) == 2
        assert stat.S_IMODE(out.stat().st_mode) == 0o640
        # an existing output keeps the mode its owner gave it
        out.chmod(0o604)
        if name == "criteria.sql":
            atomic_write_text(out, "WHERE FALSE\n")
            assert out.read_text() == "WHERE FALSE\n"
        else:
            write_table_stream([frame], out)
        assert stat.S_IMODE(out.stat().st_mode) == 0o604
    finally:
        os.umask(old)
        io_mod._UMASK = io_mod._umask()


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_umask_is_read_without_changing_it():
    from icpml._io import _umask

    old = os.umask(0o077)
    try:
        assert _umask() == 0o077
        assert os.umask(0o077) == 0o077  # still what it was
    finally:
        os.umask(old)


# ----------------------------------------------------------------------------- score: headers
class _FakeScorer:
    """What icpml score's column check reads from a scorer."""

    id_column = "account_id"
    input_columns = ["industry", "employees", "crm"]

    class criteria:  # noqa: N801 - the attribute name of the real scorer
        columns = ["employees", "crm"]
        icp: list = []
        anti_icp: list = []


def _frames(df):
    yield df


@pytest.mark.parametrize("header", [
    ["Account_ID", "industry", "CRM", "Employees "],
    ["account_id", "industry", " crm", "EMPLOYEES"],
])
def test_score_names_headers_that_differ_only_in_case_or_spacing(header, caplog):
    from icpml.cli import _ColumnCheck

    chunk = pd.DataFrame({"industry": ["SaaS"]})  # the reader kept only the exact names
    check = _ColumnCheck(_FakeScorer(), "prospects.csv", header=header)
    icpml_log = logging.getLogger("icpml")  # the CLI's logger (it may not propagate to root)
    icpml_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="icpml"):
            assert list(check.first(_frames(chunk)))[0] is chunk
    finally:
        icpml_log.removeHandler(caplog.handler)
    lines = list(dict.fromkeys(r.getMessage() for r in caplog.records if r.name == "icpml"))
    assert len(lines) == 1
    twins = {spelled.strip().casefold(): spelled for spelled in header}
    for col in ("employees", "crm") + (("account_id",) if "Account_ID" in header else ()):
        assert f"{twins[col]!r} to {col!r}" in lines[0]
    assert "industry" not in lines[0].split("rename", 1)[1]  # present as written: not named


def test_score_with_only_differently_cased_headers_is_one_error_naming_the_renames():
    from icpml.cli import _ColumnCheck

    header = ["ACCOUNT_ID", "INDUSTRY", "EMPLOYEES", "CRM"]
    check = _ColumnCheck(_FakeScorer(), "prospects.csv", header=header)
    with pytest.raises(DataError) as err:
        check.first(_frames(pd.DataFrame({"account_id": []})))
    msg = str(err.value)
    assert "'INDUSTRY' to 'industry', 'EMPLOYEES' to 'employees', 'CRM' to 'crm'" in msg
    assert "\n" not in msg


def test_score_reads_every_header_name_of_csv_and_parquet(tmp_path):
    from icpml.cli import _table_header

    df = pd.DataFrame({"Account_ID": ["007"], "CRM": ["HubSpot"], "Größe": [3]})
    df.to_csv(tmp_path / "p.csv", index=False, encoding="utf-8-sig")  # a BOM as Excel writes it
    df.to_parquet(tmp_path / "p.parquet")
    assert _table_header(tmp_path / "p.csv") == ["Account_ID", "CRM", "Größe"]
    assert _table_header(tmp_path / "p.parquet") == ["Account_ID", "CRM", "Größe"]
    assert _table_header(tmp_path / "absent.csv") is None
