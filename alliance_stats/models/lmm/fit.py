"""Fitting a linear mixed model written in lme4 syntax: ``als.lmm``.

The stages follow lme4 (``lFormula -> mkLmerDevfun -> optimizeLmer -> mkMerMod``):
:mod:`.formula` reads the formula, :mod:`.design` builds the model frame and matrices,
:mod:`.nested` (nested factors) or :mod:`.crossed` (crossed ones) evaluates the profiled
deviance, :mod:`.optimize` minimises it, :mod:`.inference` gives Satterthwaite degrees of
freedom and :mod:`.result` holds the fit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import special

from ...exceptions import ConvergenceWarning, ModelSpecError, SingularFitWarning, _fmt_labels, user_stacklevel
from .crossed import CrossedEngine
from .design import build_design
from .inference import _satterthwaite
from .nested import NestedEngine
from .optimize import _GRAD_TOL, ENGINES, _optimize, _scaled_gradient
from .result import LMMResult

SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on theta


def lmm(formula: str, data: pd.DataFrame, *, reml: bool = True, df_method: str = "satterthwaite",
        engine: str = "auto") -> LMMResult:
    """Fit a linear mixed model written in lme4 syntax; the answers are lme4's and lmerTest's.

    Parameters
    ----------
    formula : str
        ``outcome ~ fixed + (terms | group)``. Random terms: ``(1 | patient)``,
        ``(1 + session | patient)``, ``(0 + x | g)``, ``(1 + x || g)`` (uncorrelated), nested
        ``(1 | therapist/patient)`` or ``(1 | therapist) + (1 | therapist:patient)``, slopes at any
        level. Grouping factors may be nested, crossed (``(1 | patient) + (1 | rater)``: every
        rater rates many patients) or partially crossed (patients who change therapist); a note
        in ``.messages`` names each crossed pair. Nested designs are fitted from per-group
        sufficient statistics (``nested.py``), the others by a blocked sparse Cholesky
        factorisation (``crossed.py``); both give lme4's answers.
        Fixed terms follow formulaic (``C(x)``, ``np.log(x)``, ``x:z``, ``x*z``).
    data : DataFrame
        One row per observation. Rows missing any used column are left out and counted
        (``.n_dropped``, ``.dropped``). ``data`` is not modified.
    reml : bool
        REML (default, as lmer) or maximum likelihood (needed to compare fixed effects).
    df_method : {"satterthwaite", "z"}
        Satterthwaite t tests as lmerTest, or Wald z (df = inf).
    engine : {"auto", "fast", "statsmodels"}
        Who estimates the variance parameters. ``"fast"``: lme4's profiled deviance, evaluated
        from per-group sufficient statistics (every nested design; see
        ``alliance_stats/models/lmm/nested.py``) or by the blocked Cholesky factorisation of
        ``crossed.py`` (crossed designs). ``"statsmodels"``: statsmodels' MixedLM
        (one grouping factor, or random intercepts and uncorrelated slopes of patients within
        therapists); everything else is computed at its estimate by the same code, so the
        result is the same kind of object and a convergence warning tells when statsmodels
        stopped short of the optimum; it refuses crossed factors. ``"auto"`` (default) is
        ``"fast"``, which covers every design ``lmm`` accepts.

    Returns
    -------
    LMMResult

    Examples
    --------
    >>> import alliance_stats as als
    >>> d = als.simulate_study(n_therapists=6, patients_per_therapist=5, seed=1).sessions
    >>> d = d.join(als.score(d, "PHQ-9", items="phq{}"))
    >>> m = als.lmm("phq9_total ~ session + (1 | patient)", data=d)
    >>> m.fixed["term"].tolist()
    ['Intercept', 'session']
    >>> m.n_groups
    {'patient': 30}
    """
    if df_method not in ("satterthwaite", "z"):
        raise ModelSpecError(f"df_method must be 'satterthwaite' or 'z', got {df_method!r}")
    if engine not in ENGINES:
        raise ModelSpecError(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}")
    d = build_design(formula, data)
    if len(d.y) < 2:  # pragma: no cover - guarded in build_design
        raise ModelSpecError("not enough rows")
    for lv in d.levels:
        if lv.n_groups < 2:
            raise ModelSpecError(f"grouping factor {lv.name!r} has {lv.n_groups} group: a variance needs at least two groups")
        if lv.n_groups >= len(d.y) and lv is d.levels[0]:
            raise ModelSpecError(
                f"grouping factor {lv.name!r} has as many groups ({lv.n_groups}) as rows ({len(d.y)}): "
                "its variance cannot be told apart from the residual"
            )
    eng = (CrossedEngine if d.crossed else NestedEngine)(d.X, d.y, d.levels)
    engine = "fast" if engine == "auto" else engine
    if engine == "fast":
        opt = _optimize(eng, reml)
    else:
        from .statsmodels import statsmodels_theta

        theta_sm, sm_info = statsmodels_theta(d, eng, reml)
        theta_int = eng.to_int(theta_sm)
        lo = np.where(np.isfinite(eng.lower), eng.lower, -np.inf)
        dev = eng.deviance(theta_int, reml)
        opt = dict(theta_int=theta_int, dev=dev, spread=0.0, grad=_scaled_gradient(lambda t: eng.deviance(np.maximum(t, lo), reml) / abs(dev), theta_int, lo, abs(dev)), n_runs=1)
    sol = eng.solve(opt["theta_int"], reml)
    theta = eng.to_orig(opt["theta_int"])
    sigma = float(np.sqrt(sol["sigma2"]))
    beta = sol["beta"]
    vcov = sol["vcov"]
    se = np.sqrt(np.diag(vcov))
    messages = list(d.crossed)
    sat = None
    if df_method == "satterthwaite":
        df, sat = _satterthwaite(eng, theta, sigma, reml, vcov)
    else:
        df = np.full(len(beta), np.inf)
    t = beta / se
    with np.errstate(invalid="ignore"):
        # Student t with df (the normal at df = inf), from scipy.special: the same values as
        # scipy.stats.t without the distribution-object overhead
        p = 2 * special.stdtr(df, -np.abs(t))
        crit = special.stdtrit(df, 0.975)
    fixed = pd.DataFrame({"term": d.xnames, "estimate": beta, "se": se, "df": df, "t": t, "p": p, "ci_low": beta - crit * se, "ci_high": beta + crit * se})

    # variance components --------------------------------------------------------------------
    rows, sigmas, singular_terms = [], [], []
    lam = eng.lambdas(opt["theta_int"])
    for lv, inf, Lm, (r, c, dg) in zip(d.levels, d.level_info, lam, eng.tri_index):
        Lo = Lm / lv.scale[:, None]
        S = sigma**2 * Lo @ Lo.T
        sigmas.append(S)
        names = inf["term_names"]
        diag_int = Lm[r[dg], c[dg]]
        for k, v in enumerate(diag_int):
            if v < SINGULAR_TOL:
                singular_terms.append(f"{names[r[dg][k]]} | {inf['name']}")
        off = 0
        for b in lv.blocks:
            for i in range(off, off + b):
                rows.append({"group": inf["name"], "term1": names[i], "term2": None, "variance": S[i, i], "sd": np.sqrt(S[i, i]), "corr": np.nan})
            for j in range(off, off + b):
                for i in range(j + 1, off + b):
                    cor = S[i, j] / np.sqrt(S[i, i] * S[j, j]) if S[i, i] > 0 and S[j, j] > 0 else np.nan
                    rows.append({"group": inf["name"], "term1": names[j], "term2": names[i], "variance": S[i, j], "sd": np.nan, "corr": cor})
            off += b
    rows.append({"group": "Residual", "term1": None, "term2": None, "variance": sigma**2, "sd": sigma, "corr": np.nan})
    random = pd.DataFrame(rows, columns=["group", "term1", "term2", "variance", "sd", "corr"])

    # checks and plain-language messages ------------------------------------------------------------
    converged = True
    if opt["spread"] > 1e-2:
        messages.append(
            f"the optimizers reached optima {opt['spread']:.3g} deviance units apart from different starts; "
            "the best one is kept"
        )
    if opt["grad"] > _GRAD_TOL:
        converged = False
    if sat is not None and sat["negative_eigen"] and not singular_terms:
        converged = False
    if not converged:
        msg = (
            f"the model may not have converged (largest gradient {opt['grad']:.2g} at the best optimum found). "
            "Try centring or rescaling predictors, simplifying the random part (drop a random slope or "
            "correlation with ||), or check for groups with very few observations."
        )
        messages.append(msg)
        warnings.warn(msg, ConvergenceWarning, stacklevel=user_stacklevel())
    corrs = np.array([r["corr"] for r in rows], float)
    singular = bool(singular_terms) or bool((np.abs(corrs[np.isfinite(corrs)]) > 1 - 1e-6).any())
    if singular:
        what = f"the variance of {_fmt_labels(singular_terms)} is estimated at zero" if singular_terms else "a random-effect correlation is estimated at +/-1"
        msg = (
            f"singular fit: {what}. The data carry no information on it beyond the residual; the fixed "
            "effects are still estimated. Report it as zero, or remove that random term (a random slope, or "
            "the level itself) and report the simpler model."
        )
        messages.append(msg)
        warnings.warn(msg, SingularFitWarning, stacklevel=user_stacklevel())

    n = len(d.y)
    llf = -0.5 * opt["dev"]
    npar = len(beta) + len(theta) + 1
    res = LMMResult(
        formula=formula, fixed=fixed, random=random, llf=float(llf), aic=float(-2 * llf + 2 * npar),
        bic=float(-2 * llf + np.log(n) * npar), reml=reml, converged=converged, n_obs=n,
        n_groups={lv.name: lv.n_groups for lv in d.levels[::-1]}, n_dropped=d.n_dropped, dropped=d.dropped,
        df_method=df_method, theta=theta, sigma=sigma, vcov=pd.DataFrame(vcov, index=d.xnames, columns=d.xnames),
        messages=messages, singular=singular, dropped_terms=d.dropped_cols, engine=engine,
        _design=d, _sol=sol, _engine=eng, _sigmas=sigmas, _sat=sat,
    )
    if d.dropped_cols:
        messages.append(f"dropped rank-deficient fixed effect(s): {_fmt_labels(d.dropped_cols)}")
    return res

