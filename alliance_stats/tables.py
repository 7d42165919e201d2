"""Tables for papers: write a result table as CSV, Markdown, LaTeX, HTML or Word."""

from __future__ import annotations

import html as _html
from pathlib import Path

import pandas as pd

from .exceptions import ArgumentError, OptionError, OutputPathError

__all__ = ["export_table"]

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def _cell(v, floatfmt: str) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, float):
        return format(v, floatfmt)
    return str(v)


def _latex_escape(s: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in s)


def _frame(df: pd.DataFrame, index: bool) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        to_apa = getattr(df, "to_apa", None)
        if to_apa is None:
            raise ArgumentError(f"export_table() takes a DataFrame or a result with .to_apa(), got {type(df).__name__}")
        df = to_apa()
    return df.reset_index() if index else df


def _to_latex(df: pd.DataFrame, caption: str | None, note: str | None, floatfmt: str) -> str:
    align = "l" + "r" * (df.shape[1] - 1)
    lines = [r"\begin{table}[ht]", r"\centering"]
    if caption:
        lines.append(r"\caption{" + _latex_escape(caption) + "}")
    lines += [r"\begin{tabular}{" + align + "}", r"\toprule"]
    lines.append(" & ".join(_latex_escape(str(c)) for c in df.columns) + r" \\")
    lines.append(r"\midrule")
    for row in df.itertuples(index=False):
        lines.append(" & ".join(_latex_escape(_cell(v, floatfmt)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if note:
        lines.append(r"\par\smallskip{\footnotesize\textit{Note.} " + _latex_escape(note) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _to_html(df: pd.DataFrame, caption: str | None, note: str | None, floatfmt: str) -> str:
    head = "".join(f"<th>{_html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_html.escape(_cell(v, floatfmt))}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    cap = f"<caption>{_html.escape(caption)}</caption>" if caption else ""
    foot = f'<p class="table-note"><em>Note.</em> {_html.escape(note)}</p>' if note else ""
    return f'<table class="apa">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{foot}\n'


def _to_docx(df: pd.DataFrame, path: Path, caption: str | None, note: str | None, floatfmt: str) -> None:
    try:
        import docx
        from docx.shared import Pt
    except ImportError as exc:  # pragma: no cover - python-docx is a dependency
        raise OutputPathError(f"{path.name!r} cannot be written: writing .docx needs python-docx (pip install "
                              "python-docx); write .html or .md instead") from exc
    doc = docx.Document()
    if caption:
        p = doc.add_paragraph()
        p.add_run(caption).italic = True
    t = doc.add_table(rows=1, cols=df.shape[1])
    for j, c in enumerate(df.columns):
        cell = t.rows[0].cells[j]
        cell.text = str(c)
        cell.paragraphs[0].runs[0].bold = True
    for row in df.itertuples(index=False):
        cells = t.add_row().cells
        for j, v in enumerate(row):
            cells[j].text = _cell(v, floatfmt)
    for r in t.rows:
        for cell in r.cells:
            for para in cell.paragraphs:
                for run in para.runs:
                    run.font.size = Pt(10)
    if note:
        p = doc.add_paragraph()
        p.add_run("Note. ").italic = True
        p.add_run(note)
    doc.save(str(path))


def export_table(df, path, *, index: bool = False, caption: str | None = None, note: str | None = None,
                 floatfmt: str = ".2f") -> Path:
    """Write a table in the format its file extension names.

    Parameters
    ----------
    df : DataFrame or result
        The table, e.g. ``result.to_apa()``; a result object with ``.to_apa()`` is converted.
    path : str or Path
        ``.csv``, ``.md``, ``.tex`` (booktabs tabular in a table float), ``.html`` or ``.docx``
        (a Word table, via python-docx).
    index : bool
        Write the index as the first column.
    caption, note : str, optional
        Table title and an APA-style note under the table (not written to .csv).
    floatfmt : str
        Format of float cells in .md, .tex, .html and .docx (APA tables from ``to_apa()`` are
        already text). CSV keeps full precision.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import alliance_stats as als, tempfile, pathlib
    >>> res = als.meta_analysis(als.load_sample("meta").head(8), r="r", n="n", study="study")
    >>> out = als.export_table(res.to_apa(), pathlib.Path(tempfile.mkdtemp()) / "meta.md")
    >>> out.read_text().splitlines()[0].startswith("| Term")
    True
    """
    path = Path(path)
    ext = path.suffix.lower()
    writers = (".csv", ".md", ".tex", ".html", ".htm", ".docx")
    if ext not in writers:
        raise OptionError("path", str(path.name), writers, hint="the file extension chooses the format")
    df = _frame(df, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".csv":
        df.to_csv(path, index=False)
    elif ext == ".md":
        text = df.to_markdown(index=False, floatfmt=floatfmt)
        if caption:
            text = f"**{caption}**\n\n{text}"
        if note:
            text += f"\n\n*Note.* {note}"
        path.write_text(text + "\n")
    elif ext == ".tex":
        path.write_text(_to_latex(df, caption, note, floatfmt))
    elif ext in (".html", ".htm"):
        path.write_text(_to_html(df, caption, note, floatfmt))
    else:
        _to_docx(df, path, caption, note, floatfmt)
    return path
