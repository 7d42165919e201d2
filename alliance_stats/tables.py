"""Tables for papers: write a result table as CSV, Markdown, LaTeX, HTML or Word.

Numbers are formatted once (:func:`alliance_stats._format.format_frame`: cells that are text
already, as in every ``to_apa()`` table, are kept exactly) and every format prints those same
strings. The Word table is laid out in APA style (see :func:`export_table`).
"""

from __future__ import annotations

import html as _html
import os
import re
from functools import lru_cache
from pathlib import Path

import pandas as pd

from ._format import format_frame
from .exceptions import ArgumentError, OptionError, OutputPathError

__all__ = ["export_table"]

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
    ">": r"\textgreater{}",
}

# a cell that reads as a number: 0.12, -.45, < .001, 48.1, 1.2e-07, [a, b], .64 [.59, .69], inf, NA
_NUM = r"(?:[<>=]\s?)?-?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?%?|-?inf|NA"
_NUMERIC_CELL = re.compile(rf"^\s*(?:{_NUM})?\s*(?:\[\s*(?:{_NUM}),\s*(?:{_NUM})\s*\])?\s*$")

# statistical symbols printed in italics in the Word header (APA 7, section 6.45)
_ITALIC_HEADERS = {"b", "B", "SE", "t", "df", "p", "z", "F", "n", "N", "M", "SD", "r", "k", "Q", "R", "d", "g"}


def _latex_escape(s: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in s)


def _frame(df, index: bool) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        to_apa = getattr(df, "to_apa", None)
        if to_apa is None:
            raise ArgumentError(f"export_table() takes a DataFrame or a result with .to_apa(), got {type(df).__name__}")
        df = to_apa()
    return df.reset_index() if index else df


def numeric_columns(df: pd.DataFrame) -> list:
    """For each column of a formatted (all-text) table: True when every non-empty cell reads as a
    number, an interval or a p value (such columns are right-aligned)."""
    out = []
    for j in range(df.shape[1]):
        cells = [str(v) for v in df.iloc[:, j] if str(v).strip() != ""]
        out.append(bool(cells) and all(_NUMERIC_CELL.match(c) for c in cells))
    return out


def markdown_table(df: pd.DataFrame) -> str:
    """A pipe table of an already formatted table: the cells printed exactly as they are
    (no re-parsing of numbers), numeric columns right-aligned."""
    align = ["right" if n else "left" for n in numeric_columns(df)]
    if df.shape[1] == 0:
        return ""
    return df.to_markdown(index=False, disable_numparse=True, colalign=align)


def _split_caption(caption: str | None, number) -> tuple:
    """(number, title): 'Table 2. Alliance effects' -> ('2', 'Alliance effects')."""
    if number is not None:
        return str(number), caption or ""
    if not caption:
        return None, ""
    m = re.match(r"^\s*Table\s+([0-9A-Za-z.]*[0-9A-Za-z])\s*[.:]?\s*(.*)$", caption)
    if m:
        return m.group(1), m.group(2).strip()
    return None, caption


def _to_latex(df: pd.DataFrame, title: str, note: str | None) -> str:
    num = numeric_columns(df)
    align = "".join("r" if n else "l" for n in num)
    lines = [r"\begin{table}[ht]", r"\centering"]
    if title:
        lines.append(r"\caption{" + _latex_escape(title) + "}")
    lines += [r"\begin{tabular}{" + align + "}", r"\toprule"]
    lines.append(" & ".join(_latex_escape(str(c)) for c in df.columns) + r" \\")
    lines.append(r"\midrule")
    for row in df.itertuples(index=False):
        lines.append(" & ".join(_latex_escape(str(v)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if note:
        lines.append(r"\par\smallskip{\footnotesize\textit{Note.} " + _latex_escape(note) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _to_html(df: pd.DataFrame, number, title: str, note: str | None) -> str:
    num = numeric_columns(df)
    st = ' style="text-align:right"'
    head = "".join(f"<th{st if n else ''}>{_html.escape(str(c))}</th>" for c, n in zip(df.columns, num))
    body = "".join(
        "<tr>" + "".join(f"<td{st if n else ''}>{_html.escape(str(v))}</td>" for v, n in zip(row, num)) + "</tr>"
        for row in df.itertuples(index=False)
    )
    cap = ""
    if number is not None or title:
        parts = ([f"<strong>Table {_html.escape(number)}</strong>"] if number is not None else []) + (
            [f"<em>{_html.escape(title)}</em>"] if title else [])
        cap = f"<caption>{'<br>'.join(parts)}</caption>"
    foot = f'<p class="table-note"><em>Note.</em> {_html.escape(note)}</p>' if note else ""
    return f'<table class="apa">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{foot}\n'


# ----------------------------------------------------------------------------------------
# Word

FONT = "Times New Roman"
#: Table text size tried first (pt); smaller sizes and a landscape page are tried when the
#: table does not fit the page's text width.
DOCX_SIZES = (10.0, 9.0, 8.0)
CELL_MARGIN_PT = 5.4   # left and right padding inside a cell (0.075 in, Word's default)
RULE_EIGHTHS = 6       # rule weight in eighths of a point (0.75 pt)


@lru_cache(maxsize=4)
def _afm_widths(name: str) -> dict:
    """Glyph advance widths (1/1000 em) of a Times font from the AFM files matplotlib ships
    (Times New Roman and its metric twin Liberation Serif have the same widths)."""
    import matplotlib

    path = os.path.join(matplotlib.get_data_path(), "fonts", "afm", name)
    widths = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            if line.startswith("C "):
                fields = dict(p.strip().split(" ", 1) for p in line.split(";") if p.strip() and " " in p.strip())
                code = int(fields["C"])
                if code >= 0:
                    widths[chr(code)] = float(fields["WX"])
    return widths


def text_width_pt(text: str, size: float, *, bold: bool = False, italic: bool = False) -> float:
    """Width of ``text`` set in Times at ``size`` points (unknown glyphs count as a digit plus)."""
    name = {(False, False): "ptmr8a.afm", (True, False): "ptmb8a.afm", (False, True): "ptmri8a.afm",
            (True, True): "ptmbi8a.afm"}[(bold, italic)]
    w = _afm_widths(name)
    return sum(w.get(ch, 600.0) for ch in str(text).replace("\u2212", "-")) * size / 1000.0


def decimal_tail_pt(text: str, size: float) -> float:
    """Width of ``text`` from its first decimal point to the end (0 without one): what must
    stand right of the column's decimal line."""
    i = text.find(".")
    return 0.0 if i < 0 else text_width_pt(text[i:], size)


def column_widths_pt(df: pd.DataFrame, size: float) -> tuple:
    """(natural, minimum) width of each column in points: the longest cell on one line, and the
    longest word (what the column needs so that no word is broken), both with cell padding.
    A numeric column is as wide as its widest part left of the decimal points plus its widest
    part right of them (its numbers are aligned on the decimal point and never wrap)."""
    nat, mins = [], []
    pad = 2 * CELL_MARGIN_PT + 1.0
    num = numeric_columns(df)
    for j, col in enumerate(df.columns):
        cells = [str(v) for v in df.iloc[:, j]]
        italic = str(col) in _ITALIC_HEADERS
        head_w = text_width_pt(str(col), size, italic=italic)
        head_word = max((text_width_pt(w, size, italic=italic) for w in str(col).split()), default=0.0)
        if num[j]:
            tails = [decimal_tail_pt(c, size) for c in cells]
            heads = [text_width_pt(c, size) - t for c, t in zip(cells, tails)]
            cell_w = word_w = max(heads, default=0.0) + max(tails, default=0.0)
        else:  # text may wrap between words
            cell_w = max((text_width_pt(c, size) for c in cells), default=0.0)
            word_w = max((text_width_pt(w, size) for c in cells for w in c.split()), default=0.0)
        nat.append(max(head_w, cell_w) + pad)
        mins.append(max(head_word, word_w) + pad)
    return nat, mins


def _fit(nat: list, mins: list, avail: float) -> list | None:
    if sum(nat) <= avail:
        return list(nat)
    if sum(mins) > avail:
        return None
    slack = [n - m for n, m in zip(nat, mins)]
    extra = (avail - sum(mins)) / sum(slack)
    return [m + s * extra for m, s in zip(mins, slack)]


def _el(tag: str, **attrs):
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    e = OxmlElement(tag)
    for k, v in attrs.items():
        e.set(qn(f"w:{k}"), str(v))
    return e


def _insert_in_order(parent, child, order: list) -> None:
    """Insert ``child`` into ``parent`` before the first sibling that the schema puts after it."""
    tag = child.tag
    for old in parent.findall(tag):
        parent.remove(old)
    after = order[order.index(tag.split("}")[1]) + 1:]
    for e in parent:
        if e.tag.split("}")[1] in after:
            e.addprevious(child)
            return
    parent.append(child)


_TBLPR_ORDER = ["tblStyle", "tblpPr", "tblOverlap", "bidiVisual", "tblStyleRowBandSize", "tblStyleColBandSize", "tblW", "jc",
                "tblCellSpacing", "tblInd", "tblBorders", "shd", "tblLayout", "tblCellMar", "tblLook", "tblCaption",
                "tblDescription"]
_TCPR_ORDER = ["cnfStyle", "tcW", "gridSpan", "hMerge", "vMerge", "tcBorders", "shd", "noWrap", "tcMar", "textDirection",
               "tcFitText", "vAlign", "hideMark"]
_TRPR_ORDER = ["cnfStyle", "divId", "gridBefore", "gridAfter", "wBefore", "wAfter", "cantSplit", "trHeight", "tblHeader",
               "tblCellSpacing", "jc", "hidden"]


def _borders(tag: str, **sides) -> object:
    """A ``w:tblBorders``/``w:tcBorders`` element: each side 'single' (a rule) or 'nil'."""
    b = _el(tag)
    for side in ("top", "left", "bottom", "right", "insideH", "insideV"):
        if side in sides:
            kind = sides[side]
            attrs = {"val": "single", "sz": RULE_EIGHTHS, "space": 0, "color": "000000"} if kind == "single" else {"val": "nil"}
            b.append(_el(f"w:{side}", **attrs))
    return b


def _para_format(p, size: float, align=None, *, space_after: float = 0.0) -> None:
    from docx.shared import Pt

    pf = p.paragraph_format
    pf.space_before = Pt(0)
    pf.space_after = Pt(space_after)
    pf.line_spacing = 1.0
    if align is not None:
        pf.alignment = align
    for r in p.runs:
        r.font.size = Pt(size)
        r.font.name = FONT


def _to_docx(df: pd.DataFrame, path: Path, number, title: str, note: str | None) -> None:
    try:
        import docx
        from docx.enum.section import WD_ORIENT
        from docx.enum.table import WD_TABLE_ALIGNMENT
        from docx.enum.text import WD_ALIGN_PARAGRAPH
        from docx.oxml.ns import qn
        from docx.shared import Inches, Pt
    except ImportError as exc:  # pragma: no cover - python-docx is a dependency
        raise OutputPathError(f"{path.name!r} cannot be written: writing .docx needs python-docx (pip install "
                              "python-docx); write .html or .md instead") from exc
    doc = docx.Document()
    normal = doc.styles["Normal"]
    normal.font.name = FONT
    normal.font.size = Pt(12)
    rfonts = normal.element.get_or_add_rPr().get_or_add_rFonts()
    for a in ("w:ascii", "w:hAnsi", "w:cs", "w:eastAsia"):
        rfonts.set(qn(a), FONT)
    sec = doc.sections[0]
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(sec, side, Inches(1))  # APA 7 (section 2.22): 1-in margins

    # the widest layout that fits: portrait, then landscape, at the table sizes tried in turn
    widths, size = None, DOCX_SIZES[-1]
    for landscape in (False, True):
        if landscape:
            sec.orientation = WD_ORIENT.LANDSCAPE
            sec.page_width, sec.page_height = sec.page_height, sec.page_width
        avail = (sec.page_width - sec.left_margin - sec.right_margin) / 12700.0  # EMU -> pt
        for s in DOCX_SIZES:
            nat, mins = column_widths_pt(df, s)
            widths = _fit(nat, mins, avail)
            if widths is not None:
                size = s
                break
        if widths is not None:
            break
    if widths is None:  # wider than a landscape page even at the smallest size: keep every word whole
        widths = mins

    if number is not None:
        p = doc.add_paragraph()
        p.add_run(f"Table {number}").bold = True
        _para_format(p, 12, space_after=12 if not title else 0)
    if title:
        p = doc.add_paragraph()
        p.add_run(title).italic = True
        _para_format(p, 12, space_after=6)

    num = numeric_columns(df)
    # numbers are right-aligned, each indented from the right by what its column's longest
    # decimal tail has more than its own, so that the decimal points line up
    tail = {j: [decimal_tail_pt(str(v), size) for v in df.iloc[:, j]] for j in range(df.shape[1]) if num[j]}
    t = doc.add_table(rows=1 + len(df), cols=df.shape[1])
    t.autofit = False  # w:tblLayout type="fixed": Word keeps the widths below
    t.alignment = WD_TABLE_ALIGNMENT.LEFT
    tblPr = t._tbl.tblPr
    _insert_in_order(tblPr, _el("w:tblW", w=int(round(sum(widths) * 20)), type="dxa"), _TBLPR_ORDER)
    _insert_in_order(tblPr, _borders("w:tblBorders", top="nil", left="nil", bottom="nil", right="nil", insideH="nil",
                                     insideV="nil"), _TBLPR_ORDER)
    mar = _el("w:tblCellMar")
    for side in ("left", "right"):
        mar.append(_el(f"w:{side}", w=int(round(CELL_MARGIN_PT * 20)), type="dxa"))
    _insert_in_order(tblPr, mar, _TBLPR_ORDER)
    for j, w in enumerate(widths):
        t.columns[j].width = Pt(w)

    last = len(t.rows) - 1
    for i, row in enumerate(t.rows):
        if i == 0:
            trPr = row._tr.get_or_add_trPr()
            _insert_in_order(trPr, _el("w:tblHeader"), _TRPR_ORDER)  # repeated on each page
        trPr = row._tr.get_or_add_trPr()
        _insert_in_order(trPr, _el("w:cantSplit"), _TRPR_ORDER)
        for j, cell in enumerate(row.cells):
            cell.width = Pt(widths[j])
            text = str(df.columns[j]) if i == 0 else str(df.iat[i - 1, j])
            p = cell.paragraphs[0]
            run = p.add_run(text)
            if i == 0 and text in _ITALIC_HEADERS:
                run.italic = True
            if i == 0:
                align = WD_ALIGN_PARAGRAPH.CENTER if num[j] else WD_ALIGN_PARAGRAPH.LEFT
            else:
                align = WD_ALIGN_PARAGRAPH.RIGHT if num[j] else WD_ALIGN_PARAGRAPH.LEFT
            _para_format(p, size, align)
            if i > 0 and num[j]:
                p.paragraph_format.right_indent = Pt(round(max(tail[j]) - tail[j][i - 1], 2))
            sides = {"left": "nil", "right": "nil"}
            if i == 0:
                sides.update(top="single", bottom="single")
            if i == last:
                sides["bottom"] = "single"
            tcPr = cell._tc.get_or_add_tcPr()
            _insert_in_order(tcPr, _borders("w:tcBorders", **sides), _TCPR_ORDER)
            _insert_in_order(tcPr, _el("w:vAlign", val="bottom" if i == 0 else "top"), _TCPR_ORDER)
    if note:
        p = doc.add_paragraph()
        p.add_run("Note.").italic = True
        p.add_run(" " + note)
        _para_format(p, size)
        p.paragraph_format.space_before = Pt(6)
    doc.save(str(path))


def export_table(df, path, *, index: bool = False, caption: str | None = None, note: str | None = None,
                 floatfmt: str | None = None, number=None, bounded=None) -> Path:
    """Write a table in the format its file extension names, every format with the same text.

    Numbers are formatted once in APA style (:mod:`alliance_stats._format`: two decimals, more
    for small values so that none prints as 0.00; p as ``< .001``/``.023``; no leading zero for
    r, alpha, proportions and p; df whole or with one decimal; percentages with one decimal;
    booleans as yes/no). Cells that are already text, as in every ``to_apa()`` table, are
    written exactly as they are.

    Parameters
    ----------
    df : DataFrame or result
        The table, e.g. ``result.to_apa()``; a result object with ``.to_apa()`` is converted.
    path : str or Path
        ``.csv``, ``.md``, ``.tex`` (booktabs tabular in a table float), ``.html`` or ``.docx``
        (an APA-style Word table, via python-docx: rules above and below the header and under
        the last row and no others, columns as wide as their content so that no word breaks,
        numbers aligned on the decimal point, the table number in bold and the title in italics above it,
        the note below; a table too wide for a portrait page is set smaller and then on a
        landscape page).
    index : bool
        Write the index as the first column.
    caption : str, optional
        The table title; ``"Table 2. Alliance effects on PHQ-9"`` gives the number ``2`` and the
        title ``Alliance effects on PHQ-9`` (or pass ``number``). Not written to .csv.
    note : str, optional
        An APA-style note under the table ("*Note.* ..."); not written to .csv.
    floatfmt : str, optional
        A format spec (``".3f"``) for every non-integer number instead of the APA rules.
    number : int or str, optional
        The table number (``Table 2`` in bold above the title in .md, .html and .docx; LaTeX
        numbers its tables itself).
    bounded : iterable of str, optional
        Columns whose values cannot exceed 1 (printed without the leading zero); by default
        recognised by name (r, alpha, omega, ICC, power, coverage, proportions, p).

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
    df = format_frame(_frame(df, index), bounded=bounded, floatfmt=floatfmt)
    df.columns = [str(c) for c in df.columns]
    num, title = _split_caption(caption, number)
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".csv":
        df.to_csv(path, index=False)
    elif ext == ".md":
        text = markdown_table(df)
        head = ([f"**Table {num}**"] if num is not None else []) + ([f"*{title}*"] if title else [])
        if head:
            text = "\n\n".join(head) + "\n\n" + text
        if note:
            text += f"\n\n*Note.* {note}"
        path.write_text(text + "\n", encoding="utf-8")
    elif ext == ".tex":
        path.write_text(_to_latex(df, title, note), encoding="utf-8")
    elif ext in (".html", ".htm"):
        path.write_text(_to_html(df, num, title, note), encoding="utf-8")
    else:
        _to_docx(df, path, num, title, note)
    return path
