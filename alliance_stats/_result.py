"""One base for every analysis result, as lifelines' fitters share one: ``Result``.

Every public analysis returns an object on this base, so a result is used the same way whatever
the analysis:

========================  =====================================================================
``repr(res)``             one line: the class and the headline (what was fitted, on how much data)
``res.summary()``         the whole text summary (headline, tables, rows left out, notes)
``res.print_summary()``   prints it
``res.to_frame()``        the main tidy table, numbers as numbers (a copy)
``res.to_apa(digits)``    the same table as APA-style strings (:mod:`alliance_stats._format`)
``res._repr_html_()``     the summary as HTML in Jupyter (one template for every result)
``res.plot(ax=None)``     the analysis' standard figure; ``ax`` is keyword-only; returns the Axes
``res.methods()``         a methods-and-results paragraph, APA style
``res.accounting()``      what was used and what was left out, by reason (unit, status, reason, n)
========================  =====================================================================

A subclass gives ``title`` (a class attribute), ``_headline()``, ``to_frame()``, and where they
apply ``methods()``, ``accounting()``, ``plot()``; it may add tables to the summary with
``_tables()`` and notes with ``_notes()``, and override ``to_apa`` when its table needs more than
the generic APA formatting. The report (``alliance-stats analyze``/``demo``) renders every result
through ``methods()``, ``accounting()``, ``to_apa()`` and ``plot()`` only.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping

import pandas as pd

from ._format import format_frame
from .exceptions import ArgumentError

__all__ = ["Result", "ACCOUNTING_COLUMNS", "accounting_frame"]

#: Columns of every ``accounting()`` table.
ACCOUNTING_COLUMNS = ("unit", "status", "reason", "n")


def accounting_frame(unit: str, used: int, excluded: Mapping[str, int] | Iterable[tuple[str, int]] = (),
                     *, more: Iterable[pd.DataFrame] = ()) -> pd.DataFrame:
    """An ``accounting()`` table: ``used`` units of kind ``unit`` (rows, patients, studies, ...)
    analysed, and the units left out by reason.

    >>> accounting_frame("patients", 150, {"fewer than 3 sessions": 8, "no outcome": 2})
           unit    status                 reason    n
    0  patients      used                         150
    1  patients  excluded  fewer than 3 sessions    8
    2  patients  excluded             no outcome    2
    """
    items = excluded.items() if isinstance(excluded, Mapping) else excluded
    rows = [(unit, "used", "", int(used))] + [(unit, "excluded", str(r), int(n)) for r, n in items if int(n)]
    out = pd.DataFrame(rows, columns=list(ACCOUNTING_COLUMNS))
    extra = [m for m in more if len(m)]
    return pd.concat([out, *extra], ignore_index=True) if extra else out


class Result:
    """Base of every analysis result (see the module docstring for the interface)."""

    #: What the analysis is, for headings ("Linear mixed model", "Meta-analysis", ...).
    title: str = "Result"

    # -- what a subclass provides -------------------------------------------------------------
    def _headline(self) -> str:
        """One line: what was fitted, on how much data, the main number."""
        return ""

    def to_frame(self) -> pd.DataFrame:
        """The main table of the result, numbers as numbers (a copy the caller may change)."""
        raise NotImplementedError(f"{type(self).__name__} does not define to_frame()")

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        """The main table as APA-style strings (two decimals by default, more where a value
        needs them; p as ``< .001``; no leading zero where a value cannot exceed 1)."""
        return format_frame(self.to_frame(), digits=2 if digits is None else int(digits), na="NA")

    def methods(self) -> str:
        """A methods-and-results paragraph (APA style) saying what was done and found."""
        return ""

    def accounting(self) -> pd.DataFrame:
        """What went into the analysis and what was left out, by reason: columns ``unit``,
        ``status`` (used/excluded), ``reason``, ``n``."""
        return pd.DataFrame(columns=list(ACCOUNTING_COLUMNS))

    def _tables(self) -> list[tuple[str, pd.DataFrame]]:
        """Further (caption, APA-formatted table) pairs shown after the main table."""
        return []

    def _notes(self) -> list[str]:
        """Notes and warnings shown under the tables."""
        return [str(m) for m in (getattr(self, "messages", None) or [])]

    def plot(self, *, ax=None, **kwargs):
        """The standard figure of this analysis."""
        raise ArgumentError(f"{type(self).__name__} has no standard figure; draw one from .to_frame()")

    # -- the shared interface -----------------------------------------------------------------
    def __repr__(self) -> str:
        head = self._headline()
        return f"<{type(self).__name__}: {head}>" if head else f"<{type(self).__name__}>"

    def _left_out(self) -> list[str]:
        acc = self.accounting()
        if acc is None or not len(acc):
            return []
        ex = acc[acc["status"] == "excluded"]
        return [f"{r['n']} {r['unit']}: {r['reason']}" for _, r in ex.iterrows()]

    def summary(self) -> str:
        """The text summary: title, headline, main table, further tables, rows left out, notes."""
        lines = [self.title]
        head = self._headline()
        if head:
            lines.append(head)
        lines += ["", self.to_apa().to_string(index=False)]
        for caption, table in self._tables():
            lines += ["", f"{caption}:", table.to_string(index=False)]
        left = self._left_out()
        if left:
            lines += ["", "Left out: " + "; ".join(left)]
        for note in self._notes():
            lines.append(f"Note: {note}")
        return "\n".join(lines)

    def print_summary(self) -> None:
        """Print :meth:`summary`."""
        print(self.summary())

    def _repr_html_(self) -> str:
        parts = [f"<div class='alliance-stats-result'><strong>{html.escape(self.title)}</strong>"]
        head = self._headline()
        if head:
            parts.append(f"<br>{html.escape(head)}")
        parts.append(self.to_apa().to_html(index=False))
        for caption, table in self._tables():
            parts.append(f"<p><em>{html.escape(caption)}</em></p>{table.to_html(index=False)}")
        left = self._left_out()
        if left:
            parts.append(f"<p>Left out: {html.escape('; '.join(left))}</p>")
        parts += [f"<p><em>Note: {html.escape(n)}</em></p>" for n in self._notes()]
        parts.append("</div>")
        return "".join(parts)
