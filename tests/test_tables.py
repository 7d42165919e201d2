import numpy as np
import pandas as pd
import pytest

import alliance_stats as als


@pytest.fixture
def table():
    return pd.DataFrame({"Term": ["a_b", "x & y"], "b": ["0.12", "-1.50"], "p": ["< .001", ".034"], "value": [0.1234, np.nan]})


@pytest.mark.parametrize("ext", [".csv", ".md", ".tex", ".html", ".docx"])
def test_export_table_every_format(tmp_path, table, ext):
    path = als.export_table(table, tmp_path / f"t{ext}", caption="Table 1", note="Estimates from REML.")
    assert path.is_file() and path.suffix == ext
    if ext == ".csv":
        back = pd.read_csv(path)
        assert back["Term"].tolist() == ["a_b", "x & y"] and back["value"].iloc[0] == 0.1234
    elif ext == ".md":
        text = path.read_text()
        assert "**Table 1**" in text and "| a_b" in text and "0.12" in text and "*Note.* Estimates" in text
    elif ext == ".tex":
        text = path.read_text()
        assert r"a\_b" in text and r"x \& y" in text and r"\textless{} .001" in text and r"\toprule" in text
        assert text.count(r"\\") == 3  # header + 2 rows
        assert r"\caption{Table 1}" in text
    elif ext == ".html":
        text = path.read_text()
        assert "<caption>Table 1</caption>" in text and "x &amp; y" in text and "&lt; .001" in text
        assert text.count("<tr>") == 3
    else:
        import docx

        doc = docx.Document(str(path))
        t = doc.tables[0]
        assert [c.text for c in t.rows[0].cells] == ["Term", "b", "p", "value"]
        assert [c.text for c in t.rows[1].cells] == ["a_b", "0.12", "< .001", "0.12"]
        assert t.rows[2].cells[3].text == ""
        assert doc.paragraphs[0].text == "Table 1" and doc.paragraphs[-1].text.startswith("Note. Estimates")


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
    assert t.loc[0, "magical"] == f"{p:.2f} [{lo:.2f}, {hi:.2f}]"

    qs = als.read_qsorts(als.sample_path("pqs"), session="session_id", patient="client_id", rater="judge", items="PQS_{}")
    qf = als.q_factor_analysis(qs[qs.rater == "J1"])
    q = qf.to_apa()
    assert q["Factor"].tolist() == qf.variance["factor"].tolist()
    assert q["Defining sorts"].sum() == qf.loadings["defines"].notna().sum()
    assert q.loc[0, "% variance"] == f"{qf.variance['variance_pct'].iloc[0]:.1f}"
