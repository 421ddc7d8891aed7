"""Exceptions for user-facing problems, each with the exit code the CLI uses.

A user error (bad config, bad data, unreachable tracking store) is reported as
one line naming the key or column and the fix, with no traceback. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import re

__all__ = ["IcpmlError", "ConfigError", "DataError", "TrackingError", "OutputError",
           "ExitCode", "redact", "redact_setting"]

# --------------------------------------------------------------------------- redaction
#: Names of settings whose value is a secret: the word alone or as a part of a name joined by
#: ``_``, ``-`` or ``.`` (``s3_secret_access_key``, ``api-token``, ``db.password``), or
#: capitalised in a camelCase name (``accessToken``, ``clientSecret``).
_SECRET_WORDS = (r"password|passwd|pwd|secret|token|key|access_key|api_?key|apikey|credentials?"
                 r"|auth|authorization|private_key|sas|sig|signature|session"
                 # Azure/ODBC connection-string parts written in CamelCase, no separator
                 r"|accountkey|sharedaccesskey|sharedaccesssignature|connection_?string")
# camelCase names (accessToken, clientSecret, dbPassword, AuthToken): a capitalised secret
# word after a prefix; "monkey" or "keynote" are not secrets
# Case-sensitive as a whole: under (?i) "[A-Z][a-z0-9]*" could split a run of letters in
# exponentially many ways (a long bare word took minutes); with case each split is unique.
_CAMEL_SECRET = (r"(?-i:[A-Za-z][a-z0-9]*(?:[A-Z][a-z0-9]*)*?"
                 r"(?:Password|Passwd|Pwd|Secret|Token|Key|Credentials?|Auth|Signature|Sig)"
                 r"(?:[A-Z][a-z0-9]*)*)")
# the unmistakable words also glued to a prefix in one case, as libpq, env vars and many SDKs
# write them: sslpassword, PGPASSWORD, dbpassword, clientsecret, apitoken, accesstoken
# ("key", "auth", "sig" are not: hotkey, oauth, design are not secrets)
_GLUED_WORDS = r"password|passwd|pwd|secret|token"
_SECRET_NAME = (rf"(?:(?:[A-Za-z0-9]+[_.-])*(?:[A-Za-z0-9]*?(?:{_GLUED_WORDS})|{_SECRET_WORDS})"
                rf"(?:[_.-][A-Za-z0-9]+)*|{_CAMEL_SECRET})")
_SECRET_NAME_RE = re.compile(rf"(?i){_SECRET_NAME}")
# a name starts after no letter/digit and not inside a dotted/underscored chain ("a_b_c"):
# a match tried at every '_' of a long chain rescanned it each time (quadratic; 10k chars
# took 17 s); "--password" still starts at "password"
_NAME_START = r"(?<![A-Za-z0-9])(?<![A-Za-z0-9][_.-])"
# the value of a setting: quoted (with its escapes) or bare up to a delimiter
_QUOTED = r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\""
_BARE = r"[^\s'\",;&(){}\[\]]+"
# ``name=value``, ``name = 'value'``, ``"name": "value"``, ``'name': 'value'``, ``name: value``,
# ``?token=value&...``: the name may be quoted; the value keeps its quotes, its content is hidden.
# ... but not a file's name before a message ("configs/bad_key.yaml: columns.x: unknown key")
_NOT_A_FILE = "".join(rf"(?<!\.{ext})" for ext in ("yaml", "yml", "csv", "tsv", "json", "parquet",
                                                    "txt", "toml", "ini", "cfg", "sql", "db", "xlsx"))
_SETTING = re.compile(
    rf"(?i)(?P<name>{_NAME_START}(?P<q>[\"']?){_SECRET_NAME}{_NOT_A_FILE}(?P=q)\s*[=:]\s*)"
    rf"(?!(?:bearer|basic)\s)(?P<value>{_QUOTED}|{_BARE})")
# DuckDB ``CREATE SECRET (TYPE s3, KEY_ID 'x', SECRET 'y')`` and similar ``NAME 'value'`` pairs:
# only a quoted value, so prose such as "secret sauce" stays as it is
_SPACED = re.compile(rf"(?i)(?P<name>{_NAME_START}(?:{_SECRET_NAME}|key_id)\s+)(?P<value>{_QUOTED})")
_BEARER = re.compile(r"(?i)(?P<name>\b(?:bearer|basic)\s+)(?P<value>[A-Za-z0-9._~+/=-]{8,})")
# ``scheme://userinfo@host``: the userinfo runs to the LAST '@' before the URI ends (whitespace,
# a quote or a bracket), as urllib and requests read ``http://alice:p@ss@host``; user and password
# are both hidden (a token is often the user part alone: ``https://ghp_xxx@github.com``)
_URI = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<rest>[^\s'\"`<>\\]+)")


# a credential recognisable by its issuer's prefix wherever it stands (GitHub, GitLab, Slack,
# OpenAI-style, Databricks, Hugging Face tokens, AWS access key ids), not only after a name
_KNOWN_TOKEN = re.compile(
    r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|glpat-[A-Za-z0-9_-]{16,}|xox[abposr]-[A-Za-z0-9-]{10,}|sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"
    r"|dapi[0-9a-f]{16,}|hf_[A-Za-z0-9]{20,}|(?:AKIA|ASIA)[0-9A-Z]{16})(?![A-Za-z0-9])")

_NOT_SECRET = re.compile(r"(?i)-?\d+(?:\.\d+)?|null|none|true|false")


def _hide(m: re.Match) -> str:
    value = m["value"]
    if m["name"].rstrip().endswith(":") and _NOT_SECRET.fullmatch(value):
        # "'api_key': 3 non-numeric values" is a message about a column, not a secret
        return m.group(0)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return f"{m['name']}{value[0]}***{value[0]}"
    if "q" in m.groupdict() and m["q"]:  # "token": 5 in JSON: a string keeps it JSON
        return f'{m["name"]}{m["q"]}***{m["q"]}'
    return f"{m['name']}***"


def _hide_userinfo(m: re.Match) -> str:
    rest = m["rest"]
    at = rest.rfind("@")
    if at <= 0:
        return m.group(0)
    slash = rest.find("/")
    if 0 <= slash < at and ":" not in rest[:slash]:
        return m.group(0)  # an '@' in the path (https://host/@scope/pkg), no userinfo
    return f"{m['scheme']}***{rest[at:]}"


def redact(text: object) -> str:
    """``text`` as a string with every secret it carries replaced by ``***``.

    Used on everything icpml shows or stores that may hold a credential: error
    messages, logged MLflow params, the logged ``config.yaml``. Hidden:

    * URI userinfo, user and password alike, up to the last ``@`` of the URI:
      ``http://ghp_token@host`` -> ``http://***@host``,
      ``postgresql://alice:p@ss@db/x`` -> ``postgresql://***@db/x``;
    * the value of any setting named password, passwd, pwd, secret, token, key,
      access_key, api_key, credentials, auth (alone or as part of a name such as
      ``s3_secret_access_key``; password, passwd, pwd, secret and token also glued to a
      prefix: ``sslpassword``, ``PGPASSWORD``, ``clientsecret``, ``apitoken``), written ``name=value``, ``name = 'value'``,
      ``"name": "value"`` (JSON stays valid JSON), ``name: value`` or as a URL
      query parameter (``?token=x&page=2`` -> ``?token=***&page=2``);
    * quoted values after such a name and a space (DuckDB ``SECRET 'x'``,
      ``KEY_ID 'x'``) and ``Bearer``/``Basic`` credentials;
    * Azure connection-string parts (``AccountKey=...``, ``SharedAccessSignature=...``);
    * tokens recognisable by their issuer's prefix wherever they stand (``ghp_...``,
      ``glpat-...``, ``xoxb-...``, ``sk-...``, ``dapi...``, ``hf_...``, ``AKIA...``).

    Quotes around a hidden value are kept and everything else is left as it was. A bare
    number, null or boolean after ``name:`` is kept (``column 'api_key': 3 non-numeric
    values`` is a message about a column, not a secret); after ``name=`` it is hidden.

    Parameters
    ----------
    text : object
        Anything; its ``str()`` is redacted.

    Returns
    -------
    str
        The redacted text.

    Examples
    --------
    >>> from icpml.errors import redact
    >>> redact("postgresql://alice:pw@db/x?token=abc&page=2")
    'postgresql://***@db/x?token=***&page=2'
    """
    out = _URI.sub(_hide_userinfo, str(text))
    out = _BEARER.sub(_hide, out)
    out = _SETTING.sub(_hide, out)
    out = _SPACED.sub(_hide, out)
    return _KNOWN_TOKEN.sub("***", out)


def redact_setting(name: str, value: object) -> str:
    """``value`` as text for a setting called ``name``, secrets hidden.

    Parameters
    ----------
    name : str
        The setting's (dotted) name, e.g. ``data.options.password``.
    value : object
        Its value.

    Returns
    -------
    str
        ``***`` whole when the name's last part says it is a secret (and the
        value is not empty), else :func:`redact` of the value.

    Examples
    --------
    >>> from icpml.errors import redact_setting
    >>> redact_setting("data.options.password", "hunter2")
    '***'
    """
    last = str(name).rsplit(".", 1)[-1]
    if _SECRET_NAME_RE.fullmatch(last) and value not in (None, ""):
        return "***"
    return redact(value)



class ExitCode:
    """Process exit codes of the ``icpml`` command (stable: scripts and cron rely on them)."""

    OK = 0
    BUG = 1  # an unexpected error: please report it
    CONFIG = 2  # the config or the command line is wrong
    DATA = 3  # the input data is wrong
    GATE = 4  # retraining: the challenger failed the promotion gate (worth an alert)
    INFRA = 5  # the tracking store or filesystem is unreachable, or holds no model yet
    LOCKED = 6  # another retrain is running


class IcpmlError(Exception):
    """Base class: an error the user can fix; ``str(err)`` is the message to show."""

    exit_code = ExitCode.BUG


class ConfigError(IcpmlError, ValueError):
    """The configuration (YAML or command-line options) is invalid."""

    exit_code = ExitCode.CONFIG


class DataError(IcpmlError, ValueError):
    """The account table is invalid. ``problems`` lists every problem found.

    Parameters
    ----------
    problems : list of str or str
        Every problem, each naming the column and the fix.
    source : str, default "data"
        What was read (a file name), put first in the message.
    """

    exit_code = ExitCode.DATA

    def __init__(self, problems: list[str] | str, source: str = "data"):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.problems))


class TrackingError(IcpmlError, RuntimeError):
    """The MLflow tracking store or a registered model cannot be reached."""

    exit_code = ExitCode.INFRA


class OutputError(IcpmlError):
    """An output file or folder cannot be written (permissions, disk full, read-only disk)."""

    exit_code = ExitCode.INFRA


def output_error(path: object, err: OSError) -> OutputError:
    """The one-line :class:`OutputError` for a failed write of ``path``."""
    import os

    code = err.errno
    if code is None and err.args and isinstance(err.args[0], int):
        code = err.args[0]  # OSError(errno.ENOSPC) sets args only
    why = err.strerror or (os.strerror(code) if code else str(err) or type(err).__name__)
    return OutputError(f"cannot write '{path}' ({why}); check free disk space and write "
                       "permission there, or choose another location")
