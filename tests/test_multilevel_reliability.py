"""als.multilevel_reliability against psych::multilevel.reliability (lmer = TRUE, lme = FALSE) on the
synthetic sample study's WAI-SR items (tests/reference/make_multilevel_reliability_reference.R): the
coefficients and variance components from the same lme4 models converged tightly (tight_*), and psych's
own output (lme4's default stopping rule) to the precision it reaches."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_stats as als

REF = pd.read_csv(Path(__file__).parent / "reference" / "psych_multilevel_reliability.csv").set_index("set")
ITEMS = [f"WAISR_{i}" for i in range(1, 13)]


def _data(which):
    w = pd.read_csv(Path(__file__).parents[1] / "sample_data" / "sessions_wide.csv")
    w = w.dropna(subset=ITEMS)[["client_id", "session_no"] + ITEMS]
    if which == "first40":
        w = w[w["client_id"].isin(sorted(w["client_id"].unique())[:40])]
    return w


@pytest.fixture(scope="module", params=["all", "first40"])
def fitted(request):
    return request.param, als.multilevel_reliability(_data(request.param), items=ITEMS, patient="client_id",
                                                    session="session_no")


def test_counts_as_psych(fitted):
    which, r = fitted
    ref = REF.loc[which]
    assert (r.n_patients, r.n_sessions, r.n_items) == (ref["n_obs"], ref["n_time"], ref["n_items"])
    assert r.n_missing == 0


@pytest.mark.parametrize("coef", ["RkF", "R1R", "RkR", "Rc", "RkRn", "Rcn"])
def test_coefficients_as_psych(fitted, coef):
    which, r = fitted
    assert r.coefficients[coef] == pytest.approx(REF.loc[which, f"tight_{coef}"], rel=1e-6)
    assert r.coefficients[coef] == pytest.approx(REF.loc[which, coef], rel=1e-4)  # psych itself, default lmer control


@pytest.mark.parametrize("comp,ref", [("var_id", "v_id"), ("var_time", "v_time"), ("var_items", "v_items"),
                                      ("var_id_time", "v_id_time"), ("var_id_items", "v_id_items"),
                                      ("var_time_items", "v_time_items"), ("var_residual", "v_resid"),
                                      ("var_nested_id", "v_nested_id"), ("var_nested_id_time", "v_nested_id_time"),
                                      ("var_nested_residual", "v_nested_resid")])
def test_variance_components_as_lme4(fitted, comp, ref):
    which, r = fitted
    assert r.variance[comp] == pytest.approx(REF.loc[which, f"tight_{ref}"], rel=2e-5, abs=1e-8)


def test_missing_responses_are_counted_and_input_untouched():
    d = _data("first40").reset_index(drop=True)
    d.loc[[0, 5], "WAISR_3"] = np.nan
    before = d.copy()
    r = als.multilevel_reliability(d, items=ITEMS, patient="client_id", session="session_no")
    assert r.n_missing == 2 and r.n_responses == len(d) * 12 - 2
    assert r.accounting()["n"].tolist() == [len(d) * 12 - 2, 2]
    pd.testing.assert_frame_equal(d, before)


def test_refusals_name_the_problem():
    d = _data("first40")
    with pytest.raises(als.OptionError, match="items"):
        als.multilevel_reliability(d, items="WAISR_1", patient="client_id", session="session_no")
    with pytest.raises(als.ColumnError, match="WAISR_99"):
        als.multilevel_reliability(d, items=["WAISR_1", "WAISR_99"], patient="client_id", session="session_no")
    with pytest.raises(als.InsufficientDataError, match="two sessions"):
        als.multilevel_reliability(d[d["session_no"] == 1], items=ITEMS, patient="client_id", session="session_no")


def test_reliability_warns_on_session_rows():
    d = _data("first40").rename(columns={"client_id": "patient"})
    with pytest.warns(als.NestedDataWarning, match="multilevel_reliability"):
        als.reliability(d, "wai-sr", items="WAISR_{}")
