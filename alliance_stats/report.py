"""The study report: one self-contained HTML file (figures embedded) and a Markdown twin."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import platform
from dataclasses import dataclass

import pandas as pd

from ._format import format_frame
from .tables import markdown_table, numeric_columns

__all__ = ["write_report", "ReportInfo"]

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;max-width:980px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
.meta{color:#555;font-size:.9em}.methods{background:#f5f7fa;border-left:3px solid #0072B2;padding:.6em .9em;font-size:.93em}
.accounting{font-size:.9em;color:#333}.accounting li{margin:.1em 0}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.85em}caption{text-align:left;font-style:italic;padding-bottom:.3em}
th,td{padding:.25em .6em;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top}th{border-bottom:2px solid #444}
.tw{overflow-x:auto}figure{margin:1em 0 1.6em}figure img{max-width:100%;height:auto}
figcaption{font-size:.88em;color:#444}pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.82em}
nav ol{columns:2;font-size:.92em}.warn{color:#8a4b00}.skipped{color:#555;font-style:italic}
"""


def _table_html(df: pd.DataFrame, caption: str) -> str:
    """``df`` already formatted (:func:`format_frame`): the cells are printed as they are."""
    num = numeric_columns(df)
    st = " style='text-align:right'"
    head = "".join(f"<th{st if n else ''}>{html.escape(str(c))}</th>" for c, n in zip(df.columns, num))
    rows = "".join("<tr>" + "".join(f"<td{st if n else ''}>{html.escape(str(v))}</td>" for v, n in zip(r, num)) + "</tr>"
                   for r in df.itertuples(index=False))
    return (f"<div class='tw'><table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table></div>")


@dataclass
class ReportInfo:
    """What the report says about the run (besides its sections)."""

    title: str
    seed: int
    inputs: list  # (what, Path)
    versions: pd.DataFrame
    config_name: str | None = None
    config_text: str = ""
    figure_width: object = None
    figure_dpi: int | None = None


def _img(folder, name: str) -> str:
    data = folder.path("figures", f"{name}.png").read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _accounting_lines(acc: pd.DataFrame) -> list[str]:
    """Sentences from an ``accounting()`` table (unit, status, reason, n)."""
    out = []
    for r in acc.itertuples(index=False):
        out.append(f"{r.n} {r.unit} used." if r.status == "used" else f"{r.n} {r.unit} left out: {r.reason}.")
    return out


class _Page:
    """The HTML and Markdown of the report, written side by side."""

    def __init__(self, folder, info: ReportInfo):
        self.folder, self.info, self.h, self.md = folder, info, [], []

    def para(self, text: str, cls: str = "") -> None:
        self.h.append(f"<p{f' class={chr(39)}{cls}{chr(39)}' if cls else ''}>{html.escape(text)}</p>")
        self.md += [text, ""]

    def methods(self, text: str) -> None:
        self.h.append(f"<p class='methods'><strong>Methods.</strong> {html.escape(text)}</p>")
        self.md += [f"**Methods.** {text}", ""]

    def accounting(self, lines: list[str]) -> None:
        self.h.append("<p class='accounting'><strong>Rows used and left out.</strong></p><ul class='accounting'>"
                      + "".join(f"<li>{html.escape(a)}</li>" for a in lines) + "</ul>")
        self.md += ["**Rows used and left out.**", ""] + [f"- {a}" for a in lines] + [""]

    def table(self, name: str, caption: str, df: pd.DataFrame, *, formatted: bool = False) -> None:
        stem = self.folder.table(df, name)
        shown = df if formatted else format_frame(df)  # once: the HTML and the Markdown print the same strings
        self.h.append(_table_html(shown, caption))
        self.md += [f"*{caption}* (tables/{stem}.csv)", "", markdown_table(shown), ""]

    def figure(self, name: str, caption: str, fig) -> None:
        stem = self.folder.figure(fig, name, width=self.info.figure_width, dpi=self.info.figure_dpi)
        self.h.append(f"<figure><img src='{_img(self.folder, stem)}' alt='{html.escape(caption)}'>"
                      f"<figcaption>{html.escape(caption)} (figures/{stem}.png)</figcaption></figure>")
        self.md += [f"![{caption}](figures/{stem}.png)", ""]


def _section(page: _Page, s) -> None:
    page.h.append(f"<section id='{s.key}'><h2>{html.escape(s.title)}</h2>")
    page.md += [f"## {s.title}", ""]
    if s.skipped:
        page.para(f"Not run: {s.skipped}.", "skipped")
        page.h.append("</section>")
        return
    for name, df, index in s.files:
        page.folder.table(df, name, index=index)
    # every result speaks for itself: methods(), accounting(), to_apa(), plot(ax=...)
    methods = [s.methods] if s.methods else []
    accounting = list(s.accounting)
    for item in s.results:
        r = item.result
        methods.append(r.methods())
        accounting += [f"{item.caption}: {line}" for line in _accounting_lines(r.accounting())]
    for m in filter(None, methods):
        page.methods(m)
    for t in s.text:
        page.para(t)
    if accounting:
        page.accounting(accounting)
    if s.pre:
        page.h.append(f"<pre>{html.escape(s.pre)}</pre>")
        page.md += ["```", s.pre, "```", ""]
    for item in s.results:
        page.table(item.name, item.caption, item.result.to_apa(), formatted=True)
    for name, caption, df in s.tables:
        page.table(name, caption, df)
    for item in s.results:
        if item.figure:
            page.figure(item.figure, item.figure_caption or item.caption, item.result.plot(ax=None, **item.plot_kwargs))
    for name, caption, fig in s.figures:
        page.figure(name, caption, fig)
    page.h.append("</section>")


def write_report(folder, sections: list, info: ReportInfo, caught=()) -> None:
    """Write every section's tables and figures into ``folder`` (a :class:`~alliance_stats._output.ResultsFolder`)
    and ``report.html`` (self-contained) and ``report.md`` beside them.

    ``sections`` are :class:`~alliance_stats.study.section.Section` objects; ``caught`` the
    warnings recorded during the run (UserWarnings are listed).
    """
    from ._output import sha256

    warnings_caught = sorted({f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, UserWarning)})
    title = info.title
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    versions = info.versions
    intro = (f"Made by alliance-stats {versions.set_index('package').at['alliance-stats', 'version']} on {now} "
             f"(Python {platform.python_version()}). Seed {info.seed} (used for the random subset of patient lines drawn "
             "in the trajectory figures and the bootstrap resamples of the agreement section)."
             + (f" Configuration: {info.config_name}." if info.config_name else ""))
    page = _Page(folder, info)
    h, md = page.h, page.md
    h += [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
          f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>", f"<p class='meta'>{html.escape(intro)}</p>"]
    h.append("<nav><ol>" + "".join(f"<li><a href='#{s.key}'>{html.escape(s.title)}</a>"
                                   + (" (not run)" if s.skipped else "") + "</li>" for s in sections)
             + "<li><a href='#reproducibility'>Reproducibility</a></li><li><a href='#warnings'>Warnings</a></li></ol></nav>")
    md += [f"# {title}", "", intro, ""]
    for s in sections:
        _section(page, s)
    inputs = pd.DataFrame(
        [{"input": what, "file": p.name, "bytes": p.stat().st_size, "sha256": sha256(p)} for what, p in info.inputs]
    )
    h.append("<section id='reproducibility'><h2>Reproducibility</h2><p>Input files and their SHA-256 checksums:</p>")
    h.append(_table_html(format_frame(inputs), "Inputs"))
    h.append(_table_html(format_frame(versions), "Package versions"))
    md += ["## Reproducibility", "", inputs.to_markdown(index=False), "", versions.to_markdown(index=False), ""]
    if info.config_name is not None:
        h.append(f"<p>Configuration ({html.escape(info.config_name)}):</p><pre>{html.escape(info.config_text)}</pre>")
        md += [f"Configuration ({info.config_name}):", "", "```toml", info.config_text.rstrip(), "```", ""]
    h.append("</section><section id='warnings'><h2>Warnings</h2>")
    md += ["## Warnings", ""]
    if warnings_caught:
        h.append("<ul>" + "".join(f"<li class='warn'>{html.escape(w)}</li>" for w in warnings_caught) + "</ul>")
        md += [f"- {w}" for w in warnings_caught]
    else:
        h.append("<p>None.</p>")
        md += ["None."]
    h.append("</section></body></html>")
    folder.path("report.html").write_text("\n".join(h), encoding="utf-8")
    folder.path("report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
