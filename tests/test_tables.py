import numpy as np
import pandas as pd
import pytest

import alliance_stats as als


@pytest.fixture
def table():
    return pd.DataFrame({"Term": ["a_b", "x & y"], "b": ["0.12", "-1.50"], "p": ["< .001", ".034"], "value": [0.1234, np.nan]})


@pytest.mark.parametrize("ext", [".csv", ".md", ".tex", ".html", ".docx"])
def test_export_table_every_format(tmp_path, table, ext):
    path = als.export_table(table, tmp_path / f"t{ext}", caption="Table 1. Fixed effects", note="Estimates from REML.")
    assert path.is_file() and path.suffix == ext
    if ext == ".csv":
        back = pd.read_csv(path, dtype=str, keep_default_na=False)
        assert back["Term"].tolist() == ["a_b", "x & y"] and back["value"].tolist() == ["0.12", ""]
    elif ext == ".md":
        text = path.read_text()
        assert text.startswith("**Table 1**\n\n*Fixed effects*\n\n| Term")
        assert "| a_b" in text and "0.12" in text and "*Note.* Estimates" in text
    elif ext == ".tex":
        text = path.read_text()
        assert r"a\_b" in text and r"x \& y" in text and r"\textless{} .001" in text and r"\toprule" in text
        assert text.count(r"\\") == 3  # header + 2 rows
        assert r"\caption{Fixed effects}" in text and r"\begin{tabular}{lrrr}" in text
    elif ext == ".html":
        text = path.read_text()
        assert "<caption><strong>Table 1</strong><br><em>Fixed effects</em></caption>" in text
        assert "x &amp; y" in text and "&lt; .001" in text
        assert text.count("<tr>") == 3
    else:
        import docx

        doc = docx.Document(str(path))
        t = doc.tables[0]
        assert [c.text for c in t.rows[0].cells] == ["Term", "b", "p", "value"]
        assert [c.text for c in t.rows[1].cells] == ["a_b", "0.12", "< .001", "0.12"]
        assert t.rows[2].cells[3].text == ""
        assert [p.text for p in doc.paragraphs] == ["Table 1", "Fixed effects", "Note. Estimates from REML."]


def _cells(path):
    """The body cells of a written table, as text, whatever the format."""
    import csv
    import html as h
    import re

    ext = path.suffix
    text = path.read_text(encoding="utf-8") if ext != ".docx" else ""
    if ext == ".csv":
        return [row for row in csv.reader(text.splitlines())][1:]
    if ext == ".md":
        rows = [ln for ln in text.splitlines() if ln.startswith("|")][2:]
        return [[c.strip() for c in ln.strip("|").split("|")] for ln in rows]
    if ext == ".html":
        body = text.split("<tbody>")[1].split("</tbody>")[0]
        return [[h.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)] for r in body.split("</tr>") if "<td" in r]
    if ext == ".tex":
        body = text.split(r"\midrule")[1].split(r"\bottomrule")[0]
        unesc = {r"\textless{}": "<", r"\textgreater{}": ">", r"\_": "_", r"\%": "%", r"\&": "&"}
        rows = []
        for ln in body.strip().splitlines():
            for k, v in unesc.items():
                ln = ln.replace(k, v)
            rows.append([c.strip() for c in ln.removesuffix(r"\\").split(" & ")])
        return rows
    import docx

    return [[c.text for c in r.cells] for r in docx.Document(str(path)).tables[0].rows[1:]]


def test_every_format_prints_the_same_strings(tmp_path):
    # the cells: a real effect of 0.0034, a CI of [-0.0130, -0.0021], df 1444.4, p < .001,
    # a percentage of 48.125, a boolean
    apa = pd.DataFrame({"Term": ["within", "between"], "b": ["0.0034", "-0.04"], "df": ["1444.4", "18"],
                        "p": ["< .001", ".032"], "95% CI": ["[-0.0130, -0.0021]", "[-0.16, -0.01]"]})
    numeric = pd.DataFrame({"item": ["pqs65", "pqs24"], "r": [0.8091, -0.0042], "percent": [48.125, 3.125],
                            "p": [1e-9, 0.0234], "significant": [True, False], "df": [1444.4, 18.0],
                            "b": [0.00341, -1.5]})
    expected = {
        "apa": apa.to_numpy().tolist(),  # text cells are written exactly as they are
        "numeric": [["pqs65", ".81", "48.1", "< .001", "yes", "1444.4", "0.0034"],
                    ["pqs24", "-.0042", "3.1", ".023", "no", "18", "-1.50"]],
    }
    for name, df in (("apa", apa), ("numeric", numeric)):
        for ext in (".csv", ".md", ".tex", ".html", ".docx"):
            path = als.export_table(df, tmp_path / f"{name}{ext}")
            assert _cells(path) == expected[name], (name, ext)
    md = (tmp_path / "apa.md").read_text()
    assert "1444.400" not in md and "0.000" not in md


def test_results_folder_markdown_prints_apa_numbers(tmp_path):
    from alliance_stats._output import ResultsFolder

    o = ResultsFolder(tmp_path / "out")
    o.start()
    stats = pd.DataFrame({"category": ["recovered", "improved"], "patients": [77, 36], "percent": [48.125, 22.5],
                          "p": [0.0, 0.0312], "significant": [True, False]})
    apa = pd.DataFrame({"Level": ["therapist"], "df": ["18"], "b": ["-0.0040"]})
    o.table(stats, "reliable_change")
    o.table(apa, "effects_apa")
    out = o.commit()
    md = (out / "tables" / "reliable_change.md").read_text()
    assert "| recovered  |         77 |      48.1 | < .001 | yes           |" in md
    assert "48.125" not in md and "0.000" not in md and "True" not in md
    assert "|   18 | -0.0040 |" in (out / "tables" / "effects_apa.md").read_text()
    # the CSV keeps the numbers for reuse
    assert pd.read_csv(out / "tables" / "reliable_change.csv")["percent"].tolist() == [48.125, 22.5]


def test_export_table_takes_a_result_and_refuses_unknown_extension(tmp_path):
    res = als.meta_analysis(als.load_sample("meta").head(8), r="r", n="n", study="study")
    path = als.export_table(res, tmp_path / "meta.csv")
    assert pd.read_csv(path).columns.tolist() == res.to_apa().columns.tolist()
    with pytest.raises(als.OptionError, match=r"path='meta.xlsx' is not a valid value; allowed: '.csv'.*'\.docx'. the file extension"):
        als.export_table(res, tmp_path / "meta.xlsx")
    with pytest.raises(als.ArgumentError, match="DataFrame or a result"):
        als.export_table([1, 2], tmp_path / "x.csv")


def test_to_apa_on_every_result(sample_sessions):
    df = sample_sessions
    ep = als.detect_ruptures(df, "wai_sr_total")
    ro = als.rupture_outcome(df, ep, outcome="phq9_total")
    apa = ro.to_apa()
    e = ro.effects.iloc[0]
    half = 1.9754875 * e["se"]  # t(.975, 154)
    assert apa.columns.tolist() == ["Contrast", "b", "SE", "t", "df", "p", "95% CI", "r (equivalent)"]
    assert apa.loc[0, "95% CI"] == f"[{e['estimate'] - half:.2f}, {e['estimate'] + half:.2f}]"
    assert apa.loc[0, "b"] == f"{e['estimate']:.2f}"

    tr = als.transitions(df, "alliance_type", states=als.ALLIANCE_TYPES)
    t = tr.to_apa()
    assert t["From"].tolist() == list(als.ALLIANCE_TYPES)
    assert t["n"].tolist() == tr.counts.sum(axis=1).astype(int).tolist()
    p, lo, hi = tr.probabilities.iat[0, 0], tr.ci_low.iat[0, 0], tr.ci_high.iat[0, 0]
    assert t.loc[0, "magical"] == f"{p:.2f} [{lo:.2f}, {hi:.2f}]".replace("0.", ".")  # probabilities: no leading zero

    qs = als.read_qsorts(als.sample_path("pqs"), session="session_id", patient="client_id", rater="judge", items="PQS_{}").data
    qf = als.q_factor_analysis(qs[qs.rater == "J1"])
    q = qf.to_apa()
    assert q["Factor"].tolist() == qf.variance["factor"].tolist()
    assert q["Defining sorts"].sum() == qf.loadings["defines"].notna().sum()
    assert q.loc[0, "% variance"] == f"{qf.variance['variance_pct'].iloc[0]:.1f}"


# ---------------------------------------------------------------------------------------
# the Word table in APA style: checked in the document's XML

# the demo's alliance -> outcome table (alliance_to_outcome_apa), as to_apa() prints it
DEMO_APA = pd.DataFrame({
    "Level": ["within-patient", "between-patient", "therapist"],
    "Term": ["wai_sr_total_within_lag1", "wai_sr_total_patient", "wai_sr_total_therapist"],
    "b": ["-1.52", "-3.06", "-3.23"], "SE": ["0.17", "0.73", "1.27"], "beta": ["-0.09", "-0.28", "-0.17"],
    "t": ["-9.00", "-4.17", "-2.55"], "df": ["1420.6", "137.9", "18"], "p": ["< .001", "< .001", ".020"],
    "95% CI": ["[-1.85, -1.19]", "[-4.52, -1.61]", "[-5.88, -0.57]"],
})
SERIF = "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf"  # metric twin of Times New Roman


def _qn(tag):
    from docx.oxml.ns import qn

    return qn(tag)


def _word_width_pt(text, size_pt):
    """Width of ``text`` in Liberation Serif at ``size_pt``, measured by FreeType (through PIL),
    independently of the AFM metrics the writer uses."""
    from PIL import ImageFont

    font = ImageFont.truetype(SERIF, 1000)
    return font.getlength(text) * size_pt / 1000


def _border(cell, side):
    b = cell._tc.tcPr.find(_qn("w:tcBorders"))
    e = None if b is None else b.find(_qn(f"w:{side}"))
    return None if e is None else e.get(_qn("w:val"))


def _check_word_table(path, df, text_width_in=6.5):
    import docx

    doc = docx.Document(str(path))
    t = doc.tables[0]
    tbl = t._tbl
    # rules: none at table level; above and below the header and under the last row; nothing vertical
    tb = tbl.tblPr.find(_qn("w:tblBorders"))
    assert {e.tag.split("}")[1]: e.get(_qn("w:val")) for e in tb} == dict.fromkeys(
        ["top", "left", "bottom", "right", "insideH", "insideV"], "nil")
    last = len(t.rows) - 1
    for i, row in enumerate(t.rows):
        for cell in row.cells:
            assert (_border(cell, "top"), _border(cell, "bottom")) == (
                ("single", "single") if i == 0 else (None, "single") if i == last else (None, None)), (i, cell.text)
            assert _border(cell, "left") == _border(cell, "right") == "nil"
    for side in ("left", "right", "insideV", "start", "end"):
        assert not tbl.xpath(f".//w:{side}[@w:val!='nil' and @w:val!='none']"), side
    # fixed layout, columns sized to their content: unequal, each wide enough for its longest word
    assert tbl.tblPr.find(_qn("w:tblLayout")).get(_qn("w:type")) == "fixed"
    grid = [int(g.get(_qn("w:w"))) / 20 for g in tbl.tblGrid.findall(_qn("w:gridCol"))]  # twips -> pt
    assert len(set(grid)) > 1
    size = t.rows[1].cells[0].paragraphs[0].runs[0].font.size.pt
    margins = 2 * 5.4
    for j, col in enumerate(df.columns):
        cells = [str(col)] + [str(v) for v in df.iloc[:, j]]
        longest = max(_word_width_pt(w, size) for c in cells for w in c.split())
        assert grid[j] >= longest + margins, (col, grid[j], longest)
        for row in t.rows:  # every cell carries the same width
            assert row.cells[j].width.pt == pytest.approx(grid[j], abs=0.1)
    sec = doc.sections[0]
    avail = (sec.page_width - sec.left_margin - sec.right_margin) / 12700  # EMU -> pt
    assert sum(grid) <= avail + 0.5
    return doc, t, grid, size


def test_word_table_is_apa_style(tmp_path):
    import docx
    from docx.enum.section import WD_ORIENT

    path = als.export_table(DEMO_APA, tmp_path / "table2.docx", caption="Table 2. Alliance effects on PHQ-9",
                            note="b = unstandardized estimate; beta = standardized estimate.")
    doc, t, grid, size = _check_word_table(path, DEMO_APA)
    assert doc.sections[0].orientation == WD_ORIENT.PORTRAIT and size == 10
    # the number in bold, the title in italics above the table, the note below it
    body = [e.tag.split("}")[1] for e in doc.element.body if e.tag.split("}")[1] in ("p", "tbl")]
    assert body == ["p", "p", "tbl", "p"]
    num, title, note = doc.paragraphs
    assert num.text == "Table 2" and all(r.bold for r in num.runs) and not any(r.italic for r in num.runs)
    assert title.text == "Alliance effects on PHQ-9" and all(r.italic for r in title.runs)
    assert note.runs[0].text == "Note." and note.runs[0].italic and not note.runs[1].italic
    # numbers right-aligned, text left; statistical symbols in the header in italics
    jc = [[c.paragraphs[0].paragraph_format.alignment for c in row.cells] for row in t.rows]
    right, left = docx.enum.text.WD_ALIGN_PARAGRAPH.RIGHT, docx.enum.text.WD_ALIGN_PARAGRAPH.LEFT
    for row in jc[1:]:
        assert row == [left, left] + [right] * 7
    assert [c.text for c in t.rows[0].cells if c.paragraphs[0].runs[0].italic] == ["b", "SE", "t", "df", "p"]
    # ... and on the decimal point: right indent + the width from the point to the end is the same
    # in every row (df: 1420.6, 137.9 and 18, whose end stands where the points are)
    for j in range(2, 9):
        line = []
        for row in t.rows[1:]:
            text = row.cells[j].text
            ind = row.cells[j].paragraphs[0].paragraph_format.right_indent
            tail = _word_width_pt(text[text.index("."):], size) if "." in text else 0.0
            line.append((ind.pt if ind is not None else 0.0) + tail)
        assert max(line) - min(line) < 0.3, (DEMO_APA.columns[j], line)
    assert t.rows[3].cells[6].paragraphs[0].paragraph_format.right_indent.pt > 0  # "18"
    # the Term column is the widest: it holds the longest word
    assert max(grid) == grid[1]


def test_word_table_too_wide_for_portrait_goes_landscape(tmp_path):
    from docx.enum.section import WD_ORIENT

    wide = pd.concat([DEMO_APA, DEMO_APA[["b", "SE", "p", "95% CI"]].add_suffix(" (2)")], axis=1)
    path = als.export_table(wide, tmp_path / "wide.docx", caption="Table 3. Wide")
    doc, *_ = _check_word_table(path, wide)
    assert doc.sections[0].orientation == WD_ORIENT.LANDSCAPE


def test_word_tables_of_the_results_keep_every_word_whole(tmp_path, sample_sessions):
    df = sample_sessions
    tables = {
        "rupture": als.rupture_outcome(df, als.detect_ruptures(df, "wai_sr_total"), outcome="phq9_total").to_apa(),
        "transitions": als.transitions(df, "alliance_type", states=als.ALLIANCE_TYPES).to_apa(),
        "meta": als.meta_analysis(als.load_sample("meta"), r="r", n="n", study="study").to_apa(),
    }
    for name, apa in tables.items():
        _check_word_table(als.export_table(apa, tmp_path / f"{name}.docx", caption=f"Table 1. {name}"), apa)
