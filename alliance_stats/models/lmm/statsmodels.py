"""The statsmodels engine: variance parameters from statsmodels' MixedLM.

``als.lmm(..., engine="statsmodels")`` lets statsmodels' ``MixedLM`` estimate the variance
parameters, converts them to lme4's relative covariance factor (theta), and computes everything
else (fixed effects, SEs, Satterthwaite df, BLUPs, log-likelihood) with the same code as the
fast engine, so the result object is the same. Its purpose is a second opinion: when both
engines reach the optimum they agree, and when statsmodels stops short, the convergence check
at its theta says so.

MixedLM fits one grouping factor with a free covariance matrix, plus independent variance
components within it. So it covers ``(terms | g)`` and ``(terms | therapist) + (1 | therapist:
patient)`` (with uncorrelated inner slopes, ``||``), not correlated slopes at the inner level
of a nested design.
"""

from __future__ import annotations

import warnings

import numpy as np

from ...exceptions import ModelSpecError


def _cover_error(why: str) -> ModelSpecError:
    return ModelSpecError(f"engine='statsmodels' cannot fit this design: {why}. Use engine='fast' (or 'auto'), "
                          "which fits nested and crossed designs")


def statsmodels_theta(d, eng, reml: bool) -> tuple[np.ndarray, dict]:
    """Fit the design with statsmodels' MixedLM; return theta on the engine's original scale
    and a dict with what statsmodels reported (converged, iterations)."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    levels = d.levels
    if d.crossed:
        names = " and ".join(repr(lv.name) for lv in levels)
        raise _cover_error(f"the grouping factors {names} are crossed, not nested (MixedLM nests every "
                           "variance component within one grouping factor)")
    if len(levels) > 2:
        raise _cover_error("more than two grouping levels")
    outer = levels[-1]
    if len(outer.blocks) != 1:
        raise _cover_error(f"uncorrelated terms (||) at the level {outer.name!r}")
    inner = levels[0] if len(levels) == 2 else None
    if inner is not None and any(b != 1 for b in inner.blocks):
        raise _cover_error(f"correlated random slopes at the inner level {inner.name!r}")
    groups = outer.codes  # each row's group at the outer level
    exog_vc = None
    if inner is not None:
        # one variance component per inner column: Z column k times the inner-group indicator
        from statsmodels.regression.mixed_linear_model import VCSpec

        names, colnames, mats = [], [], []
        for k in range(inner.q):
            names.append(f"vc{k}")
            cn, mt = [], []
            for g in np.unique(groups):
                rows = np.flatnonzero(groups == g)
                sub = inner.codes[rows]
                uniq, pos = np.unique(sub, return_inverse=True)
                M = np.zeros((len(rows), len(uniq)))
                M[np.arange(len(rows)), pos] = inner.Z[rows, k]
                cn.append([f"{u}" for u in uniq])
                mt.append(M)
            colnames.append(cn)
            mats.append(mt)
        exog_vc = VCSpec(names, colnames, mats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = MixedLM(d.y, d.X, groups=groups, exog_re=outer.Z, exog_vc=exog_vc)
            res = model.fit(reml=reml)
        except (np.linalg.LinAlgError, ValueError) as exc:
            raise ModelSpecError(f"statsmodels' MixedLM could not fit this model ({exc}); use engine='fast'") from None
    s2 = float(res.scale)
    theta = []
    # lme4 order: levels innermost first, each level's lower triangle column by column
    if inner is not None:
        vc = np.asarray(res.vcomp, float)
        theta.extend(np.sqrt(np.maximum(vc, 0.0) / s2))
    S = np.asarray(res.cov_re, float) / s2
    Lc = _chol_psd(S)
    r, c, _ = eng.tri_index[-1]
    theta.extend(Lc[r, c])
    info = {"converged": bool(getattr(res, "converged", True)), "llf_statsmodels": float(res.llf)}
    return np.asarray(theta, float), info


def _chol_psd(S: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a positive semi-definite matrix (a zero variance gives a zero
    column, as lme4's theta on the boundary)."""
    q = S.shape[0]
    L = np.zeros((q, q))
    for j in range(q):
        v = S[j, j] - L[j, :j] @ L[j, :j]
        L[j, j] = np.sqrt(v) if v > 1e-14 else 0.0
        for i in range(j + 1, q):
            L[i, j] = (S[i, j] - L[i, :j] @ L[j, :j]) / L[j, j] if L[j, j] > 0 else 0.0
    return L


__all__ = ["statsmodels_theta"]
