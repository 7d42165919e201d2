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

__all__ = ["ANALYSES", "StudyConfig", "load_config", "check_config", "schema", "EXAMPLE_CONFIG", "config_reference"]

_STR, _NUM, _INT, _STRLIST, _INTLIST, _BOOL = ("text", "a number", "a whole number", "a list of text",
                                             "a list of whole numbers", "true or false")
_ITEMS = "an item pattern or a list of item columns"

#: The tables of the configuration that are not an analysis's own: table -> key -> (type, required, doc).
BASE_SCHEMA: dict[str, dict[str, tuple]] = {
    "study": {"title": (_STR, False, "title of the report")},
    "data": {"file": (_STR, True, "session data: CSV, TSV, Excel, SPSS .sav, Stata .dta or Parquet, relative to the configuration file"),
             "patient": (_STR, True, "patient ID column"), "session": (_STR, True, "session number column"),
             "therapist": (_STR, False, "therapist ID column"), "rater": (_STR, False, "rater column"),
             "sheet": (_STR, False, "Excel sheet"), "on_invalid": (_STR, False, "out-of-range item responses: raise or set missing"),
             "on_bad_rows": (_STR, False, "rows with a bad ID or session number: raise or drop (counted)")},
    "instruments": {},  # instrument name = item pattern or list of item columns; [instruments.custom] name = key file
    "variables": {"alliance": (_STR, True, "the alliance score column (scored columns are <prefix>_total, <prefix>_<subscale>)"),
                  "outcome": (_STR, True, "the outcome score column"),
                  "covariates": (_STRLIST, False, "covariate columns of the alliance-outcome models"),
                  "state": (_STR, False, "a per-session category, for the transitions"),
                  "states": (_STRLIST, False, "the states in order")},
    "analyses": {"run": (_STRLIST, False, "the analyses to run; default every one the configuration has what it needs for")},
    "figures": {"theme": (_STR, False, "matplotlib theme of the figures, or none to keep matplotlib's settings (default paper)"),
                "dpi": (_INT, False, "resolution of raster figures (default 300)"),
                "formats": (_STRLIST, False, "figure files written besides PNG (default [\"png\", \"pdf\"])"),
                "width": (_STR, False, "width of saved figures: single (89 mm), double (183 mm) or a number of inches "
                                       "(default: each figure's own size)")},
    "output": {"seed": (_INT, False, "seed of the random choices (the patient lines drawn in trajectory figures, the agreement bootstrap)"),
               "formats": (_STRLIST, False, "figure formats (older spelling of [figures] formats)")},
}


def _base_choices() -> dict:
    from .plots._style import FIGURE_FORMATS, JOURNAL_WIDTH_IN, THEMES

    return {
        ("data", "on_invalid"): ("raise", "nan"),
        ("data", "on_bad_rows"): ("raise", "drop"),
        ("figures", "theme"): THEMES + ("none",),
        ("figures", "formats"): FIGURE_FORMATS,
        ("output", "formats"): FIGURE_FORMATS,
        ("figures", "width"): tuple(JOURNAL_WIDTH_IN),
    }


def schema() -> tuple[dict, dict]:
    """The configuration schema, built from the registry of study steps: (table -> key ->
    (type, required, doc), (table, key) -> allowed values)."""
    from .study.registry import all_steps

    tables = {t: dict(keys) for t, keys in BASE_SCHEMA.items()}
    choices = _base_choices()
    for step in all_steps().values():
        if step.table is None:
            continue
        body = tables.setdefault(step.table, {})
        for k in step.keys:
            body[k.name] = (k.kind, k.required, k.doc)
            if k.allowed is not None:
                choices[(step.table, k.name)] = tuple(k.allowed)
    return tables, choices


def analysis_names() -> tuple:
    """The analyses the pipeline can run, in the order it runs them."""
    from .study.registry import all_steps

    return tuple(all_steps())


def __getattr__(name):  # ANALYSES and SCHEMA are built from the registry on first use
    if name == "ANALYSES":
        return analysis_names()
    if name == "SCHEMA":
        return schema()[0]
    raise AttributeError(name)


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
        """The configuration file and every file it names (whether or not they exist): the
        inputs a results folder may never be, nor hold."""
        paths = [self.source] if self.source is not None else []
        named = [self.get(table, "file") for table in self.values if isinstance(self.values[table], dict)]
        named += list((self.values.get("instruments", {}).get("custom") or {}).values())
        for f in named:
            if isinstance(f, str) and f.strip():
                p = Path(f)
                paths.append(p if p.is_absolute() else self.base / p)
        return paths

    def instruments(self) -> dict:
        """Instrument name -> item pattern or list of item columns (``[instruments]`` without
        ``custom``)."""
        return {k: v for k, v in self.values.get("instruments", {}).items() if k != "custom"}

    def custom_instruments(self) -> dict:
        """``[instruments.custom]``: instrument name -> the path of its key file."""
        out = {}
        for name, f in (self.values.get("instruments", {}).get("custom") or {}).items():
            p = Path(f)
            out[name] = p if p.is_absolute() else self.base / p
        return out

    def figures(self) -> dict:
        """``[figures]`` with defaults: theme, dpi, formats, width (None: each figure's own size)."""
        f = self.values.get("figures", {})
        width = f.get("width")
        if isinstance(width, str) and width not in ("single", "double"):
            width = float(width)
        return {"theme": f.get("theme", "paper"), "dpi": int(f.get("dpi", 300)),
                "formats": list(f.get("formats", self.get("output", "formats", ["png", "pdf"]))), "width": width}

    def analyses(self) -> list[str]:
        """The analyses to run: those listed in [analyses] run, else every one the config supports."""
        from .study.registry import all_steps

        registry = all_steps()
        names = tuple(registry)
        run = self.get("analyses", "run")
        if run is None:
            return [a for a, st in registry.items() if st.default and st.needs(self) is None]
        for a in run:
            if a not in registry:
                raise self.option_error("analyses", "run", a, names,
                                        f"unknown analysis {a!r}{_suggest(a, names)}; choose from {', '.join(names)}")
            need = registry[a].needs(self)
            if need is not None:
                raise self.error("analyses", "run", f"analysis {a!r} needs {need}")
        return [a for a in names if a in run]


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


def _check_type(cfg: StudyConfig, table: str, key: str, value, kind: str, choices=None) -> None:
    ok = {
        _STR: isinstance(value, str) and value.strip() != "",
        _NUM: isinstance(value, (int, float)) and not isinstance(value, bool),
        _INT: isinstance(value, int) and not isinstance(value, bool),
        _STRLIST: isinstance(value, list) and all(isinstance(v, str) and v for v in value),
        _INTLIST: isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
        _BOOL: isinstance(value, bool),
    }[kind]
    if (table, key) == ("figures", "width") and isinstance(value, (int, float)) and not isinstance(value, bool):
        ok, value = value > 0, str(value)  # a number of inches
        if ok:
            return
    if not ok:
        raise cfg.error(table, key, f"must be {kind}, got {value!r}")
    if (table, key) in (("output", "seed"), ("figures", "dpi")) and value < (0 if key == "seed" else 1):
        raise cfg.error(table, key, f"must be a whole number of {0 if key == 'seed' else 1} or more, got {value!r}")
    if choices:
        for v in (value if isinstance(value, list) else [value]):
            if v not in choices:
                raise cfg.option_error(table, key, v, choices,
                                       f"must be one of {', '.join(map(str, choices))}, got {v!r}{_suggest(str(v), map(str, choices))}")


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


def _check_instruments(cfg: StudyConfig, body: dict) -> None:
    from .instruments import get_instrument, normalize_name, register_instrument

    custom = body.get("custom", {})
    if not isinstance(custom, dict):
        raise cfg.error("instruments", "custom", "must be a table, [instruments.custom], of name = \"path/to/key.toml\" lines")
    for name, f in custom.items():
        where = ("instruments.custom", name)
        _check_type(cfg, *where, f, _STR)
        path = cfg.custom_instruments()[name]
        if not path.is_file():
            raise cfg.error(*where, f"instrument key file {str(path)!r} does not exist; paths are relative to the config file's folder")
        try:
            known = get_instrument(name)
        except Exception:
            known = None
        try:  # the same file again (a second run in one session) replaces its own earlier registration
            inst = register_instrument(path, replace=known is not None and known.source == str(path))
        except Exception as exc:
            raise cfg.error(*where, f"{exc}") from None
        if normalize_name(inst.name) != normalize_name(name) and normalize_name(name) not in map(normalize_name, inst.aliases):
            raise cfg.error(*where, f"the key file {path.name} defines the instrument {inst.name!r}, not {name!r}; "
                                    f"write {inst.name!r} = \"{f}\"")
        if name not in body:
            raise cfg.error(*where, f"give the item columns of {name!r} in [instruments], e.g. \"{name}\" = \"ITEM_{{}}\" "
                                    "or a list of the columns")
    items = {k: v for k, v in body.items() if k != "custom"}
    if not items:
        raise cfg.error("instruments", None, "name at least one instrument, e.g. \"wai-sr\" = \"WAISR_{}\"")
    for name, spec in items.items():
        try:
            get_instrument(name)
        except Exception as exc:
            hint = "" if custom else "; a key of your own is given in [instruments.custom] as name = \"path/to/key.toml\""
            raise cfg.error("instruments", name, f"{exc}{hint}") from None
        if isinstance(spec, list):
            _check_type(cfg, "instruments", name, spec, _STRLIST)
            n = get_instrument(name).n_items
            if len(spec) != n:
                raise cfg.error("instruments", name, f"lists {len(spec)} item columns; {name} has {n} items (list them in item order)")
            continue
        if not isinstance(spec, str):
            raise cfg.error("instruments", name, f"must be {_ITEMS}, got {spec!r}")
        _check_type(cfg, "instruments", name, spec, _STR)
        why = pattern_problem(spec)
        if why:
            raise cfg.error("instruments", name, f"item pattern {spec!r}: {why}")


def check_config(cfg: StudyConfig) -> StudyConfig:
    """Check tables, keys, types and choices against the schema built from the registry of study
    steps; raise :class:`ConfigError` naming key and line (and the closest name for a typo)."""
    tables, choices = schema()
    for table, body in cfg.values.items():
        if table not in tables:
            raise cfg.error(table, None, f"unknown table{_suggest(table, tables)}; tables: {', '.join(tables)}")
        if not isinstance(body, dict):
            raise cfg.error(table, None, "must be a table, written as a [section] with key = value lines")
        if table == "instruments":
            _check_instruments(cfg, body)
            continue
        for key, value in body.items():
            if key not in tables[table]:
                raise cfg.error(table, key, f"unknown key{_suggest(key, tables[table])}; keys of [{table}]: {', '.join(tables[table])}")
            _check_type(cfg, table, key, value, tables[table][key][0], choices.get((table, key)))
            if (table, key) == ("pqs", "items"):
                why = pattern_problem(value)
                if why:
                    raise cfg.error(table, key, f"item pattern {value!r}: {why}")
        for key, spec in tables[table].items():
            if spec[1] and key not in body:
                raise cfg.error(table, None, f"the key {key!r} is required")
    for table in ("data", "instruments", "variables"):
        if table not in cfg.values:
            raise ConfigError(f"{cfg.source.name if cfg.source else 'the configuration'}: the table [{table}] is required")
    if cfg.get("output", "formats") is not None and cfg.get("figures", "formats") is not None:
        raise cfg.error("output", "formats", "give the figure formats once, in [figures] formats")
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


def config_reference() -> str:
    """The configuration reference (Markdown), built from the schema and the registry of study
    steps: ``docs/configuration.md`` is this text (a test checks that it is up to date)."""
    from .study.registry import all_steps

    tables, choices = schema()
    registry = all_steps()
    by_table = {st.table: st for st in registry.values() if st.table}
    out = ["# Study configuration reference", "",
           "<!-- Generated by alliance_stats.config.config_reference() from the registry of study steps; do not edit. -->", "",
           "`alliance-stats analyze STUDY.toml` reads a TOML file of the tables below. Paths are relative to the file. "
           "Unknown tables and keys are refused with the closest name (\"did you mean\"). "
           "`alliance-stats analyze --example` prints a file to start from.", "",
           "## Analyses", "", "`[analyses] run` lists the analyses to run, in any order; they run in this order. "
           "Without it, every analysis the configuration has what it needs for runs.", "",
           "| analysis | what it does | needs |", "|---|---|---|"]
    for st in registry.values():
        out.append(f"| `{st.name}` | {st.doc} | {st.needs(_Empty()) or '—'} |")
    out += ["", "## `[instruments]`", "",
            "One line per instrument: `\"wai-sr\" = \"WAISR_{}\"` (an item pattern, `{}` = the item number, or `{:02d}`) or "
            "`\"wai-sr\" = [\"q1\", \"q2\", ...]` (the item columns in item order). Instruments are the registered keys "
            "(`alliance-stats instruments`).", "",
            "`[instruments.custom]` adds keys of your own: `\"my-scale\" = \"keys/my-scale.toml\"`, a key file in the format of "
            "`alliance_stats/instruments/keys/*.toml` (see `als.register_instrument`); list its items in `[instruments]` too.", ""]
    for table, keys in tables.items():
        if table == "instruments":
            continue
        st = by_table.get(table)
        out += [f"## `[{table}]`" + (f" — analysis `{st.name}`" if st else ""), ""]
        out += ["| key | type | required | allowed | meaning |", "|---|---|---|---|---|"]
        for key, (kind, required, doc) in keys.items():
            allowed = ", ".join(f"`{a}`" for a in choices.get((table, key), ())) or "—"
            out.append(f"| `{key}` | {kind} | {'yes' if required else 'no'} | {allowed} | {doc} |")
        out.append("")
    return "\n".join(out)


class _Empty(StudyConfig):
    """A configuration with no tables (to ask each step what it needs)."""

    def __init__(self):
        super().__init__(values={}, base=Path("."))
