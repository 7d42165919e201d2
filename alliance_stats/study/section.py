"""What a study step hands to the report: a :class:`Section` (plain data, no file written yet).

The report (:mod:`alliance_stats.report`) writes every table and figure of a section into the
results folder and renders each analysis result through its public ``methods()``,
``accounting()``, ``to_apa()`` and ``plot(ax=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["Section", "ResultItem"]


@dataclass
class ResultItem:
    """An analysis result shown in a section: its table (``to_apa()``), figure (``plot(ax=...)``),
    methods paragraph (``methods()``) and accounting (``accounting()``)."""

    name: str  # file stem of its table (tables/<name>.csv)
    caption: str
    result: object
    figure: str | None = None  # file stem of its figure; None: no figure
    figure_caption: str = ""
    plot_kwargs: dict = field(default_factory=dict)


@dataclass
class Section:
    """One part of the report."""

    key: str
    title: str
    methods: str = ""  # the step's own methods text (what no single result describes)
    text: list = field(default_factory=list)
    results: list = field(default_factory=list)  # ResultItem
    tables: list = field(default_factory=list)  # (name, caption, DataFrame): written and shown
    files: list = field(default_factory=list)  # (name, DataFrame, index): written, not shown
    figures: list = field(default_factory=list)  # (name, caption, Figure/Axes/grid)
    accounting: list = field(default_factory=list)  # sentences on what was used and left out
    pre: str = ""
    skipped: str = ""  # why the step did not run (shown instead of results)

    def add_result(self, name: str, caption: str, result, *, figure: str | None = None, figure_caption: str = "",
                   **plot_kwargs) -> None:
        """Show ``result``: its ``to_apa()`` table as ``name``, its ``plot(ax=...)`` as ``figure``."""
        self.results.append(ResultItem(name, caption, result, figure, figure_caption, plot_kwargs))

    def add_table(self, name: str, caption: str, df: pd.DataFrame) -> None:
        self.tables.append((name, caption, df))

    def add_file(self, name: str, df: pd.DataFrame, index: bool = False) -> None:
        self.files.append((name, df, index))

    def add_figure(self, name: str, caption: str, fig) -> None:
        self.figures.append((name, caption, fig))
