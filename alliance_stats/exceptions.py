"""Errors and warnings raised by alliance-stats.

Every error subclasses :class:`AllianceStatsError` (itself a :class:`ValueError`), names
the column, row, patient, session or study at fault, and says what would fix it.
Warnings subclass :class:`AllianceStatsWarning`.
"""

from __future__ import annotations

import functools

__all__ = [
    "AllianceStatsError",
    "InstrumentKeyError",
    "ItemRangeError",
    "SessionDataError",
    "QSortError",
    "ColumnError",
    "DataFileError",
    "AllianceStatsWarning",
    "ProvisionalKeyWarning",
    "InvalidValuesWarning",
    "KeyReversalWarning",
    "NestedDataWarning",
    "IncompleteGroupsWarning",
    "ModelSpecError",
    "ConvergenceWarning",
    "SingularFitWarning",
    "DynamicPanelBiasWarning",
    "ConfigError",
    "OptionError",
    "OutputPathError",
    "MultipleTherapistsWarning",
    "ArgumentError",
    "InsufficientDataError",
    "MetaAnalysisError",
    "DependentEffectsWarning",
    "ConfigOptionError",
]


def _show(value) -> str:
    """A value as a person would write it: 'a' for strings, 1 (not np.int64(1)) for numbers."""
    if hasattr(value, "item") and not isinstance(value, str):
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


def _fmt_labels(labels, limit: int = 10) -> str:
    """Format a list of row labels for an error message, shortening long lists."""
    labels = list(labels)
    shown = ", ".join(_show(x) for x in labels[:limit])
    if len(labels) > limit:
        shown += f", ... ({len(labels) - limit} more)"
    return shown


def user_stacklevel() -> int:
    """Stack level of the first frame outside alliance_stats, for warnings.warn."""
    import sys

    level, frame = 1, sys._getframe(1)
    while frame is not None and _in_package(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    return level


@functools.lru_cache(maxsize=512)
def _in_package(filename: str) -> bool:
    from pathlib import Path

    return str(Path(filename).resolve()).startswith(str(Path(__file__).resolve().parent))


class AllianceStatsError(ValueError):
    """Base class of every error raised by alliance-stats for bad input."""

    def with_context(self, context: str) -> "AllianceStatsError":
        """The same error (same class and attributes) with ``context: `` put before its message.

        Subclasses whose constructors take more than a message (ItemRangeError, QSortError ...)
        cannot be rebuilt with ``type(exc)(message)``; this copies them instead.
        """
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__dict__)
        new.args = (f"{context}: {self}",)
        return new


class InstrumentKeyError(AllianceStatsError):
    """An instrument key (scoring definition) is unknown or invalid."""


class ColumnError(AllianceStatsError, KeyError):
    """A column named in a call is not in the data or is ambiguous, or holds values the analysis
    cannot use (text or infinite values in a numeric column, codes outside the declared states)."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class ItemRangeError(AllianceStatsError):
    """An item response lies outside the instrument's response scale or is not a number.

    Attributes
    ----------
    column : str
        The data column holding the bad value(s).
    rows : list
        Row labels (``data.index``) of the bad values.
    values : list
        The offending values.
    allowed : tuple
        The response scale ``(min, max)``.
    """

    def __init__(self, column, rows, values, allowed, instrument: str | None = None, integer: bool = False):
        self.column = column
        self.rows = list(rows)
        self.values = list(values)
        self.allowed = tuple(allowed)
        self.instrument = instrument
        inst = f" ({instrument})" if instrument else ""
        msg = (
            f"column {column!r}{inst}: {len(self.rows)} value(s) outside the response scale "
            f"{_show(self.allowed[0])}..{_show(self.allowed[1])}{' (whole numbers)' if integer else ''} "
            f"or not numeric, at row(s) "
            f"{_fmt_labels(self.rows)} with value(s) {_fmt_labels(self.values)}. "
            "Correct the data, map the column to the right item, or pass on_invalid='nan' "
            "to treat these values as missing (they are then counted and reported)."
        )
        super().__init__(msg)


class SessionDataError(AllianceStatsError):
    """Session identifiers are missing, malformed, duplicated or out of order.

    Attributes
    ----------
    rows : list
        Row labels of the offending rows.
    """

    def __init__(self, message: str, rows=()):
        self.rows = list(rows)
        super().__init__(message)


class QSortError(AllianceStatsError):
    """A Q-sort does not have the expected items, piles or forced distribution.

    Attributes
    ----------
    session : object
        The session (row label) whose sort is invalid.
    found, expected : list of int
        Counts of items per pile found and expected.
    """

    def __init__(self, message: str, session=None, found=None, expected=None):
        self.session = session
        self.found = found
        self.expected = expected
        super().__init__(message)


class DataFileError(AllianceStatsError):
    """A data file cannot be read: unknown format, missing sheet, unreadable content."""


class AllianceStatsWarning(UserWarning):
    """Base class of warnings issued by alliance-stats."""


class ProvisionalKeyWarning(AllianceStatsWarning):
    """A scoring key has not been verified against the instrument's manual."""


class InvalidValuesWarning(AllianceStatsWarning):
    """Invalid values were set to missing (``on_invalid='nan'``) and counted."""


class KeyReversalWarning(AllianceStatsWarning):
    """An item correlates negatively with the rest of its scale (corrected item-total
    correlation below 0): the scoring key may lack a reversal of that item, or the data hold
    it already reversed. Raised by :func:`alliance_stats.reliability`.

    Attributes
    ----------
    instrument, scale : str
    items : dict
        ``{column: corrected item-total correlation}`` of the negative items.
    """

    def __init__(self, message: str, instrument: str = "", scale: str = "", items=None):
        super().__init__(message)
        self.instrument = instrument
        self.scale = scale
        self.items = dict(items or {})


class ModelSpecError(AllianceStatsError):
    """A model formula or model specification cannot be fitted as written (unknown column,
    two grouping factors with the same groups, no random term, too few groups ...)."""


class ConvergenceWarning(AllianceStatsWarning):
    """An iterative fit stopped without clear evidence of having reached the optimum: a mixed
    model's optimizer, a meta-analysis's tau^2 or variance-component estimation, trim-and-fill.
    The result then has ``converged = False``."""


class SingularFitWarning(AllianceStatsWarning):
    """A mixed model's variance-covariance estimate is on the boundary (a variance at zero or a
    correlation at +/-1)."""


class DynamicPanelBiasWarning(AllianceStatsWarning):
    """A model with a random (or fixed) patient intercept and the lagged outcome as predictor,
    fitted to short series of sessions, is biased (dynamic-panel or Nickell bias; Nickell 1981,
    Falkenström et al. 2017): the lagged outcome's coefficient is pulled down and, when the
    outcome feeds back into the predictor, the predictor's effect too.
    :func:`alliance_stats.dynamic_panel` and :func:`alliance_stats.ri_clpm` are free of it."""


class ConfigError(AllianceStatsError):
    """A study configuration (``STUDY.toml``) is malformed: unknown key, wrong type, a column
    that is not in the data. The message names the key and its line."""


class OptionError(AllianceStatsError):
    """An option (keyword argument, command-line flag or config value) has a value outside its
    allowed set. The message names the option, the value given and the values allowed.

    Attributes
    ----------
    option : str
    value : object
    allowed : tuple
    """

    def __init__(self, option: str, value, allowed=(), hint: str = ""):
        self.option = option
        self.value = value
        self.allowed = tuple(allowed)
        msg = f"{option}={value!r} is not a valid value"
        if self.allowed:
            msg += "; allowed: " + ", ".join(repr(a) for a in self.allowed)
        if hint:
            msg += f". {hint}"
        super().__init__(msg)


class ConfigOptionError(ConfigError, OptionError):
    """A configuration value outside its allowed set (``method = "SJ"`` in ``[meta]``): a
    :class:`ConfigError` whose message names the key and its line, and an :class:`OptionError`
    with ``option``, ``value`` and ``allowed``."""

    def __init__(self, message: str, option: str, value, allowed=()):
        self.option = option
        self.value = value
        self.allowed = tuple(allowed)
        AllianceStatsError.__init__(self, message)


class OutputPathError(AllianceStatsError):
    """An output file or folder cannot be written where asked: it would land outside the results
    folder, overwrite an input, replace a folder this package did not write, or its parent is
    not a folder. The message says what to do instead."""


class MultipleTherapistsWarning(AllianceStatsWarning):
    """A patient appears with more than one therapist. Models that nest patients in therapists
    need one therapist per patient; the warning names the patients and their therapists."""


class ArgumentError(AllianceStatsError):
    """An argument is not of the kind the function takes (a list where a table is needed, the
    result of another analysis), or arguments that go together were not given together. The
    message says what to pass."""


class InsufficientDataError(AllianceStatsError):
    """Too few usable rows, patients, sorts or pairs are left for what was asked (after missing
    values and exclusions), or the values do not vary. The message says how many there are and
    how many are needed."""


class MetaAnalysisError(AllianceStatsError):
    """Effect sizes cannot be pooled as given (|r| >= 1, n <= 3, a variance that is not
    positive, a missing value, fewer than two effect sizes), or a meta-analytic method was asked
    of a model it does not apply to (trim-and-fill on a meta-regression). The message names the
    study at fault."""


class DependentEffectsWarning(AllianceStatsWarning):
    """Several effect sizes of the same study are pooled as if they were independent (study
    labels repeat and no ``cluster=`` was given), which understates the standard error of the
    pooled effect. Pass ``cluster=`` for a three-level model or combine each study's effects
    first with :func:`~alliance_stats.aggregate_effects`."""


class NestedDataWarning(AllianceStatsWarning):
    """Rows that are nested (several sessions of one patient) are pooled as if they were
    independent: :func:`alliance_stats.reliability` on a session table gives a pooled alpha whose
    CI is too narrow and which says nothing about change within patients;
    :func:`alliance_stats.multilevel_reliability` gives the session-level coefficients."""


class IncompleteGroupsWarning(AllianceStatsWarning):
    """A data transform (:func:`~alliance_stats.partner_scores`, :func:`~alliance_stats.decompose`)
    returned every row but left its new columns missing in the rows of some groups, for a reason:
    dyads without a row of the other role, patients with too few observed values for their own
    trend. The transforms return the DataFrame itself; this warning is how they report what
    they could not fill.

    Attributes
    ----------
    function : str
        The transform (``"partner_scores"``, ``"decompose"``).
    reason : str
        Why the groups' values are missing.
    groups : list
        The groups' labels (dyad keys, patient IDs).
    columns : list of str
        The new columns left missing in those groups' rows.
    """

    def __init__(self, message: str, function: str = "", reason: str = "", groups=(), columns=()):
        super().__init__(message)
        self.function = function
        self.reason = reason
        self.groups = list(groups)
        self.columns = list(columns)

    @property
    def n(self) -> int:
        """How many groups."""
        return len(self.groups)
