"""Instrument keys: scoring definitions stored as data files.

Each form of each instrument is a TOML file in ``alliance_stats/instruments/keys``. Users add
their own keys (for example the official key from a manual they hold a licence for) with
:func:`register_instrument`, from a TOML file or a mapping with the same fields.

Fields
------
name : str (required)
    Canonical name, e.g. ``"wai-sr"``. Matching ignores case, spaces and ``_``/``-``.
n_items : int (required)
    Number of items; items are numbered 1..n_items.
scale : [min, max] (required)
    Response scale.
subscales : {name: [item numbers]} (required, may be empty for single-score instruments)
rater : {"client", "therapist", "observer"}, default "client"
reversed : list of int, default []
    Items reverse-scored as ``(min + max) - x``.
scoring : {"mean", "sum"}, default "mean"
total : bool, default True
    Whether a total over all items is scored.
max_missing : int, default 0
    How many items of a subscale may be missing; with fewer missing the score is prorated
    (mean of the answered items, times the number of items for sums).
max_missing_total : int, optional
    The same for the total; defaults to ``max_missing`` (one limit for every scale).
multiplier : float, default 1
    Scores are multiplied by it (CORE-OM's clinical score is the mean x 10).
integer : bool, default True
    Whether responses must be whole numbers (False for visual-analogue scales).
disjoint : bool, default True
    Whether every item belongs to at most one subscale.
cutoffs, bands : mappings, optional
    Published clinical cut-offs / RCI and severity bands (lower bounds).
citation, label, notes : str
provenance : {"verified", "provisional", "user"}, default "user"
    ``provisional`` keys emit :class:`~alliance_stats.exceptions.ProvisionalKeyWarning`
    when used.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import pandas as pd

from ..exceptions import InstrumentKeyError

__all__ = ["Instrument", "instruments", "get_instrument", "register_instrument"]

KEY_DIR = Path(__file__).parent / "keys"
RATERS = ("client", "therapist", "observer")
PROVENANCES = ("verified", "provisional", "user")


def normalize_name(name: str) -> str:
    """Lower-case a name and drop spaces, '-', '_' and '.' so 'WAI_SR' matches 'wai-sr'."""
    return re.sub(r"[\s\-_.]", "", str(name).lower())


def default_prefix(name: str) -> str:
    """Column prefix for scores: 'phq-9' -> 'phq9', 'wai-sr' -> 'wai_sr'."""
    s = re.sub(r"-(?=\d)", "", name.lower())
    return re.sub(r"[^0-9a-z]+", "_", s).strip("_")


@dataclass(frozen=True)
class Instrument:
    """A frozen instrument key. Build with :func:`register_instrument` or read a built-in
    one with :func:`get_instrument`."""

    name: str
    n_items: int
    scale: tuple
    subscales: Mapping[str, tuple]
    label: str = ""
    family: str = ""
    aliases: tuple = ()
    rater: str = "client"
    construct: str = ""
    kind: str = "rating"
    reversed: tuple = ()
    scoring: str = "mean"
    total: bool = True
    max_missing: int = 0
    max_missing_total: int | None = None
    multiplier: float = 1.0
    integer: bool = True
    disjoint: bool = True
    higher_is_better: bool | None = None
    distribution: tuple = ()
    cutoffs: Mapping[str, float] = field(default_factory=dict)
    bands: Mapping[str, float] = field(default_factory=dict)
    citation: str = ""
    notes: str = ""
    provenance: str = "user"
    prefix: str = ""
    source: str = ""

    @property
    def scales(self) -> dict:
        """Every scored scale: the subscales plus ``total`` (when scored), as item tuples."""
        out = dict(self.subscales)
        if self.total:
            out["total"] = tuple(range(1, self.n_items + 1))
        return out

    def max_missing_for(self, scale: str) -> int:
        if scale == "total" and self.max_missing_total is not None:
            return self.max_missing_total
        return self.max_missing

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["subscales"] = {k: list(v) for k, v in self.subscales.items()}
        d["cutoffs"] = dict(self.cutoffs)
        d["bands"] = dict(self.bands)
        for k in ("scale", "aliases", "reversed", "distribution"):
            d[k] = list(d[k])
        return d

    def __repr__(self) -> str:
        subs = ", ".join(f"{k}={list(v)}" for k, v in self.subscales.items()) or "none"
        return (
            f"Instrument({self.name!r}, rater={self.rater!r}, n_items={self.n_items}, "
            f"scale={list(self.scale)}, scoring={self.scoring!r}, reversed={list(self.reversed)}, "
            f"subscales: {subs}, provenance={self.provenance!r})"
        )


_REGISTRY: dict[str, Instrument] = {}
_ALIASES: dict[str, str] = {}
_KNOWN = {f.name for f in fields(Instrument)}


def _err(where: str, msg: str) -> InstrumentKeyError:
    return InstrumentKeyError(f"instrument key {where}: {msg}")


def _as_int_list(value, where: str, what: str) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise _err(where, f"'{what}' must be a list of item numbers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
            raise _err(where, f"'{what}' holds {v!r}, which is not an item number")
        out.append(int(v))
    return tuple(out)


def _build(spec: Mapping[str, Any], source: str) -> Instrument:
    """Validate a key mapping and build an :class:`Instrument`."""
    if not isinstance(spec, Mapping):
        raise InstrumentKeyError(f"instrument key from {source}: expected a mapping, got {type(spec).__name__}")
    where = repr(spec.get("name", source))
    for req in ("name", "n_items", "scale", "subscales"):
        if req not in spec:
            raise _err(where, f"required field '{req}' is missing (required: name, n_items, scale, subscales)")
    unknown = set(spec) - _KNOWN
    if unknown:
        raise _err(where, f"unknown field(s) {sorted(unknown)}; known fields are {sorted(_KNOWN - {'source'})}")
    name = str(spec["name"]).strip()
    if not name:
        raise _err(where, "'name' is empty")
    n = spec["n_items"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise _err(where, f"'n_items' must be a positive whole number, got {n!r}")
    scale = spec["scale"]
    if not isinstance(scale, (list, tuple)) or len(scale) != 2 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in scale
    ):
        raise _err(where, f"'scale' must be [min, max], got {scale!r}")
    if not all(math.isfinite(v) for v in scale):
        raise _err(where, f"'scale' must be finite numbers, got {list(scale)}")
    if not scale[0] < scale[1]:
        raise _err(where, f"'scale' min must be below max, got {list(scale)}")
    subs = spec["subscales"]
    if not isinstance(subs, Mapping):
        raise _err(where, f"'subscales' must map scale names to item lists, got {subs!r}")
    subscales = {}
    for sname, items in subs.items():
        its = _as_int_list(items, where, f"subscales.{sname}")
        bad = [i for i in its if not 1 <= i <= n]
        if bad:
            raise _err(where, f"subscale {sname!r} lists item(s) {bad} outside 1..{n}")
        if len(set(its)) != len(its):
            raise _err(where, f"subscale {sname!r} lists an item twice: {list(its)}")
        if not its:
            raise _err(where, f"subscale {sname!r} has no items")
        if sname == "total":
            raise _err(where, "a subscale may not be called 'total' (the total is scored separately)")
        subscales[str(sname)] = its
    disjoint = bool(spec.get("disjoint", True))
    if disjoint:
        seen: dict[int, str] = {}
        for sname, its in subscales.items():
            for i in its:
                if i in seen:
                    raise _err(
                        where,
                        f"item {i} is in subscales {seen[i]!r} and {sname!r}, but subscales must be "
                        "disjoint (set disjoint = false if the instrument shares items)",
                    )
                seen[i] = sname
    rev = _as_int_list(spec.get("reversed", []), where, "reversed")
    bad = [i for i in rev if not 1 <= i <= n]
    if bad:
        raise _err(where, f"'reversed' lists item(s) {bad} outside 1..{n}")
    scoring = spec.get("scoring", "mean")
    kind = spec.get("kind", "rating")
    if not isinstance(kind, str) or kind not in ("rating", "qsort"):
        raise _err(where, f"'kind' must be 'rating' or 'qsort', got {kind!r}")
    for bname in ("total", "integer", "disjoint", "higher_is_better"):
        if bname in spec and spec[bname] is not None and not isinstance(spec[bname], bool):
            raise _err(where, f"'{bname}' must be true or false, got {spec[bname]!r}")
    mult = spec.get("multiplier", 1.0)
    if isinstance(mult, bool) or not isinstance(mult, (int, float)) or not math.isfinite(mult) or mult == 0:
        raise _err(where, f"'multiplier' must be a finite non-zero number, got {mult!r}")
    aliases = spec.get("aliases", ())
    if isinstance(aliases, str) or not isinstance(aliases, (list, tuple)):
        raise _err(where, f"'aliases' must be a list of names, got {aliases!r}")
    if not isinstance(scoring, str) or scoring not in ("mean", "sum", "none"):
        raise _err(where, f"'scoring' must be 'mean' or 'sum', got {scoring!r}")
    total = bool(spec.get("total", True))
    if kind != "qsort" and not subscales and not total:
        raise _err(where, "the key scores nothing: give subscales or set total = true")
    rater = spec.get("rater", "client")
    if not isinstance(rater, str) or rater not in RATERS:
        raise _err(where, f"'rater' must be one of {RATERS}, got {rater!r}")
    prov = spec.get("provenance", "user")
    if not isinstance(prov, str) or prov not in PROVENANCES:
        raise _err(where, f"'provenance' must be one of {PROVENANCES}, got {prov!r}")
    mm = spec.get("max_missing", 0)
    if isinstance(mm, bool) or not isinstance(mm, int) or mm < 0:
        raise _err(where, f"'max_missing' must be a whole number >= 0, got {mm!r}")
    mmt = spec.get("max_missing_total")
    if mmt is not None and (isinstance(mmt, bool) or not isinstance(mmt, int) or mmt < 0):
        raise _err(where, f"'max_missing_total' must be a whole number >= 0, got {mmt!r}")
    dist = _as_int_list(spec.get("distribution", []), where, "distribution")
    if dist:
        if sum(dist) != n:
            raise _err(where, f"'distribution' sums to {sum(dist)}, not n_items = {n}")
        if len(dist) != int(scale[1] - scale[0] + 1):
            raise _err(where, f"'distribution' has {len(dist)} piles but the scale has {int(scale[1] - scale[0] + 1)}")
    for mname in ("cutoffs", "bands"):
        m = spec.get(mname, {})
        if not isinstance(m, Mapping) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in m.values()
        ):
            raise _err(where, f"'{mname}' must map labels to numbers, got {m!r}")
    pfx = spec.get("prefix")
    if pfx is not None and (not isinstance(pfx, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", pfx)):
        raise _err(where, f"'prefix' must be a name of letters, digits and '_' (e.g. 'wai_sr'), got {pfx!r}")
    hib = spec.get("higher_is_better")
    if hib is None and spec.get("construct") == "alliance":
        hib = True
    return Instrument(
        name=name,
        n_items=n,
        scale=(scale[0], scale[1]),
        subscales=MappingProxyType(subscales),
        label=str(spec.get("label", "")),
        family=str(spec.get("family", "")),
        aliases=tuple(str(a) for a in aliases),
        rater=rater,
        construct=str(spec.get("construct", "")),
        kind=str(kind),
        reversed=tuple(sorted(rev)),
        scoring=scoring,
        total=total,
        max_missing=mm,
        max_missing_total=mmt,
        multiplier=float(mult),
        integer=bool(spec.get("integer", True)),
        disjoint=disjoint,
        higher_is_better=hib,
        distribution=dist,
        cutoffs=MappingProxyType(dict(spec.get("cutoffs", {}))),
        bands=MappingProxyType(dict(spec.get("bands", {}))),
        citation=str(spec.get("citation", "")),
        notes=str(spec.get("notes", "")),
        provenance=prov,
        prefix=str(spec.get("prefix") or default_prefix(name)),
        source=source,
    )


def _add(inst: Instrument, replace: bool) -> None:
    key = normalize_name(inst.name)
    if key in _REGISTRY and not replace:
        raise InstrumentKeyError(
            f"an instrument called {inst.name!r} is already registered; pass replace=True to "
            "replace it (for example with the official key from the manual)"
        )
    clash = [a for a in inst.aliases if _ALIASES.get(normalize_name(a), key) != key]
    if clash and not replace:
        raise InstrumentKeyError(
            f"alias(es) {clash} of {inst.name!r} already name other instruments; rename them"
        )
    _REGISTRY[key] = inst
    _ALIASES[key] = key
    for a in inst.aliases:
        _ALIASES[normalize_name(a)] = key


def _load_builtin() -> None:
    for path in sorted(KEY_DIR.glob("*.toml")):
        with path.open("rb") as fh:
            spec = tomllib.load(fh)
        _add(_build(spec, source=f"built-in ({path.name})"), replace=False)


def register_instrument(key, *, replace: bool = False) -> Instrument:
    """Add an instrument key from a TOML file or a mapping, after validating it.

    Parameters
    ----------
    key : str, path or mapping
        A path to a TOML file, or a mapping with the fields listed in the module docstring.
    replace : bool
        Replace a registered instrument of the same name (for example a provisional built-in
        key by the official key from the manual).

    Returns
    -------
    Instrument

    Examples
    --------
    >>> import alliance_stats as als
    >>> inst = als.register_instrument({"name": "my-scale", "n_items": 3, "scale": [1, 5],
    ...     "subscales": {}, "reversed": [2]})
    >>> inst.provenance
    'user'
    """
    if isinstance(key, Mapping):
        spec, source = dict(key), "user mapping"
    elif isinstance(key, (str, os.PathLike)):
        path = Path(key)
        if path.is_dir():
            raise InstrumentKeyError(f"instrument key file {str(path)!r} is a folder; give the path of the .toml file")
        if not path.is_file():
            raise InstrumentKeyError(f"instrument key file {str(path)!r} does not exist")
        try:
            with path.open("rb") as fh:
                spec = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise InstrumentKeyError(f"instrument key file {str(path)!r} is not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise InstrumentKeyError(f"instrument key file {str(path)!r} is not UTF-8 text; save it as UTF-8") from None
        source = str(path)
    else:
        raise InstrumentKeyError(
            f"register_instrument() takes a path to a TOML file or a mapping of the key's fields, got {type(key).__name__}"
        )
    spec.setdefault("provenance", "user")
    inst = _build(spec, source=source)
    _add(inst, replace=replace)
    return inst


def get_instrument(name) -> Instrument:
    """Return the key of an instrument form by name or alias (case and '-'/'_' ignored).

    An :class:`Instrument` passed in is returned as it is.
    """
    if isinstance(name, Instrument):
        return name
    key = _ALIASES.get(normalize_name(name))
    if key is None:
        raise InstrumentKeyError(
            f"unknown instrument {name!r}. Known: {', '.join(sorted(i.name for i in _REGISTRY.values()))}. "
            "Register your own key with als.register_instrument()."
        )
    return _REGISTRY[key]


def instruments() -> pd.DataFrame:
    """All registered instrument forms, one row each.

    Returns
    -------
    DataFrame
        Columns: name, label, rater, construct, n_items, scale_min, scale_max, scoring,
        subscales, reversed, provenance, citation.
    """
    rows = []
    for inst in sorted(_REGISTRY.values(), key=lambda i: i.name):
        rows.append(
            {
                "name": inst.name,
                "label": inst.label,
                "rater": inst.rater,
                "construct": inst.construct,
                "n_items": inst.n_items,
                "scale_min": inst.scale[0],
                "scale_max": inst.scale[1],
                "scoring": inst.scoring,
                "subscales": ", ".join(inst.subscales) or "-",
                "reversed": ", ".join(map(str, inst.reversed)) or "-",
                "provenance": inst.provenance,
                "citation": inst.citation,
            }
        )
    return pd.DataFrame(rows)


_load_builtin()
