"""Options and data the mixed models refuse by name instead of a raw traceback or a silent default."""

import warnings

import pytest

import alliance_stats as als


@pytest.fixture(scope="module")
def d():
    s = als.simulate_study(n_therapists=6, patients_per_therapist=5, seed=1).sessions
    return s.join(als.score(s, "PHQ-9", items="phq{}"))


@pytest.fixture(scope="module")
def m(d):
    return als.lmm("phq9_total ~ session + (1 | patient)", d)


F = "phq9_total ~ session + (1 | patient)"


@pytest.mark.parametrize("call, error, message", [
    (lambda d, m: als.lmm(F, d.assign(t=1_600_000_000 + d.session * 604800), residuals="ar1", time="t"),
     als.ColumnError, r"median of 604800 units apart.*session number"),
    (lambda d, m: als.lmm(F, d, restart="no"), als.OptionError, r"restart='no'.*True, False"),
    (lambda d, m: als.lmm(F, d, start="a"), als.OptionError, r"start='a'"),
    (lambda d, m: als.all_fit(m, optimizers=[]), als.OptionError, r"optimizers=\[\]"),
    (lambda d, m: m.predict(d, include_random="no"), als.OptionError, r"include_random='no'"),
    (lambda d, m: m.predict(d, include_random=False, allow_new_levels="yes"), als.OptionError, r"allow_new_levels='yes'"),
    (lambda d, m: als.glmm("b ~ session + (1 | patient) + (1 | therapist)", d.assign(b=(d.session > 3).astype(int))),
     als.ModelSpecError, r"'b' is predicted \(almost\) perfectly.*separation"),
    (lambda d, m: als.glmm("b ~ session + (1 | patient)", d.assign(b=(d.session > 3).astype(int))),
     als.ModelSpecError, r"separation"),
])
def test_refused_by_name(d, m, call, error, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.AllianceStatsWarning)
        with pytest.raises(error, match=message):
            call(d, m)
