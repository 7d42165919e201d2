"""Every error the package raises is a named AllianceStatsError subclass (project issue 15, item 5).

(a) A static scan of the package source: no ``raise`` of a builtin or third-party exception class,
    no ``AllianceStatsError`` itself (a named subclass says more), no ``assert`` (user input is
    checked with our exceptions); a short allow-list holds the justified exceptions.
(b) Every public function that takes an option string refuses a bad value with OptionError naming
    the option, the value and the values allowed.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_stats as als
from alliance_stats import exceptions

PACKAGE = Path(als.__file__).resolve().parent
BUILTIN_EXCEPTIONS = {n for n, o in vars(builtins).items() if isinstance(o, type) and issubclass(o, BaseException)}

#: (file, exception as written, a piece of its message): raises that are not errors about user input.
ALLOWED = {
    ("_result.py", "NotImplementedError", "does not define to_frame()"):
        "a programming error: every result class on the base defines to_frame() (tests/test_result_base*.py)",
    ("config.py", "AttributeError", "name"):
        "the module __getattr__ protocol (PEP 562): an unknown module attribute must raise AttributeError",
    ("study/registry.py", "RuntimeError", "two study steps are called"):
        "a programming error inside the package (two step modules registered under one name), not a user's input",
    ("_output.py", "RuntimeError", "ResultsFolder.start() was not called"):
        "a programming error inside the package (ResultsFolder is private), not a user's input",
    ("models/lmm/nested.py", "np.linalg.LinAlgError", "the fixed-effects block is not positive definite"):
        "an internal signal caught by NestedEngine.deviance() in the same module",
    ("models/lmm/crossed.py", "np.linalg.LinAlgError", "the reduced system is not positive definite"):
        "an internal signal caught by the engines' deviance() (ProfiledDeviance in nested.py)",
    ("models/lmm/glmm_crossed.py", "np.linalg.LinAlgError", "the penalised weighted least-squares system is not positive definite"):
        "an internal signal caught by the GLMM objective in glmm.py (the point is treated as infeasible)",
    ("models/lmm/glmm.py", "FloatingPointError", "PIRLS step halving failed"):
        "an internal signal: the optimizer's objective in the same module treats the point as infeasible",
    ("models/lmm/glmm.py", "FloatingPointError", "PIRLS did not converge"):
        "an internal signal: the optimizer's objective in the same module treats the point as infeasible",
}


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), path.read_text(encoding="utf-8")


def _package_classes() -> set[str]:
    return {node.name for _, src in _sources() for node in ast.walk(ast.parse(src)) if isinstance(node, ast.ClassDef)}


def _offences():
    ours = _package_classes()
    found = []
    for rel, src in _sources():
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Assert):
                found.append((rel, node.lineno, "assert", ""))
            if isinstance(node, ast.Call):
                callee = ast.unparse(node.func)
                if callee.split(".")[-1] == "AllianceStatsError":
                    found.append((rel, node.lineno, callee, ast.get_source_segment(src, node)))
                for kw in node.keywords:
                    if isinstance(kw.value, ast.Name) and kw.value.id == "AllianceStatsError":
                        found.append((rel, node.lineno, f"{kw.arg}=AllianceStatsError", ""))
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = ast.unparse(exc)
            last = name.split(".")[-1]
            builtin = last in BUILTIN_EXCEPTIONS
            foreign = last[:1].isupper() and last not in ours  # a class from numpy, scipy, pandas ...
            if builtin or foreign:
                found.append((rel, node.lineno, name, ast.get_source_segment(src, node)))
    return found


def _allowed(rel, name, text):
    return any(rel == f and name == n and piece in text for (f, n, piece) in ALLOWED)


def test_no_builtin_third_party_or_base_class_raises():
    bad = [f"alliance_stats/{rel}:{line}: {name}" for rel, line, name, text in _offences() if not _allowed(rel, name, text)]
    assert not bad, "raise a named AllianceStatsError subclass instead:\n" + "\n".join(bad)


def test_allow_list_is_still_needed():
    found = {(rel, name) for rel, _, name, text in _offences() if _allowed(rel, name, text)}
    assert found == {(f, n) for f, n, _ in ALLOWED}


def test_scan_finds_what_it_should(tmp_path, monkeypatch):
    """The scanner itself: a planted module with each kind of offence is reported line by line."""
    planted = tmp_path / "alliance_stats"
    planted.mkdir()
    (planted / "__init__.py").write_text("")
    (planted / "bad.py").write_text(
        "import numpy as np\n"
        "class MyError(Exception):\n    pass\n"
        "def f(x):\n"
        "    if x: raise ValueError('x')\n"
        "    if x: raise KeyError\n"
        "    if x: raise np.linalg.LinAlgError('y')\n"
        "    if x: raise AllianceStatsError('base')\n"
        "    if x: raise MyError('fine')\n"
        "    assert x\n"
        "    g(error=AllianceStatsError)\n"
        "    try:\n        pass\n    except OSError:\n        raise\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", planted)
    got = sorted((line, name) for _, line, name, _ in _offences())
    assert got == [(5, "ValueError"), (6, "KeyError"), (7, "np.linalg.LinAlgError"), (8, "AllianceStatsError"),
                   (8, "AllianceStatsError"), (10, "assert"), (11, "error=AllianceStatsError")]


def test_every_error_and_warning_class_is_ours_and_exported():
    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        assert issubclass(cls, (als.AllianceStatsError, als.AllianceStatsWarning)), name
        assert getattr(als, name) is cls and name in als.__all__, name
    assert issubclass(als.AllianceStatsError, ValueError)
    # every exception class defined anywhere in the package is in exceptions (bar the CLI's signal)
    defined = {n for n, o in inspect.getmembers(exceptions, inspect.isclass) if o.__module__ == exceptions.__name__}
    assert defined == set(exceptions.__all__)


def test_config_choice_is_both_config_and_option_error(tmp_path):
    cfg = tmp_path / "study.toml"
    cfg.write_text('[data]\nfile = "x.csv"\npatient = "p"\nsession = "s"\n[instruments]\n"phq-9" = "phq{}"\n'
                   '[variables]\nalliance = "a"\noutcome = "o"\n[meta]\nfile = "m.csv"\nr = "r"\nn = "n"\nstudy = "s"\n'
                   'method = "SJ"\n')
    from alliance_stats.config import load_config

    with pytest.raises(als.ConfigError) as err:
        load_config(cfg)
    e = err.value
    assert isinstance(e, als.OptionError) and e.option == "[meta] method" and e.value == "SJ"
    assert e.allowed == ("REML", "ML", "DL", "PM", "HE", "FE")
    assert "'method' in [meta] (line 15 of study.toml): must be one of REML, ML, DL, PM, HE, FE, got 'SJ'" == str(e)


# -- (b) bad option values --------------------------------------------------------------------------------

_rng = np.random.default_rng(15)
_D = pd.DataFrame({
    "patient": np.repeat(["a", "b", "c", "d", "e", "f"], 6),
    "session": np.tile(np.arange(1, 7), 6),
    "wai": np.round(_rng.normal(5, 1, 36), 2),
    "phq": np.round(_rng.normal(12, 4, 36), 2),
    "therapist": np.repeat(["t1", "t1", "t2", "t2", "t3", "t3"], 6),
})
_PHQ = pd.DataFrame({f"phq{i}": _rng.integers(0, 4, 10) for i in range(1, 10)})
_META = pd.DataFrame({"study": ["s1", "s1", "s2", "s3", "s4"], "r": [0.2, 0.3, 0.25, 0.1, 0.4], "n": [50, 60, 70, 80, 90]})


def _meta():
    return als.meta_analysis(r=[0.2, 0.3, 0.25, 0.1, 0.4], n=[50, 60, 70, 80, 90])


def _episodes():
    return als.detect_ruptures(_D, "wai")


def _figure():
    import matplotlib.pyplot as plt

    return plt.subplots()[0]


#: (id, option, bad value, call with the bad value)
BAD_OPTIONS = [
    ("read_sessions-shape", "shape", "tall", lambda v: als.read_sessions(als.sample_path("sessions_csv"), patient="client_id", session="session_no", shape=v).data),
    ("read_sessions-on_bad_rows", "on_bad_rows", "skip", lambda v: als.read_sessions(als.sample_path("sessions_csv"), patient="client_id", session="session_no", on_bad_rows=v).data),
    ("read_table-sep", "sep", "#", lambda v: als.read_table(als.sample_path("sessions_csv"), sep=v)),
    ("read_qsorts-on_invalid", "on_invalid", "drop", lambda v: als.read_qsorts(als.sample_path("pqs"), session="session", on_invalid=v).data),
    ("score-on_invalid", "on_invalid", "drop", lambda v: als.score(_PHQ, "phq-9", items="phq{}", on_invalid=v)),
    ("score_instruments-on_invalid", "on_invalid", "drop", lambda v: als.score_instruments(_PHQ, {"phq-9": "phq{}"}, on_invalid=v)),
    ("reliability-on_invalid", "on_invalid", "drop", lambda v: als.reliability(_PHQ, "phq-9", items="phq{}", on_invalid=v)),
    ("reliable_change-higher_is_better", "higher_is_better", "yes",
     lambda v: als.reliable_change(_D, pre="phq", post="wai", reliability=0.8, higher_is_better=v)),
    ("lmm-engine", "engine", "lme4", lambda v: als.lmm("wai ~ session + (1 | patient)", _D, engine=v)),
    ("lmm-df_method", "df_method", "containment", lambda v: als.lmm("wai ~ session + (1 | patient)", _D, df_method=v)),
    ("decompose-detrend", "detrend", "quadratic", lambda v: als.decompose(_D, "wai", detrend=v)),
    ("alliance_outcome-direction", "direction", "both", lambda v: als.alliance_outcome(_D, outcome="phq", alliance="wai", direction=v)),
    ("alliance_outcome-engine", "engine", "lme4", lambda v: als.alliance_outcome(_D, outcome="phq", alliance="wai", engine=v)),
    ("meta_analysis-method", "method", "SJ", lambda v: als.meta_analysis(_META, r="r", n="n", method=v)),
    ("meta_analysis-test", "test", "t", lambda v: als.meta_analysis(_META, r="r", n="n", test=v)),
    ("meta_analysis-on_invalid", "on_invalid", "skip", lambda v: als.meta_analysis(_META, r="r", n="n", on_invalid=v)),
    ("meta_analysis-cluster-method", "method", "DL", lambda v: als.meta_analysis(_META, r="r", n="n", cluster="study", method=v)),
    ("egger-model", "model", "glm", lambda v: _meta().egger(model=v)),
    ("trim_and_fill-side", "side", "up", lambda v: _meta().trim_and_fill(side=v)),
    ("trim_and_fill-estimator", "estimator", "Q0", lambda v: _meta().trim_and_fill(estimator=v)),
    ("aggregate_effects-method", "method", "mean", lambda v: als.aggregate_effects(_META, by="study", r="r", n="n", method=v)),
    ("detect_ruptures-method", "method", "smith", lambda v: als.detect_ruptures(_D, "wai", method=v)),
    ("detect_ruptures-sd_source", "sd_source", "all", lambda v: als.detect_ruptures(_D, "wai", sd_source=v)),
    ("alliance_trajectories-rupture_method", "rupture_method", "smith", lambda v: als.alliance_trajectories(_D, "wai", rupture_method=v)),
    ("rupture_outcome-analysis", "analysis", "anova", lambda v: als.rupture_outcome(_D, _episodes(), outcome="phq", analysis=v)),
    ("q_factor_analysis-rotation", "rotation", "promax", lambda v: als.q_factor_analysis(None, rotation=v)),
    ("power_analysis-model", "model", "ols", lambda v: als.power_analysis(n_therapists=4, patients_per_therapist=4, sessions=6, effect=-1.0, model=v)),
    ("forest_plot-sort", "sort", "year", lambda v: als.forest_plot(_meta(), sort=v)),
    ("set_theme-context", "context", "poster", lambda v: als.set_theme(v)),
    ("save_figure-width", "width", "triple", lambda v: als.save_figure(_figure(), "unused", width=v)),
    ("save_figure-formats", "formats", "gif", lambda v: als.save_figure(_figure(), "unused", formats=[v])),
    ("export_table-path", "path", "table.xlsx", lambda v: als.export_table(pd.DataFrame({"a": [1]}), v)),
]


@pytest.mark.parametrize("option, bad, call", [b[1:] for b in BAD_OPTIONS], ids=[b[0] for b in BAD_OPTIONS])
def test_bad_option_value_raises_option_error_naming_the_allowed_values(option, bad, call):
    with pytest.raises(als.OptionError) as err:
        call(bad)
    e, text = err.value, str(err.value)
    assert e.option == option and e.value == bad
    assert e.allowed, "the allowed values are listed"
    assert f"{option}={bad!r} is not a valid value; allowed: " in text
    for a in e.allowed:
        assert repr(a) in text, (a, text)
    assert bad not in e.allowed


def test_every_public_option_string_is_covered():
    """Public functions whose parameters take one of a fixed set of strings, and the cases above."""
    covered = {b[0].split("-")[0] for b in BAD_OPTIONS}
    expected = {"read_sessions", "read_table", "read_qsorts", "score", "score_instruments", "reliability", "reliable_change",
                "lmm", "decompose", "alliance_outcome", "meta_analysis", "egger", "trim_and_fill", "aggregate_effects",
                "detect_ruptures", "alliance_trajectories", "rupture_outcome", "q_factor_analysis", "power_analysis",
                "forest_plot", "set_theme", "save_figure", "export_table"}
    assert covered == expected


def test_readme_shows_the_whole_hierarchy():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    tree = text.split("└── AllianceStatsError", 1)[1].split("```", 1)[0]
    shown = set(re.findall(r"[├└]── (\w+)", tree))
    assert shown == set(exceptions.__all__) - {"AllianceStatsError"}
