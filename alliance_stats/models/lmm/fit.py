"""Fitting a linear mixed model written in lme4 syntax: ``als.lmm``.

The stages follow lme4 (``lFormula -> mkLmerDevfun -> optimizeLmer -> mkMerMod``):
:mod:`.formula` reads the formula, :mod:`.design` builds the model frame and matrices,
:mod:`.nested` (nested factors) or :mod:`.crossed` (crossed ones) evaluates the profiled
deviance, :mod:`.optimize` minimises it, :mod:`.inference` gives Satterthwaite degrees of
freedom and :mod:`.result` holds the fit.
"""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import pandas as pd
from scipy import special

from ...exceptions import ConvergenceWarning, ModelSpecError, OptionError, SingularFitWarning, _fmt_labels, user_stacklevel
from .ar1 import AR1, residuals_option
from .crossed import CrossedEngine
from .design import build_design, unbuilt
from .inference import _satterthwaite, df_method_option
from .kenward_roger import check_size, kenward_roger
from .nested import NestedEngine
from .optimize import BOUNDARY_TOL, ENGINES, OPTIMIZERS, check_point, optimize_theta
from .result import LMMResult, variance_rows


def lmm(formula: str, data: pd.DataFrame, *, reml: bool = True, df_method: str | None = None,
        engine: str = "auto", ddf: str | None = None, optimizer: str = "bobyqa", start=None,
        restart: bool = True, residuals: str = "iid", time: str | None = None) -> LMMResult:
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
        The fixed part and the random terms' left sides are read as R reads them (the model
        matrices equal lme4's): ``a + b``, ``a:b``, ``a*b``, ``a/b``, ``b %in% a``, ``(a + b)^2``
        (crossing), ``- a``, ``0 +`` or ``- 1`` (no intercept); ``I(x^2)`` (inside ``I()`` ``^`` is
        the power; ``x^2`` outside is refused, as R reads it as ``x``), ``poly(x, 2)`` (R's
        orthogonal polynomials; ``raw = TRUE`` for x, x^2), ``scale(x)``, ``log(x)`` (``log(x,
        base)``), ``log2``, ``log10``, ``log1p``, ``exp``, ``expm1``, ``sqrt``, ``abs``, numpy's
        ``np.log(x)`` ...; ``factor(x)``, ``C(x)``, text, categorical and logical columns
        (treatment contrasts, the first level the reference; ``relevel(x, ref = "b")``);
        ``offset(x)`` (coefficient 1; added back by ``predict``). As R's ``model.frame``,
        ``poly()`` and ``scale()`` are computed over all rows of ``data``, before incomplete rows
        are left out. Columns are named as R names them with a factor level or a matrix column in
        brackets: ``I(x^2)``, ``poly(x, 2)[1]``, ``g[T.b]`` (R: ``gb``), ``Intercept``. Anything
        else (``.``, ``bs()``, quotes outside a call, the outcome on the right-hand side, a factor
        with one level, a constant outcome) raises :class:`ModelSpecError` naming the term.
    data : DataFrame
        One row per observation. Rows missing any used column are left out and counted
        (``.n_dropped``, ``.dropped``). ``data`` is not modified. An outcome holding only the
        values 0 and 1, or a ``cbind(successes, failures)`` outcome, is refused with a pointer to
        :func:`alliance_stats.glmm` (a linear model of a binary outcome is not what lme4 users
        mean by it); other whole-number outcomes (sum scores such as PHQ-9 totals, counts) are
        fitted: whether a count is better modelled by ``glmm(family="poisson")`` is the
        analyst's call, not a rule the package can apply.
    reml : bool
        REML (default, as lmer) or maximum likelihood (needed to compare fixed effects).
    df_method : {"satterthwaite", "kenward-roger", "z"}
        Satterthwaite t tests as lmerTest (default); Kenward-Roger as lmerTest's
        ``ddf = "Kenward-Roger"`` (pbkrtest): the SEs come from the adjusted covariance of the fixed
        effects and the df from Kenward & Roger (1997), for REML fits only, advisable with few
        groups at the top level (say fewer than 20 therapists); or Wald z (df = inf).
    ddf : {"Satterthwaite", "Kenward-Roger"}, optional
        lmerTest's name for ``df_method`` (any case), for code carried over from R.
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
    optimizer : {"bobyqa", "nelder-mead", "sbplx", "cobyla", "L-BFGS-B"}
        The optimizer of the first pass (fast engine). ``"bobyqa"`` (default) is nlopt's
        BOBYQA as lme4 and MixedModels.jl use (Brent's method for a single variance). What the
        optimizer did is in ``.optsum``; :func:`all_fit` compares them all.
    start : array-like, optional
        theta to start from, on lme4's scale and in its order (``getME(m, "theta")``); default
        lme4's start (1 on the diagonal of each relative Cholesky factor, 0 below).
    restart : bool
        After the first pass (polished by Newton steps), re-start from a re-factored covariance
        matrix when a variance ends at 0 or a correlation near +/-1, and from other optimizers
        when the optimality checks fail, keeping the best (default). ``False`` runs the first
        pass only and reports its checks (as :func:`all_fit` does).
    residuals : {"iid", "ar1"}
        Independent residuals (default, as lmer), or AR(1) residuals within the innermost
        grouping factor of the random effects (the patients of ``(1 | patient)`` or
        ``(1 | therapist/patient)``) ordered by the integer column ``time``: residuals k sessions
        apart correlate phi^k, as nlme's ``lme(..., correlation = corAR1(form = ~ session |
        patient))``, whose estimates, SEs and log-likelihood these are. phi is in
        ``.residual_params`` and counts as a parameter in AIC/BIC and :func:`compare`;
        Satterthwaite df take it into account. Crossed factors, Kenward-Roger and
        ``engine="statsmodels"`` are refused.
    time : str, optional
        The integer time column of ``residuals="ar1"`` (e.g. ``"session"``); gaps are allowed
        (a missed session), repeated times within a patient are refused.

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
    if not isinstance(reml, (bool, np.bool_)):
        raise OptionError("reml", reml, (True, False), hint="True fits by REML (lmer's default), False by maximum likelihood")
    if not isinstance(restart, (bool, np.bool_)):
        raise OptionError("restart", restart, (True, False))
    df_method = df_method_option(df_method, ddf, reml)
    if engine not in ENGINES:
        raise OptionError("engine", engine, ENGINES)
    residuals_option(residuals, time, engine, df_method)
    if isinstance(formula, str) and formula.split("~", 1)[0].strip().startswith("cbind("):
        raise ModelSpecError(f"{formula.split('~', 1)[0].strip()!r} is a binomial outcome (successes, failures): fit it "
                             "with als.glmm(formula, data, family='binomial')")
    if optimizer not in OPTIMIZERS:
        raise OptionError("optimizer", optimizer, OPTIMIZERS)
    d = build_design(formula, data)
    if ((d.y == 0.0) | (d.y == 1.0)).all():
        raise ModelSpecError(f"outcome {d.response!r} holds only the values 0 and 1: a binary outcome needs a logistic "
                             f"mixed model, als.glmm({formula!r}, data, family='binomial'). Counts and sum scores "
                             "(other whole numbers) are fitted by lmm as usual")
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
    if df_method == "kenward-roger":
        check_size(d.levels)
    ar = AR1(d, data, time) if residuals == "ar1" else None
    engine = "fast" if engine == "auto" else engine
    if ar is not None:
        eng, theta_int, optsum = ar.fit(reml, optimizer=optimizer, start=start, restart=restart)
    elif engine == "fast":
        eng = (CrossedEngine if d.crossed else NestedEngine)(d.X, d.y, d.levels)
        theta_int, optsum = optimize_theta(eng, reml, optimizer=optimizer, start=start, restart=restart)
    else:
        from .statsmodels import statsmodels_theta

        eng = (CrossedEngine if d.crossed else NestedEngine)(d.X, d.y, d.levels)
        theta_sm, sm_info = statsmodels_theta(d, eng, reml)
        theta_int = eng.to_int(theta_sm)
        optsum = check_point(eng, reml, theta_int, "statsmodels MixedLM")
    opt = dict(theta_int=theta_int, dev=optsum.objective)
    sol = eng.solve(opt["theta_int"], reml)
    theta = eng.to_orig(opt["theta_int"])
    sigma = float(np.sqrt(sol["sigma2"]))
    beta = sol["beta"]
    vcov = sol["vcov"]
    se = np.sqrt(np.diag(vcov))
    messages = list(d.crossed)
    sat = kr = None
    if df_method == "satterthwaite":
        df, sat = _satterthwaite(eng, theta, sigma, reml, vcov) if ar is None else _satterthwaite(ar, np.r_[theta, ar.phi], sigma, reml, vcov)
    elif df_method == "kenward-roger":
        covs = [sigma**2 * (Lm / lv.scale[:, None]) @ (Lm / lv.scale[:, None]).T for lv, Lm in zip(d.levels, eng.lambdas(opt["theta_int"]))]
        kr = kenward_roger(d.X, d.levels, covs, sigma**2, vcov)
        df, se = kr["df"], kr["se"]
    else:
        df = np.full(len(beta), np.inf)
    t = beta / se
    with np.errstate(invalid="ignore"):
        # Student t with df (the normal at df = inf), from scipy.special: the same values as
        # scipy.stats.t without the distribution-object overhead
        p = 2 * special.stdtr(df, -np.abs(t))
        crit = special.stdtrit(df, 0.975)
    # the tables are built when first read (see design.LazyFrame): at ~3k rows pandas costs as
    # much as the optimisation
    fixed = partial(_fixed_frame, tuple(d.xnames), np.column_stack([beta, se, df, t, p, beta - crit * se, beta + crit * se]))

    # variance components --------------------------------------------------------------------
    rows, sigmas, singular_terms = [], [], []
    lam = eng.lambdas(opt["theta_int"])
    for lv, inf, Lm in zip(eng.levels, d.level_info, lam):
        Lo = Lm / lv.scale[:, None]
        S = sigma**2 * Lo @ Lo.T
        sigmas.append(S)
        names = inf["term_names"]
        singular_terms += _singular_terms(Lm @ Lm.T, lv.blocks, names, inf["name"])
        rows += variance_rows(S, lv.blocks, names, inf["name"])
    rows.append({"group": "Residual", "term1": None, "term2": None, "variance": sigma**2, "sd": sigma, "corr": np.nan})
    random = partial(_random_frame, rows)

    # checks and plain-language messages ------------------------------------------------------------
    converged = optsum.converged
    if not converged:
        c = optsum.checks
        if np.isfinite(c["newton_decrement"]):
            what = f"a Newton step would still gain {c['newton_decrement']:.3g} deviance units (largest gradient {c['gradient']:.3g})"
        else:
            what = f"the deviance still falls along a direction of negative curvature (eigenvalue {c['min_eigenvalue']:.3g})"
        tried = f" after {len(optsum.restarts)} restart(s)" if optsum.restarts else ""
        msg = (
            f"the model may not have converged: at the best optimum found{tried}, {what}; see .optsum. "
            "Try centring or rescaling predictors, simplifying the random part (drop a random slope or "
            "correlation with ||), or check for groups with very few observations."
        )
        messages.append(msg)
        warnings.warn(msg, ConvergenceWarning, stacklevel=user_stacklevel())
    singular = bool(singular_terms)
    if singular:
        msg = (
            f"singular fit: {'; '.join(singular_terms)}. The data carry no information on it beyond the residual; the fixed "
            "effects are still estimated. Report the estimate as it is, or remove that random term (a random slope, a "
            "correlation with ||, or the level itself) and report the simpler model."
        )
        messages.append(msg)
        warnings.warn(msg, SingularFitWarning, stacklevel=user_stacklevel())

    n = len(d.y)
    llf = -0.5 * opt["dev"]
    residual_params = {} if ar is None else {"phi": ar.phi}
    npar = len(beta) + len(theta) + 1 + len(residual_params)
    res = LMMResult(
        formula=formula, fixed=fixed, random=random, llf=float(llf), aic=float(-2 * llf + 2 * npar),
        bic=float(-2 * llf + np.log(n) * npar), reml=reml, converged=converged, n_obs=n,
        n_groups={lv.name: lv.n_groups for lv in d.levels[::-1]}, n_dropped=d.n_dropped, dropped=unbuilt(d, "dropped"),
        df_method=df_method, theta=theta, sigma=sigma, vcov=partial(_vcov_frame, tuple(d.xnames), vcov),
        messages=messages, singular=singular, dropped_terms=d.dropped_cols, engine=engine,
        _design=d, _sol=sol, _engine=eng, _sigmas=sigmas, _sat=sat, _kr=kr, optsum=optsum,
        residual_structure=residuals, time=time, residual_params=residual_params,
    )
    if d.dropped_cols:
        messages.append(f"dropped rank-deficient fixed effect(s): {_fmt_labels(d.dropped_cols)}")
    if d.offset is not None:
        messages.append(f"{' + '.join(d.offset_terms)} entered with coefficient 1 (an offset, not estimated)")
    return res


def _fixed_frame(names: tuple, values: np.ndarray) -> pd.DataFrame:
    """The fixed-effects table from the names and the columns estimate ... ci_high."""
    columns = {"term": np.array(names, object)}  # read as pandas' str dtype, as an Index of the names
    columns.update(zip(_FIXED_COLUMNS, values.T))
    return pd.DataFrame(columns)


_FIXED_COLUMNS = ["estimate", "se", "df", "t", "p", "ci_low", "ci_high"]


def _vcov_frame(names: tuple, vcov: np.ndarray) -> pd.DataFrame:
    xnames = pd.Index(names)
    return pd.DataFrame(vcov, index=xnames, columns=xnames)


def _random_frame(rows: list) -> pd.DataFrame:
    """The variance-component table from its rows (dicts)."""
    return pd.DataFrame(rows, columns=["group", "term1", "term2", "variance", "sd", "corr"])


def all_fit(model: LMMResult, optimizers=OPTIMIZERS) -> pd.DataFrame:
    """Refit a model with every optimizer and compare the answers (as lme4's ``allFit``).

    Each optimizer runs once from lme4's start on the model's rows, without the restarts that
    :func:`lmm` adds; its optimum is polished by Newton steps where they lower the deviance and
    checked (gradient, Newton decrement, curvature). Agreeing
    log-likelihoods and estimates say the optimum does not depend on the optimizer.

    Parameters
    ----------
    model : LMMResult
        A fitted model (its formula, rows and REML/ML are reused).
    optimizers : sequence of str
        Names from ``"bobyqa"`` (Brent's method for a single variance), ``"nelder-mead"``,
        ``"sbplx"``, ``"cobyla"`` (nlopt) and ``"L-BFGS-B"`` (scipy); default all.

    Returns
    -------
    DataFrame
        One row per optimizer (index): ``converged`` (the checks passed), ``logLik``,
        ``logLik_gap`` (to the best row; 0 for the best), ``evaluations``, ``seconds``, then one
        column per fixed effect and ``sd <term> | <group>``, ``corr <term>, <term> | <group>`` and
        ``sd Residual`` for the variance components (lme4's ``summary(allFit(m))`` in one table),
        ``phi`` for AR(1) residuals, and ``message`` (what a warning said, if any).

    Examples
    --------
    >>> import alliance_stats as als
    >>> d = als.simulate_study(n_therapists=6, patients_per_therapist=5, seed=1).sessions
    >>> d = d.join(als.score(d, "PHQ-9", items="phq{}"))
    >>> m = als.lmm("phq9_total ~ session + (1 + session | patient)", data=d)
    >>> tab = als.all_fit(m)
    >>> bool(tab["logLik_gap"].abs().max() < 1e-4)
    True
    """
    if not isinstance(model, LMMResult):
        raise ModelSpecError(f"all_fit() takes a fitted model (LMMResult), got {type(model).__name__}")
    names = [optimizers] if isinstance(optimizers, str) else list(optimizers) if isinstance(optimizers, (list, tuple)) else []
    if not names:
        raise OptionError("optimizers", optimizers, OPTIMIZERS, hint="name one optimizer or a list of them")
    for name in names:
        if name not in OPTIMIZERS:
            raise OptionError("optimizers", name, OPTIMIZERS)
    rows = []
    for name in names:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = model.refit(df_method="z", engine="fast", optimizer=name, restart=False)
        row = {"optimizer": m.optsum.optimizer, "converged": m.converged, "logLik": m.llf, "evaluations": m.optsum.n_evals,
               "seconds": m.optsum.seconds}
        row.update(dict(zip(m.fixed["term"], m.fixed["estimate"])))
        for r in m.random.itertuples(index=False):
            if r.group == "Residual":
                row["sd Residual"] = r.sd
            elif r.term2 is None or (isinstance(r.term2, float) and np.isnan(r.term2)):
                row[f"sd {r.term1} | {r.group}"] = r.sd
            else:
                row[f"corr {r.term1}, {r.term2} | {r.group}"] = r.corr
        row.update(m.residual_params)  # phi of AR(1) residuals
        row["message"] = " ".join(str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning))
        rows.append(row)
    out = pd.DataFrame(rows).set_index("optimizer")
    out.insert(2, "logLik_gap", out["logLik"] - out["logLik"].max())
    return out


def _singular_terms(S, blocks, names, group):
    """What makes a level's covariance matrix singular, in words: a variance at 0, or terms so
    correlated that one is a linear function of the others (|corr| = 1 for two terms: a
    conditional variance at 0). ``S`` is the relative covariance matrix on the internal scale
    (columns at unit root mean square, variances relative to the residual), so the tolerance
    does not depend on the units of the data; it is lme4's isSingular tolerance on the
    Cholesky diagonal (1e-4), squared, applied to these variances."""
    tol = BOUNDARY_TOL**2
    out, off = [], 0
    for b in blocks:
        idx = np.arange(off, off + b)
        zero = np.diag(S)[idx] < tol
        for i in idx[zero]:
            out.append(f"the variance of '{names[i]} | {group}' is estimated at zero")
        rest = idx[~zero]
        if len(rest) > 1:
            Sr = S[np.ix_(rest, rest)]
            if _conditional_variances(Sr).min() < tol:
                if len(rest) == 2:
                    r = Sr[0, 1] / np.sqrt(Sr[0, 0] * Sr[1, 1])
                    out.append(f"the correlation of '{names[rest[0]]}' and '{names[rest[1]]}' | {group} is estimated at {r:+.0f}")
                else:
                    out.append(f"the random effects {_fmt_labels([names[i] for i in rest])} | {group} are linearly dependent (a correlation matrix of rank below {len(rest)})")
        off += b
    return out


def _conditional_variances(S):
    """Variance of each term given the terms before it (the Schur complements, the squared
    Cholesky diagonal of S), computed so that a singular S gives zeros instead of an error."""
    S = np.array(S, float)
    out = np.empty(len(S))
    for i in range(len(S)):
        d = S[i, i]
        out[i] = max(d, 0.0)
        if d > 0:
            S[i + 1 :, i + 1 :] -= np.outer(S[i + 1 :, i], S[i, i + 1 :]) / d
    return out
