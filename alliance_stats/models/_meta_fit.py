"""Estimation core of the meta-analysis models (random/mixed-effects and three-level).

Plain numpy/scipy functions on arrays; the public API in ``meta.py`` wraps them. The
estimators follow their published definitions (DerSimonian & Laird 1986; Hedges 1983;
Paule & Mandel 1982; (RE)ML by Fisher scoring; Knapp & Hartung 2003) as implemented in R's
metafor, against which every quantity is tested (tests/reference/).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import optimize, stats

from ..exceptions import ConvergenceWarning, InsufficientDataError, MetaAnalysisError, ModelSpecError, user_stacklevel
from ..validation import check_option

METHODS = ("REML", "ML", "DL", "PM", "HE", "FE")
TESTS = ("z", "knha")
MAX_ITER = 1000
"""Default limit on the iterations of every iterative estimator here (Fisher scoring for REML/ML
and the three-level model, the root search of PM)."""


def _wls(y, v, X, tau2):
    """GLS fit with weights 1/(v + tau2): coefficients, their covariance, weights, residuals."""
    w = 1.0 / (v + tau2)
    XtW = X.T * w
    A = XtW @ X
    try:
        vb = np.linalg.inv(A)
    except np.linalg.LinAlgError:
        raise ModelSpecError(
            "the moderator matrix is singular (a moderator is constant or a linear combination of "
            "others); drop or recode the moderator"
        ) from None
    b = vb @ (XtW @ y)
    return b, vb, w, y - X @ b


def _trace_P(w, X, vb):
    """tr(P) for P = W - W X (X'WX)^-1 X'W, without forming k x k matrices."""
    WX = X * w[:, None]
    return float(w.sum() - np.einsum("ij,jk,ik->", WX, vb, WX))


def _ll(y, v, X, tau2, reml):
    b, vb, w, r = _wls(y, v, X, tau2)
    ll = -0.5 * (np.sum(np.log(v + tau2)) + np.sum(w * r**2))
    if reml:
        ll -= 0.5 * np.linalg.slogdet(np.linalg.inv(vb))[1]
    return ll


def _tau2_reml_ml(y, v, X, reml, max_iter=MAX_ITER):
    """Maximize the (restricted) likelihood over tau2 >= 0 by Fisher scoring with halving.

    Returns ``(tau2, converged, iterations)``."""
    k, p = X.shape
    tau2 = max(0.0, _tau2_dl(y, v, X))
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        b, vb, w, r = _wls(y, v, X, tau2)
        if reml:
            WX = X * w[:, None]
            # P = W - WX vb X'W ; score = 1/2 (r'W W r - tr(P)); information = 1/2 tr(PP)
            Pd = w - np.einsum("ij,jk,ik->i", WX, vb, WX)  # diagonal of P
            M = WX @ vb @ WX.T
            P = np.diag(w) - M
            Py = P @ y
            score = 0.5 * (Py @ Py - Pd.sum())
            info = 0.5 * np.sum(P * P)
        else:
            score = 0.5 * (np.sum(w**2 * r**2) - np.sum(w))
            info = 0.5 * np.sum(w**2)
        step = score / info
        new = max(0.0, tau2 + step)
        # step halving if the likelihood does not increase
        ll_old = _ll(y, v, X, tau2, reml)
        h = 1.0
        while _ll(y, v, X, new, reml) < ll_old - 1e-14 and h > 1e-8:
            h /= 2
            new = max(0.0, tau2 + h * step)
        if abs(new - tau2) <= 1e-12 * max(1.0, tau2):
            tau2, converged = new, True
            break
        tau2 = new
    return tau2, converged, it


def _tau2_dl(y, v, X):
    k, p = X.shape
    b, vb, w, r = _wls(y, v, X, 0.0)
    Q = np.sum(w * r**2)
    return max(0.0, (Q - (k - p)) / _trace_P(w, X, vb))


def _tau2_he(y, v, X):
    k, p = X.shape
    H = X @ np.linalg.pinv(X.T @ X) @ X.T
    r = y - H @ y
    rss = r @ r
    trPV = np.sum(v * (1 - np.diag(H)))
    return max(0.0, (rss - trPV) / (k - p))


def _tau2_pm(y, v, X, max_iter=MAX_ITER):
    """Paule-Mandel: the root of Q(tau2) = k - p. Returns ``(tau2, converged, iterations)``."""
    k, p = X.shape

    def f(t2):
        b, vb, w, r = _wls(y, v, X, t2)
        return np.sum(w * r**2) - (k - p)

    if f(0.0) <= 0:
        return 0.0, True, 0
    hi = max(1.0, 10 * np.var(y))
    while f(hi) > 0:
        hi *= 10
        if hi > 1e12:
            raise MetaAnalysisError(
                "the Paule-Mandel estimator found no tau^2 up to 1e12 that brings Q down to its degrees of "
                "freedom; check that vi holds sampling variances (not standard errors or sample sizes), or use "
                "method='REML' or 'DL'"
            )
    root, info = optimize.brentq(f, 0.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=max_iter,
                                 full_output=True, disp=False)
    return root, bool(info.converged), int(info.iterations)


def estimate_tau2(y, v, X, method, max_iter=MAX_ITER):
    """tau^2 by ``method``: ``(tau2, converged, iterations)``; iterations is None for the closed
    forms (FE, DL, HE), which always converge."""
    check_option("method", method, METHODS)
    if method == "FE":
        return 0.0, True, None
    if method == "DL":
        return _tau2_dl(y, v, X), True, None
    if method == "HE":
        return _tau2_he(y, v, X), True, None
    if method == "PM":
        return _tau2_pm(y, v, X, max_iter)
    return _tau2_reml_ml(y, v, X, reml=method == "REML", max_iter=max_iter)


def _warn_unconverged(what: str, method: str, iterations: int) -> None:
    warnings.warn(
        f"meta-analysis: the {method} estimate of {what} did not converge in {iterations} iteration(s); the "
        "estimates may not be at the optimum (result.converged is False). Raise max_iter, or compare with "
        "method='DL' (closed form)",
        ConvergenceWarning,
        stacklevel=user_stacklevel(),
    )


def fit_uni(y, v, X, *, method="REML", test="z", level=0.95, max_iter=MAX_ITER):
    """Random-/mixed-effects model ``y = X b + u + e``, ``u ~ N(0, tau2)``, ``e ~ N(0, v)``.

    Returns a dict of plain numbers and arrays, with ``converged`` and ``iterations`` of the
    tau^2 estimation (a :class:`ConvergenceWarning` is issued when it did not converge).
    """
    check_option("test", test, TESTS)
    y = np.asarray(y, float)
    v = np.asarray(v, float)
    X = np.asarray(X, float)
    k, p = X.shape
    if k <= p:
        raise InsufficientDataError(f"{k} effect sizes cannot estimate {p} coefficients; add studies or drop moderators")
    tau2, converged, iterations = estimate_tau2(y, v, X, method, max_iter)
    if not converged:
        _warn_unconverged("tau^2", method, iterations)
    b, vb, w, r = _wls(y, v, X, tau2)
    # heterogeneity with fixed-effect weights
    b0, vb0, w0, r0 = _wls(y, v, X, 0.0)
    QE = float(np.sum(w0 * r0**2))
    df_q = k - p
    QEp = float(stats.chi2.sf(QE, df_q)) if df_q > 0 else np.nan
    if method == "FE":
        I2 = max(0.0, 100 * (QE - df_q) / QE) if QE > 0 else 0.0
        H2 = QE / df_q if df_q > 0 else np.nan
    else:
        vt = df_q / _trace_P(w0, X, vb0)
        I2 = 100 * tau2 / (vt + tau2)
        H2 = (vt + tau2) / vt
    s2 = 1.0
    if test == "knha":
        s2 = float(np.sum(w * r**2) / df_q)
        vb = vb * s2
        dist = stats.t(df_q)
        df = float(df_q)
    else:
        dist = stats.norm()
        df = np.inf
    se = np.sqrt(np.diag(vb))
    stat = b / se
    pval = 2 * dist.sf(np.abs(stat))
    crit = dist.ppf(1 - (1 - level) / 2)
    out = dict(
        b=b, vb=vb, se=se, stat=stat, pval=pval, ci_lb=b - crit * se, ci_ub=b + crit * se, crit=crit,
        tau2=tau2, QE=QE, QEp=QEp, df_q=df_q, I2=I2, H2=H2, k=k, p=p, weights=w, s2=s2, df=df,
        method=method, test=test, level=level, converged=converged, iterations=iterations,
    )
    if p > 1:
        m = slice(1, p) if np.allclose(X[:, 0], 1) else slice(0, p)
        bm, Vm = b[m], vb[m, m]
        QM = float(bm @ np.linalg.solve(Vm, bm))
        n_m = len(bm)
        if test == "knha":
            QM /= n_m
            out.update(QM=QM, QMdf=(n_m, df_q), QMp=float(stats.f.sf(QM, n_m, df_q)))
        else:
            out.update(QM=QM, QMdf=(n_m, None), QMp=float(stats.chi2.sf(QM, n_m)))
    return out


# ---------------------------------------------------------------------------------------------
# three-level model: effect sizes (level 2) nested in clusters (level 3)


class _ThreeLevel:
    """REML / ML for V = diag(v) + s3 * Z Z' + s2 * I (Z: cluster indicators)."""

    def __init__(self, y, v, X, cluster_codes, reml=True):
        self.y, self.v, self.X = y, v, X
        self.Z = np.zeros((len(y), cluster_codes.max() + 1))
        self.Z[np.arange(len(y)), cluster_codes] = 1.0
        self.reml = reml
        self.k, self.p = X.shape

    def parts(self, theta):
        s3, s2 = theta
        V = np.diag(self.v + s2) + s3 * (self.Z @ self.Z.T)
        L = np.linalg.cholesky(V)
        Vi = np.linalg.inv(V)
        XtVi = self.X.T @ Vi
        A = XtVi @ self.X
        vb = np.linalg.inv(A)
        b = vb @ (XtVi @ self.y)
        P = Vi - XtVi.T @ vb @ XtVi
        logdetV = 2 * np.sum(np.log(np.diag(L)))
        return V, Vi, vb, b, P, logdetV, A

    def loglik(self, theta):
        V, Vi, vb, b, P, logdetV, A = self.parts(theta)
        r = self.y - self.X @ b
        quad = r @ Vi @ r
        if self.reml:
            n = self.k - self.p
            return -0.5 * (n * np.log(2 * np.pi) + logdetV + np.linalg.slogdet(A)[1] + quad) + 0.5 * np.linalg.slogdet(self.X.T @ self.X)[1]
        return -0.5 * (self.k * np.log(2 * np.pi) + logdetV + quad)

    def fit(self, start, max_iter=MAX_ITER):
        """Fisher scoring from ``start``: ``(theta, loglik, converged, iterations)``."""
        theta = np.maximum(np.asarray(start, float), 0.0)
        ll = self.loglik(theta)
        converged, it = False, 0
        for it in range(1, max_iter + 1):
            V, Vi, vb, b, P, _, _ = self.parts(theta)
            M = P if self.reml else Vi
            r = self.y - self.X @ b
            u = (P if self.reml else Vi) @ (self.y if self.reml else r)
            ZtMZ = self.Z.T @ M @ self.Z
            MZ = M @ self.Z
            g = 0.5 * np.array([np.sum((self.Z.T @ u) ** 2) - np.trace(ZtMZ), u @ u - np.trace(M)])
            info = 0.5 * np.array([[np.sum(ZtMZ**2), np.sum(MZ**2)], [np.sum(MZ**2), np.sum(M**2)]])
            step = np.linalg.solve(info + 1e-14 * np.eye(2), g)
            free = ~((theta <= 0) & (g <= 0))  # components held at the boundary
            if not free.all():
                step = np.zeros(2)
                if free.any():
                    i = np.flatnonzero(free)
                    step[i] = g[i] / info[i, i]
            h, new = 1.0, np.maximum(theta + step, 0.0)
            new_ll = self.loglik(new)
            while new_ll < ll - 1e-12 and h > 1e-10:
                h /= 2
                new = np.maximum(theta + h * step, 0.0)
                new_ll = self.loglik(new)
            if np.max(np.abs(new - theta)) <= 1e-12 * max(1.0, np.max(theta)):
                theta, ll, converged = new, new_ll, True
                break
            theta, ll = new, new_ll
        return theta, ll, converged, it


def fit_three_level(y, v, X, cluster_codes, *, reml=True, level=0.95, test="z", max_iter=MAX_ITER):
    """Three-level model by REML or ML from three starts (the best likelihood is kept); the
    dict has ``converged`` and ``iterations`` of the kept start."""
    y = np.asarray(y, float)
    v = np.asarray(v, float)
    X = np.asarray(X, float)
    k, p = X.shape
    check_option("test", test, ("z",), hint="the three-level model has Wald z tests only")
    tl = _ThreeLevel(y, v, X, cluster_codes, reml=reml)
    t2 = max(_tau2_dl(y, v, X), 1e-4)
    best = None
    for start in ((t2 / 2, t2 / 2), (t2, 1e-4), (1e-4, t2)):
        fit = tl.fit(start, max_iter)
        if best is None or fit[1] > best[1] + 1e-10:
            best = fit
    theta, ll, converged, iterations = best
    if not converged:
        _warn_unconverged("the variance components", "REML" if reml else "ML", iterations)
    V, Vi, vb, b, P, _, _ = tl.parts(theta)
    se = np.sqrt(np.diag(vb))
    stat = b / se
    pval = 2 * stats.norm.sf(np.abs(stat))
    crit = stats.norm.ppf(1 - (1 - level) / 2)
    b0, vb0, w0, r0 = _wls(y, v, X, 0.0)
    QE = float(np.sum(w0 * r0**2))
    denom = theta.sum() + (k - p) / _trace_P(w0, X, vb0)
    return dict(
        b=b, vb=vb, se=se, stat=stat, pval=pval, ci_lb=b - crit * se, ci_ub=b + crit * se, crit=crit,
        sigma2=theta, tau2=float(theta.sum()), QE=QE, QEp=float(stats.chi2.sf(QE, k - p)), df_q=k - p,
        I2_levels=100 * theta / denom, I2=float(100 * theta.sum() / denom), loglik=float(ll), k=k, p=p,
        weights=np.sum(Vi, axis=0) if p == 1 else None, df=np.inf, method="REML" if reml else "ML",
        test="z", level=level, s2=1.0, converged=converged, iterations=iterations,
    )
