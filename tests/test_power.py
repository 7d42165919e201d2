"""Simulation-based power analysis: structure, determinism across backends, Monte-Carlo CI."""

import numpy as np
import pandas as pd
import pytest

import alliance_stats as als
from alliance_stats.power import _wilson

SMALL = dict(patients_per_therapist=4, sessions=8, n_sims=6, progress=False)


@pytest.fixture(scope="module")
def grid():
    return als.power_analysis(n_therapists=[4, 8], effect=[-1.5, -0.5], seed=11, **SMALL)


def test_grid_table_and_per_study_rows(grid):
    t = grid.table
    assert t[["n_therapists", "effect"]].to_numpy().tolist() == [[4, -1.5], [4, -0.5], [8, -1.5], [8, -0.5]]
    assert (t["n_sims"] == 6).all() and (t["n_failed"] == 0).all()
    assert len(grid.sims) == 24
    for _, row in t.iterrows():
        g = grid.sims[(grid.sims.n_therapists == row.n_therapists) & (grid.sims.effect == row.effect)]
        assert row["power"] == pytest.approx(g["significant"].mean())
        assert row["bias"] == pytest.approx(g["estimate"].mean() - row["effect"])
        assert row["coverage"] == pytest.approx(((g.ci_low <= row.effect) & (row.effect <= g.ci_high)).mean())
        sig = (g["p"] < 0.05) & (np.sign(g["estimate"]) == np.sign(row["effect"]))
        assert (g["significant"] == sig).all()


def test_to_apa(grid):
    apa = grid.to_apa()
    t = grid.table
    assert apa.columns.tolist() == ["N therapists", "Patients per therapist", "Sessions", "Effect", "Studies",
                                    "Power [95% CI]", "Bias", "Coverage"]
    assert apa["Studies"].tolist() == ["6", "6", "6", "6"]
    assert apa["N therapists"].tolist() == ["4", "4", "8", "8"] and apa["Effect"].tolist() == ["-1.50", "-0.50", "-1.50", "-0.50"]
    r = t.iloc[0]
    # a proportion: no leading zero (APA)
    assert apa.loc[0, "Power [95% CI]"] == f"{r.power:.2f} [{r.power_ci_low:.2f}, {r.power_ci_high:.2f}]".replace("0.", ".")
    assert apa.loc[0, "Bias"] == f"{r.bias:.2f}"


def test_same_seed_same_result_whatever_the_backend(grid):
    two = als.power_analysis(n_therapists=[4, 8], effect=[-1.5, -0.5], seed=11, n_jobs=2, **SMALL)
    pd.testing.assert_frame_equal(grid.sims, two.sims)
    other = als.power_analysis(n_therapists=[4, 8], effect=[-1.5, -0.5], seed=12, **SMALL)
    assert not np.allclose(grid.sims["estimate"], other.sims["estimate"])


def test_dask_backend_through_joblib_gives_the_same_result(grid):
    import joblib
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster):
        with joblib.parallel_config(backend="dask"):
            res = als.power_analysis(n_therapists=[4, 8], effect=[-1.5, -0.5], seed=11, n_jobs=2, **SMALL)
    pd.testing.assert_frame_equal(grid.sims, res.sims)


def test_wilson_interval_matches_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    for k, n in [(8, 10), (0, 20), (500, 500), (37, 120)]:
        np.testing.assert_allclose(_wilson(k, n), proportion_confint(k, n, method="wilson"), rtol=1e-12)
    assert _wilson(0, 3)[0] == 0.0 and _wilson(3, 3)[1] == 1.0  # not a rounding error of either sign


def test_plot_draws_one_curve_per_hue(grid):
    ax = grid.plot()
    assert ax.get_xlabel() == "n therapists"
    assert len(ax.containers) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["effect = -1.5", "effect = -0.5"]
    assert "within-patient" in grid.summary() and "<table" in grid._repr_html_()


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(n_therapists=0), "positive whole"),
        (dict(sessions=2), "at least 3"),
        (dict(effect=[]), "at least one value"),
        (dict(n_sims=0), "n_sims"),
        (dict(alpha=1.5), "alpha"),
        (dict(model="ols"), "model"),
    ],
)
def test_bad_arguments(kw, match):
    args = dict(n_therapists=4, patients_per_therapist=4, sessions=8, effect=-1.0, n_sims=2, progress=False)
    args.update(kw)
    with pytest.raises(als.OptionError, match=match):
        als.power_analysis(**args)


def test_failed_studies_are_counted_and_all_failed_raises(monkeypatch):
    from alliance_stats.models import alliance

    real = alliance.alliance_outcome
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] % 2:
            raise als.ModelSpecError("planted failure")
        return real(*a, **k)

    monkeypatch.setattr(alliance, "alliance_outcome", flaky)
    with pytest.warns(als.AllianceStatsWarning, match="3 of 6 simulated studies could not be analysed"):
        res = als.power_analysis(n_therapists=4, effect=-1.5, seed=3, **SMALL)
    assert res.table.loc[0, "n_failed"] == 3
    assert res.sims["error"].notna().sum() == 3
    assert res.table.loc[0, "power"] == pytest.approx(res.sims.loc[res.sims.error.isna(), "significant"].mean())

    def broken(*a, **k):
        raise als.ModelSpecError("planted failure")

    monkeypatch.setattr(alliance, "alliance_outcome", broken)
    with pytest.raises(als.AllianceStatsError, match="none of the 6 simulated studies.*planted failure"):
        als.power_analysis(n_therapists=4, effect=-1.5, seed=3, **SMALL)
