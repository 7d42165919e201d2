import hashlib
import dataclasses
import numpy as np
import pandas as pd
import pytest

import alliance_stats as als

IDS = dict(patient="client_id", session="session_no", therapist="therapist_id")
INSTR = {"wai-sr": "WAISR_{}", "calpas-t": "CALPAS_T_{}", "phq-9": "PHQ9_{}"}


@pytest.mark.parametrize("name", ["sessions_spss", "sessions_excel"])
def test_sample_exports_give_the_same_table(name, sample_sessions):
    other = als.read_sessions(als.sample_path(name), instruments=INSTR, **IDS).data
    assert len(other) == len(sample_sessions) == 1821
    for col in ["patient", "session", "therapist", "wai_sr_total", "wai_sr_bond", "calpas_t_total", "phq9_total"]:
        a, b = sample_sessions[col], other[col]
        if col in ("wai_sr_total", "wai_sr_bond", "calpas_t_total", "phq9_total"):
            np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-12)
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist()


def test_sample_csv_is_tidy_sorted_and_accounted():
    df, meta = als.read_sessions(als.sample_path("sessions_csv"), patient="client_id", session="session_no",
                                 therapist="therapist_id",
                                 instruments={"wai-sr": "WAISR_{}", "calpas-t": "CALPAS_T_{}", "phq-9": "PHQ9_{}"})
    assert list(df.columns[:3]) == ["therapist", "patient", "session"]
    assert df["session"].dtype == "int64"
    keys = list(zip(df["patient"], df["session"]))
    assert keys == sorted(keys)
    assert meta.n_read == meta.n_kept == 1821 and meta.excluded() == {}
    assert meta.instruments["wai-sr"].provenance == "verified"
    assert meta.instruments["calpas-t"].provenance == "provisional"
    assert meta.format == "csv" and meta.sha256 == hashlib.sha256(als.sample_path("sessions_csv").read_bytes()).hexdigest()
    acc = als.row_accounting(meta)
    assert acc["step"].tolist() == ["read", "kept"] and acc["rows"].tolist() == [1821, 1821]
    # spot check one scored row against the raw export (hand check of the mean of 12 items)
    raw = als.load_sample("sessions_csv")
    r = raw[(raw.client_id == "P0001") & (raw.session_no == 1)].iloc[0]
    items = r[[f"WAISR_{i}" for i in range(1, 13)]].astype(float)
    got = df[(df.patient == "P0001") & (df.session == 1)].iloc[0]
    assert got["wai_sr_total"] == pytest.approx(items.mean())


def test_spss_value_labels_kept(tmp_path):
    df, meta = als.read_sessions(als.sample_path("sessions_spss"), instruments=INSTR, **IDS)
    assert meta.value_labels["therapy"] == {1.0: "CBT", 2.0: "PDT"}
    assert meta.variable_labels["WAISR_1"] == "WAI-SR client item 1"
    assert set(df["therapy"].cat.categories) == {"CBT", "PDT"}
    assert list(df["alliance_type"].cat.categories) == ["magical", "working", "therapeutic", "structuralizing"]
    raw = als.read_sessions(als.sample_path("sessions_spss"), apply_labels=False, **IDS).data
    assert set(raw["therapy"].unique()) == {1.0, 2.0}


def test_long_shape_equals_wide(sample_sessions):
    lt, prov = als.read_sessions(als.sample_path("sessions_long"), instruments={"wai-sr": "WAISR_{}"}, **IDS)
    assert prov.shape == "long"
    wide = sample_sessions[sample_sessions.patient.isin(lt.patient.unique())]
    assert len(lt) == len(wide) == 464
    np.testing.assert_allclose(lt["wai_sr_total"].to_numpy(), wide["wai_sr_total"].to_numpy(), rtol=1e-12)
    acc = als.row_accounting(prov)
    assert acc["rows"].tolist()[0] == 5515 and acc["rows"].tolist()[-1] == 464


@pytest.mark.parametrize("ext", ["tsv", "parquet", "dta", "xlsx"])
def test_other_formats_round_trip(tmp_path, ext):
    raw = als.load_sample("sessions_csv").head(60)
    path = tmp_path / f"s.{ext}"
    if ext == "tsv":
        raw.to_csv(path, sep="\t", index=False)
    elif ext == "parquet":
        raw.to_parquet(path)
    elif ext == "dta":
        import pyreadstat

        pyreadstat.write_dta(raw, str(path))
    else:
        raw.to_excel(path, index=False, sheet_name="export")
    df = als.read_sessions(path, instruments={"wai-sr": "WAISR_{}"}, sheet="export" if ext == "xlsx" else None, **IDS).data
    ref = als.read_sessions(raw, instruments={"wai-sr": "WAISR_{}"}, **IDS).data
    np.testing.assert_allclose(df["wai_sr_total"], ref["wai_sr_total"])


def test_semicolon_csv(tmp_path):
    p = tmp_path / "eu.csv"
    p.write_text("pid;sess;phq1;phq2;phq3;phq4;phq5;phq6;phq7;phq8;phq9\nA;1;1;1;1;1;1;1;1;1;1\nA;2;0;0;0;0;0;0;0;0;2\n")
    df = als.read_sessions(p, patient="pid", session="sess", instruments=["phq-9"]).data
    assert df["phq9_total"].tolist() == [9.0, 2.0]


def _toy():
    return pd.DataFrame(
        {
            "pid": ["a", "a", "b", "b", "c"],
            "s": [1, 2, 1, 2, 1],
            **{f"phq{i}": [1, 1, 2, 2, 0] for i in range(1, 10)},
        }
    )


@pytest.mark.parametrize(
    "edit, message, rows",
    [
        (lambda d: d.__setitem__("pid", ["a", None, "b", "b", "c"]), "row 1: missing patient ID", [1]),
        (lambda d: d.__setitem__("s", [1, 0, 1, 2, 1]), "row 1: session 0 is not a positive whole number", [1]),
        (lambda d: d.__setitem__("s", [1, 2.5, 1, 2, 1]), "session 2.5 is not a positive whole number", [1]),
        (lambda d: d.__setitem__("s", [1, 1, 1, 2, 1]), r"duplicate patient x session \(patient 'a', session 1\)", [0, 1]),
    ],
)
def test_bad_ids_raise_with_rows(edit, message, rows):
    df = _toy()
    edit(df)
    before = df.copy()
    with pytest.raises(als.SessionDataError, match=message) as e:
        als.read_sessions(df, patient="pid", session="s", instruments=["phq-9"]).data
    assert e.value.rows == rows
    pd.testing.assert_frame_equal(df, before)


def test_bad_ids_dropped_and_accounted():
    df = _toy()
    df["s"] = [1, 1, "x", 2, 1]
    res = als.read_sessions(df, patient="pid", session="s", on_bad_rows="drop")
    out = res.data
    assert len(out) == 2  # the duplicate pair and the bad session are excluded
    acc = als.row_accounting(res)
    assert acc.set_index("reason").loc["duplicate patient x session", "rows"] == 2
    assert acc.set_index("reason").loc["session 'x' is not a positive whole number up to 99999", "rows"] == 1
    assert acc["rows"].iloc[-1] == 2
    excl = [s for s in res.provenance.steps if s.step == "excluded"]
    assert sorted(r for s in excl for r in s.examples) == [0, 1, 2]
    assert res.accounting()["n"].tolist() == [2, 2, 1]


def test_rater_makes_sessions_distinct():
    df = pd.DataFrame({"pid": [1, 1], "s": [1, 1], "who": ["client", "therapist"]})
    out = als.read_sessions(df, patient="pid", session="s", rater="who").data
    assert out["rater"].tolist() == ["client", "therapist"]


def test_unknown_column_suggests():
    with pytest.raises(als.ColumnError, match=r"patient='client' is not a column.*did you mean \['client_id'\]"):
        als.read_sessions(als.sample_path("sessions_csv"), patient="client", session="session_no").data


def test_item_range_error_names_file_row(tmp_path):
    raw = als.load_sample("sessions_csv").head(5).copy()
    raw.loc[3, "WAISR_7"] = 6
    p = tmp_path / "bad.csv"
    raw.to_csv(p, index=False)
    with pytest.raises(als.ItemRangeError) as e:
        als.read_sessions(p, instruments={"wai-sr": "WAISR_{}"}, **IDS).data
    assert e.value.column == "WAISR_7" and e.value.rows == [4]  # data row 4 = 4th row under the header


def test_file_errors(tmp_path):
    with pytest.raises(als.DataFileError, match="unknown file type '.json'"):
        als.read_sessions(tmp_path / "x.json", **IDS).data
    with pytest.raises(als.DataFileError, match="does not exist"):
        als.read_sessions(tmp_path / "x.csv", **IDS).data
    with pytest.raises(als.DataFileError, match=r"has no sheet 'nope'; its sheets are \['sessions', 'codebook'\]"):
        als.read_sessions(als.sample_path("sessions_excel"), sheet="nope", **IDS).data


def test_session_grid_inserts_gaps():
    df = pd.DataFrame({"therapist": ["t1"] * 3 + ["t2"], "patient": ["a", "a", "a", "b"], "session": [1, 2, 5, 2], "x": [1.0, 2.0, 5.0, 9.0]})
    g = als.session_grid(df)
    assert g["session"].tolist() == [1, 2, 3, 4, 5, 2]
    assert g["observed"].tolist() == [True, True, False, False, True, True]
    assert g["therapist"].tolist() == ["t1"] * 5 + ["t2"]
    assert np.isnan(g.loc[2, "x"])
    g1 = als.session_grid(df, start=1)
    assert g1[g1.patient == "b"]["session"].tolist() == [1, 2]
    assert len(df) == 4  # input untouched


def test_session_grid_duplicates():
    df = pd.DataFrame({"patient": ["a", "a"], "session": [1, 1]})
    with pytest.raises(als.SessionDataError, match=r"appears twice at rows 0, 1"):
        als.session_grid(df)


def _sorts(n=3):
    rng = np.random.default_rng(0)
    piles = np.repeat(np.arange(1, 10), als.PQS_DISTRIBUTION)
    rows = [dict(sid=f"S{k}", **{f"pqs{i + 1}": p for i, p in enumerate(rng.permutation(piles))}) for k in range(n)]
    return pd.DataFrame(rows)


def test_read_qsorts_valid_and_sample():
    q = als.read_qsorts(_sorts(), session="sid").data
    assert q["qsort_valid"].all() and list(q.columns[:2]) == ["session", "pqs1"]
    s = als.read_qsorts(als.sample_path("pqs"), session="session_id", patient="client_id", rater="judge", items="PQS_{}").data
    assert len(s) == 138 and s["qsort_valid"].all()
    assert (s[[f"pqs{i}" for i in range(1, 101)]].apply(lambda r: np.bincount(r.astype(int), minlength=10)[1:].tolist(), axis=1) == pd.Series([list(als.PQS_DISTRIBUTION)] * 138)).all()


def test_read_qsorts_distribution_violation():
    df = _sorts()
    one = df.columns[(df.loc[1] == 1).to_numpy()][0]  # an item in pile 1 of session S1
    df.loc[1, one] = 2  # now pile 1 has 4 items and pile 2 has 9
    with pytest.raises(als.QSortError, match=r"session 'S1' \(row 1\): pile counts found \[4, 9, 12, 16, 18, 16, 12, 8, 5\] vs expected \[5, 8, 12"):
        als.read_qsorts(df, session="sid").data
    with pytest.warns(als.InvalidValuesWarning, match="1 of 3 Q-sorts"):
        q = als.read_qsorts(df, session="sid", on_invalid="flag").data
    assert q["qsort_valid"].tolist() == [True, False, True]
    assert "piles [1, 2] differ" in q.loc[1, "qsort_problem"]


def test_read_qsorts_malformed_piles_and_items():
    df = _sorts()
    df.loc[0, "pqs5"] = 10
    df.loc[2, "pqs9"] = np.nan
    with pytest.warns(als.InvalidValuesWarning):
        q = als.read_qsorts(df, session="sid", on_invalid="flag").data
    assert "pile(s) [10.0] outside 1..9" in q.loc[0, "qsort_problem"]
    assert "1 of 100 items have no pile" in q.loc[2, "qsort_problem"]
    with pytest.raises(als.QSortError, match="outside 1..9"):
        als.read_qsorts(df, session="sid").data
    with pytest.raises(als.ColumnError, match="could not find|not in the data"):
        als.read_qsorts(df.drop(columns="pqs100"), session="sid").data


def test_pseudonymize():
    df = pd.DataFrame({"patient": [7, 7.0, np.nan, 12], "x": [1, 2, 3, 4]})
    df["patient"] = df["patient"].astype(object)
    df.loc[0, "patient"] = 7
    out = als.pseudonymize(df, "patient", key="a secret key")
    assert out.loc[0, "patient"] == out.loc[1, "patient"]  # 7 and 7.0 are the same ID
    assert len(out.loc[0, "patient"]) == 16 and out.loc[0, "patient"] != out.loc[3, "patient"]
    assert pd.isna(out.loc[2, "patient"])
    assert df.loc[0, "patient"] == 7  # input untouched
    other = als.pseudonymize(df, "patient", key="another key!")
    assert other.loc[0, "patient"] != out.loc[0, "patient"]
    # HMAC-SHA256("a secret key", "7") worked out with the standard library
    import hashlib
    import hmac

    assert out.loc[0, "patient"] == hmac.new(b"a secret key", b"7", hashlib.sha256).hexdigest()[:16]
    with pytest.raises(als.OptionError, match="at least 8"):
        als.pseudonymize(df, "patient", key="short")
    with pytest.raises(als.ColumnError):
        als.pseudonymize(df, "nope", key="a secret key")


def test_provenance_is_kept_next_to_the_table_and_survives_filtering():
    df = _toy()
    df["s"] = [1, 1, "x", 2, 1]
    before = df.copy()
    sessions = als.read_sessions(df, patient="pid", session="s", on_bad_rows="drop")
    pd.testing.assert_frame_equal(df, before)  # the input is not modified
    data, prov = sessions  # unpacks like read_table's (table, metadata)
    assert data is sessions.data and prov is sessions.provenance
    assert data.attrs == {}  # nothing rides on the frame
    later = data[data.session > 1]
    assert later.attrs == {} and sessions.provenance is prov and prov.n_kept == 2
    assert als.row_accounting(sessions)["rows"].tolist() == [5, 2, 1, 2]
    with pytest.raises(als.AllianceStatsError, match="carries no row accounting"):
        als.row_accounting(data)
    with pytest.raises(als.DataFileError, match="pass its table: sessions.data"):
        als.session_grid(sessions)
    with pytest.raises(dataclasses.FrozenInstanceError):
        prov.n_kept = 3


def test_provenance_size_does_not_grow_with_the_rows():
    """Example rows are capped (at scoring.EXAMPLE_ROWS) while the counts stay exact."""
    n = 200
    df = pd.DataFrame({"pid": ["a"] * n + ["b"] * n, "s": list(range(1, n + 1)) * 2})
    df.loc[df.index % 2 == 0, "s"] = 0  # half the sessions are out of range
    prov = als.read_sessions(df, patient="pid", session="s", on_bad_rows="drop").provenance
    step = [s for s in prov.steps if s.step == "excluded"]
    assert len(step) == 1 and step[0].rows == n and len(step[0].examples) == als.scoring.EXAMPLE_ROWS
    assert step[0].examples == tuple(range(0, 2 * als.scoring.EXAMPLE_ROWS, 2))
    assert prov.n_read == 2 * n and prov.n_kept == n
