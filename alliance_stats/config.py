"""Study configuration for ``alliance-stats analyze STUDY.toml``.

The configuration is data. It names files, columns, instruments and which analyses to run.
Nothing in it is evaluated as code: model terms are column names, and they are checked
against the data. Every error names the key and the line of the file.
"""

from __future__ import annotations

import difflib
import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .exceptions import ConfigError, ConfigOptionError

__all__ = ["ANALYSES", "StudyConfig", "load_config", "EXAMPLE_CONFIG"]

#: Analyses the pipeline can run, in the order it runs them.
ANALYSES = ("reliability", "trajectories", "reliable_change", "alliance_outcome", "therapist_effects",
            "ruptures", "transitions", "pqs", "meta")

_STR, _NUM, _INT, _STRLIST = "text", "a number", "a whole number", "a list of text"

#: table -> key -> (type, required)
SCHEMA: dict[str, dict[str, tuple[str, bool]]] = {
    "study": {"title": (_STR, False)},
    "data": {"file": (_STR, True), "patient": (_STR, True), "session": (_STR, True), "therapist": (_STR, False),
             "rater": (_STR, False), "sheet": (_STR, False), "on_invalid": (_STR, False), "on_bad_rows": (_STR, False)},
    "instruments": {},  # any instrument name = item-column pattern
    "variables": {"alliance": (_STR, True), "outcome": (_STR, True), "covariates": (_STRLIST, False),
                  "state": (_STR, False), "states": (_STRLIST, False)},
    "analyses": {"run": (_STRLIST, False)},
    "ruptures": {"threshold": (_NUM, False), "method": (_STR, False), "max_decline_sessions": (_INT, False),
                 "sd_source": (_STR, False)},
    "reliable_change": {"reliability": (_NUM, False), "cutoff": (_NUM, False)},
    "pqs": {"file": (_STR, True), "session": (_STR, True), "patient": (_STR, False), "rater": (_STR, False),
            "items": (_STR, False), "group": (_STR, False)},
    "meta": {"file": (_STR, True), "r": (_STR, True), "n": (_STR, True), "study": (_STR, True),
             "cluster": (_STR, False), "group": (_STR, False), "method": (_STR, False)},
    "output": {"seed": (_INT, False), "formats": (_STRLIST, False)},
}
_CHOICES = {
    ("data", "on_invalid"): ("raise", "nan"),
    ("data", "on_bad_rows"): ("raise", "drop"),
    ("ruptures", "method"): ("stiles2004", "strauss2006"),
    ("ruptures", "sd_source"): ("within", "pooled", "both"),
    ("meta", "method"): ("REML", "ML", "DL", "PM", "HE", "FE"),
}
_FORMATS = ("png", "pdf", "svg")

EXAMPLE_CONFIG = '''\
# alliance-stats study configuration. Paths are relative to this file.
[study]
title = "My alliance study"

[data]
file = "sessions_wide.csv"      # CSV, TSV, Excel, SPSS .sav, Stata .dta or Parquet
patient = "client_id"
session = "session_no"
therapist = "therapist_id"      # optional

[instruments]                   # instrument = item-column pattern ({} is the item number)
"wai-sr" = "WAISR_{}"
"phq-9" = "PHQ9_{}"

[variables]
alliance = "wai_sr_total"       # scored columns are named <prefix>_total, <prefix>_<subscale>
outcome = "phq9_total"
covariates = ["session"]        # column names only
state = "alliance_type"         # optional: a per-session category for the transitions

[analyses]                      # optional; default every analysis the config has what it needs for
run = ["reliability", "trajectories", "reliable_change", "alliance_outcome", "therapist_effects", "ruptures", "transitions"]
'''


@dataclass
class StudyConfig:
    """A checked study configuration (from :func:`load_config`, or built in code for the demo)."""

    values: dict
    base: Path
    source: Path | None = None
    lines: dict = field(default_factory=dict)
    text: str = ""

    def get(self, table: str, key: str, default=None):
        return self.values.get(table, {}).get(key, default)

    def has(self, table: str) -> bool:
        return table in self.values

    def where(self, table: str, key: str | None = None) -> str:
        """'key [table] x (line n of FILE)' for messages."""
        name = f"[{table}]" if key is None else f"{key!r} in [{table}]"
        if self.source is None:
            return name
        line = self.lines.get((table, key)) or self.lines.get((table, None))
        return f"{name} (line {line} of {self.source.name})" if line else f"{name} of {self.source.name}"

    def error(self, table: str, key: str | None, message: str) -> ConfigError:
        return ConfigError(f"{self.where(table, key)}: {message}")

    def option_error(self, table: str, key: str, value, allowed, message: str) -> ConfigOptionError:
        """A value outside its allowed set: a ConfigError naming key and line that is also an
        OptionError (option ``[table] key``, the value, the allowed values)."""
        return ConfigOptionError(f"{self.where(table, key)}: {message}", f"[{table}] {key}", value, allowed)

    def path(self, table: str, key: str = "file") -> Path:
        p = Path(self.get(table, key))
        p = p if p.is_absolute() else self.base / p
        if not p.is_file():
            raise self.error(table, key, f"file {str(p)!r} does not exist; paths are relative to the config file's folder")
        return p

    def input_paths(self) -> list[Path]:
        """The configuration file and every data file it names (whether or not they exist): the
        inputs a results folder may never be, nor hold."""
        paths = [self.source] if self.source is not None else []
        for table in ("data", "pqs", "meta"):
            f = self.get(table, "file")
            if isinstance(f, str) and f.strip():
                p = Path(f)
                paths.append(p if p.is_absolute() else self.base / p)
        return paths

    def analyses(self) -> list[str]:
        """The analyses to run: those listed in [analyses] run, else every one the config supports."""
        possible = {
            "reliability": True, "trajectories": True, "reliable_change": True, "alliance_outcome": True,
            "therapist_effects": self.get("data", "therapist") is not None, "ruptures": True,
            "transitions": self.get("variables", "state") is not None, "pqs": self.has("pqs"), "meta": self.has("meta"),
        }
        run = self.get("analyses", "run")
        if run is None:
            return [a for a in ANALYSES if possible[a]]
        for a in run:
            if a not in ANALYSES:
                raise self.option_error("analyses", "run", a, ANALYSES,
                                        f"unknown analysis {a!r}{_suggest(a, ANALYSES)}; choose from {', '.join(ANALYSES)}")
            if not possible[a]:
                need = {"therapist_effects": "a therapist column in [data]", "transitions": "'state' in [variables]",
                        "pqs": "a [pqs] table", "meta": "a [meta] table"}[a]
                raise self.error("analyses", "run", f"analysis {a!r} needs {need}")
        return [a for a in ANALYSES if a in run]


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]+"|'[^']+'|[A-Za-z0-9_\-]+)\s*=""")


def _key_lines(text: str) -> dict:
    """Map (table, key) and (table, None) to 1-based line numbers by scanning the TOML text."""
    lines: dict = {}
    table = None
    for i, raw in enumerate(text.splitlines(), start=1):
        m = _HEADER.match(raw)
        if m:
            table = m.group(1).strip().strip("\"'")
            lines.setdefault((table, None), i)
            continue
        m = _KEY.match(raw)
        if m:
            lines.setdefault((table, m.group(1).strip("\"'")), i)
    return lines


def _check_type(cfg: StudyConfig, table: str, key: str, value, kind: str) -> None:
    ok = {
        _STR: isinstance(value, str) and value.strip() != "",
        _NUM: isinstance(value, (int, float)) and not isinstance(value, bool),
        _INT: isinstance(value, int) and not isinstance(value, bool),
        _STRLIST: isinstance(value, list) and all(isinstance(v, str) and v for v in value),
    }[kind]
    if not ok:
        raise cfg.error(table, key, f"must be {kind}, got {value!r}")
    if (table, key) == ("output", "seed") and value < 0:
        raise cfg.error(table, key, f"must be a whole number of 0 or more, got {value!r}")
    choices = _CHOICES.get((table, key))
    if choices and value not in choices:
        raise cfg.option_error(table, key, value, choices, f"must be one of {', '.join(choices)}, got {value!r}")


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not an item-column pattern, or None when it is one.

    A pattern holds exactly one ``{}`` where the item number goes, optionally with a number
    format (``{:02d}``); ``{{`` and ``}}`` are literal braces. Named, numbered, attribute or
    index fields (``{name}``, ``{0}``, ``{0.x}``, ``{0[1]}``) and conversions (``{!r}``) are refused:
    the pattern is data, not a format program.
    """
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(pattern) if name is not None]
    except ValueError as exc:
        return f"{exc} (write {{{{ and }}}} for a literal brace)"
    if len(fields) != 1:
        return f"has {len(fields)} {{}} fields; put exactly one {{}} where the item number goes, e.g. \"WAI_{{}}\""
    name, spec, conv = fields[0]
    if name or conv or "{" in spec:
        shown = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
        return (f"the field {shown} is not allowed; write {{}} (or a number format such as {{:02d}}) where the item "
                "number goes, with nothing inside the braces before a ':'")
    try:
        pattern.format(1)
    except (ValueError, TypeError) as exc:
        return f"the number format {{:{spec}}} cannot format an item number ({exc}); use {{}} or e.g. {{:02d}}"
    return None


def check_config(cfg: StudyConfig) -> StudyConfig:
    """Check tables, keys, types and choices; raise :class:`ConfigError` naming key and line."""
    for table, body in cfg.values.items():
        if table not in SCHEMA:
            raise cfg.error(table, None, f"unknown table{_suggest(table, SCHEMA)}; tables: {', '.join(SCHEMA)}")
        if not isinstance(body, dict):
            raise cfg.error(table, None, "must be a table, written as a [section] with key = value lines")
        if table == "instruments":
            from .instruments import get_instrument

            if not body:
                raise cfg.error(table, None, "name at least one instrument, e.g. \"wai-sr\" = \"WAISR_{}\"")
            for name, pattern in body.items():
                try:
                    get_instrument(name)
                except Exception as exc:
                    raise cfg.error(table, name, f"{exc}") from None
                _check_type(cfg, table, name, pattern, _STR)
                why = pattern_problem(pattern)
                if why:
                    raise cfg.error(table, name, f"item pattern {pattern!r}: {why}")
            continue
        for key, value in body.items():
            if key not in SCHEMA[table]:
                raise cfg.error(table, key, f"unknown key{_suggest(key, SCHEMA[table])}; keys of [{table}]: {', '.join(SCHEMA[table])}")
            _check_type(cfg, table, key, value, SCHEMA[table][key][0])
            if (table, key) == ("pqs", "items"):
                why = pattern_problem(value)
                if why:
                    raise cfg.error(table, key, f"item pattern {value!r}: {why}")
        for key, (_, required) in SCHEMA[table].items():
            if required and key not in body:
                raise cfg.error(table, None, f"the key {key!r} is required")
    for table in ("data", "instruments", "variables"):
        if table not in cfg.values:
            raise ConfigError(f"{cfg.source.name if cfg.source else 'the configuration'}: the table [{table}] is required")
    for f in cfg.get("output", "formats", []) or []:
        if f not in _FORMATS:
            raise cfg.option_error("output", "formats", f, _FORMATS, f"unknown figure format {f!r}; use some of {', '.join(_FORMATS)}")
    cfg.analyses()  # checks [analyses] run
    return cfg


def load_config(path) -> StudyConfig:
    """Read and check a study configuration file (TOML).

    Raises
    ------
    ConfigError
        For a file that is not UTF-8 text, a TOML syntax error (with its line), an unknown table
        or key, a value of the wrong type, an item pattern other than one ``{}``, a missing
        required key or a file that does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {str(path)!r} does not exist")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path.name} is not UTF-8 text: byte 0x{raw[exc.start]:02x} on line {line} is not valid UTF-8 (the file "
            "was probably saved as Latin-1/Windows-1252). Save it as UTF-8 (in your editor: Save As, encoding UTF-8)."
        ) from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid TOML: {exc}. Each setting is written key = value, text in quotes.") from None
    cfg = StudyConfig(values=values, base=path.resolve().parent, source=path, lines=_key_lines(text), text=text)
    return check_config(cfg)
