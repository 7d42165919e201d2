"""The study report: one self-contained HTML file (figures embedded) and a Markdown twin."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import platform

import pandas as pd

from ._format import format_frame
from .tables import markdown_table, numeric_columns

__all__ = ["write_report"]

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
nav ol{columns:2;font-size:.92em}.warn{color:#8a4b00}
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


def _img(study, name: str) -> str:
    data = study.o.path("figures", f"{name}.png").read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def write_report(study, warnings_caught: list, versions: pd.DataFrame) -> None:
    """Write ``report.html`` (self-contained) and ``report.md`` into the study's output folder."""
    from ._output import sha256

    cfg = study.cfg
    title = cfg.get("study", "title", "alliance-stats study report")
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    inputs = pd.DataFrame(
        [{"input": what, "file": p.name, "bytes": p.stat().st_size, "sha256": sha256(p)} for what, p in study.inputs]
    )
    intro = (f"Made by alliance-stats {versions.set_index('package').at['alliance-stats', 'version']} on {now} "
             f"(Python {platform.python_version()}). Seed {study.seed} (used for the random subset of patient lines drawn "
             "in the trajectory figures; no estimate depends on it)."
             + (f" Configuration: {cfg.source.name}." if cfg.source else ""))
    h = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
         f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>", f"<p class='meta'>{html.escape(intro)}</p>"]
    h.append("<nav><ol>" + "".join(f"<li><a href='#{s.key}'>{html.escape(s.title)}</a></li>" for s in study.sections)
             + "<li><a href='#reproducibility'>Reproducibility</a></li><li><a href='#warnings'>Warnings</a></li></ol></nav>")
    md = [f"# {title}", "", intro, ""]
    for s in study.sections:
        h.append(f"<section id='{s.key}'><h2>{html.escape(s.title)}</h2>")
        md += [f"## {s.title}", ""]
        if s.methods:
            h.append(f"<p class='methods'><strong>Methods.</strong> {html.escape(s.methods)}</p>")
            md += [f"**Methods.** {s.methods}", ""]
        for t in s.text:
            h.append(f"<p>{html.escape(t)}</p>")
            md += [t, ""]
        if s.accounting:
            h.append("<p class='accounting'><strong>Rows used and left out.</strong></p><ul class='accounting'>"
                     + "".join(f"<li>{html.escape(a)}</li>" for a in s.accounting) + "</ul>")
            md += ["**Rows used and left out.**", ""] + [f"- {a}" for a in s.accounting] + [""]
        if s.pre:
            h.append(f"<pre>{html.escape(s.pre)}</pre>")
            md += ["```", s.pre, "```", ""]
        for name, caption, df in s.tables:
            shown = format_frame(df)  # once: the HTML and the Markdown print the same strings
            h.append(_table_html(shown, caption))
            md += [f"*{caption}* (tables/{name}.csv)", "", markdown_table(shown), ""]
        for name, caption in s.figures:
            h.append(f"<figure><img src='{_img(study, name)}' alt='{html.escape(caption)}'>"
                     f"<figcaption>{html.escape(caption)} (figures/{name}.png, .pdf)</figcaption></figure>")
            md += [f"![{caption}](figures/{name}.png)", ""]
        h.append("</section>")
    h.append("<section id='reproducibility'><h2>Reproducibility</h2><p>Input files and their SHA-256 checksums:</p>")
    h.append(_table_html(format_frame(inputs), "Inputs"))
    h.append(_table_html(format_frame(versions), "Package versions"))
    md += ["## Reproducibility", "", inputs.to_markdown(index=False), "", versions.to_markdown(index=False), ""]
    if cfg.source is not None:
        h.append(f"<p>Configuration ({html.escape(cfg.source.name)}):</p><pre>{html.escape(cfg.text)}</pre>")
        md += [f"Configuration ({cfg.source.name}):", "", "```toml", cfg.text.rstrip(), "```", ""]
    h.append("</section><section id='warnings'><h2>Warnings</h2>")
    md += ["## Warnings", ""]
    if warnings_caught:
        h.append("<ul>" + "".join(f"<li class='warn'>{html.escape(w)}</li>" for w in warnings_caught) + "</ul>")
        md += [f"- {w}" for w in warnings_caught]
    else:
        h.append("<p>None.</p>")
        md += ["None."]
    h.append("</section></body></html>")
    study.o.path("report.html").write_text("\n".join(h), encoding="utf-8")
    study.o.path("report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
