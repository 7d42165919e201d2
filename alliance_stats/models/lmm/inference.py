"""Stage 4: inference for the fixed effects (lmerTest's Satterthwaite degrees of freedom; the
Kenward-Roger method is in :mod:`.kenward_roger`)."""

from __future__ import annotations

import math

import numpy as np

from ...exceptions import OptionError

DF_METHODS = ("satterthwaite", "kenward-roger", "z")
DDF_NAMES = ("Satterthwaite", "Kenward-Roger")  # lmerTest's ddf= values


def df_method_option(df_method, ddf, reml):
    """The df method asked for, from ``df_method`` or lmerTest's ``ddf`` (either in any case),
    refusing unknown values, two names that disagree, and Kenward-Roger for ML fits (as
    lmerTest)."""
    if df_method is not None and (not isinstance(df_method, str) or df_method.lower() not in DF_METHODS):
        raise OptionError("df_method", df_method, DF_METHODS)
    if ddf is not None and (not isinstance(ddf, str) or ddf.lower() not in [d.lower() for d in DDF_NAMES]):
        raise OptionError("ddf", ddf, DDF_NAMES, hint="ddf takes lmerTest's names (any case); or use df_method")
    dm = df_method.lower() if df_method is not None else None
    if ddf is not None:
        if dm is not None and dm != ddf.lower():
            raise OptionError(
                "ddf", ddf, (DDF_NAMES[DF_METHODS.index(dm)],) if dm in DF_METHODS[:2] else (),
                hint=f"It disagrees with df_method={df_method!r}; give one of the two",
            )
        dm = ddf.lower()
    dm = dm or "satterthwaite"
    if dm == "kenward-roger" and not reml:
        raise OptionError(
            "df_method", "kenward-roger", ("satterthwaite", "z"),
            hint="Kenward-Roger is defined for REML fits only (lmerTest refuses it for ML fits too): "
            "fit with reml=True, or keep reml=False with Satterthwaite df",
        )
    return dm


# numDeriv's Richardson method (Gilbert & Varadhan), as lmerTest calls it: first steps
# d |x| (plus ND_EPS where |x| < ND_ZERO_TOL), halved r - 1 times, the estimates extrapolated;
# hessian() uses d = 0.1 and genD's mixed differences, jacobian() d = 1e-4
ND_EPS, ND_ZERO_TOL, ND_R = 1e-4, math.sqrt(np.finfo(float).eps / 7e-7), 4
ND_D_HESSIAN, ND_D_JACOBIAN = 0.1, 1e-4
SATT_D, SATT_FLOOR = 0.1, 0.1  # first steps of the Satterthwaite derivatives, internal coordinates


def _nd_steps(x, d):
    return np.abs(d * x) + ND_EPS * (np.abs(x) < ND_ZERO_TOL)


def _extrapolate(est):
    """Richardson's table over estimates at steps h, h/2, h/4, ... (error O(h^2) each)."""
    T = [np.asarray(e, float) for e in est]
    m = 1
    while len(T) > 1:
        T = [(4**m * T[k + 1] - T[k]) / (4**m - 1) for k in range(len(T) - 1)]
        m += 1
    return T[0]


def nd_hessian(fun, x, d=ND_D_HESSIAN, r=ND_R, h0=None):
    """Hessian of a scalar function by numDeriv's ``genD`` (``hessian(method = "Richardson")``):
    the diagonal from central second differences, each cross term from f(x + h_i + h_j) and
    f(x - h_i - h_j) less the diagonal's share, each extrapolated over r halvings of the steps."""
    x = np.asarray(x, float)
    n = len(x)
    f0 = fun(x)
    h0 = _nd_steps(x, d) if h0 is None else np.asarray(h0, float)
    H = np.zeros((n, n))
    for i in range(n):
        est = []
        for k in range(r):
            e = np.zeros(n)
            e[i] = h0[i] / 2**k
            est.append((fun(x + e) - 2 * f0 + fun(x - e)) / e[i] ** 2)
        H[i, i] = _extrapolate(est)
    for i in range(n):
        for j in range(i):
            est = []
            for k in range(r):
                h = h0 / 2**k
                e = np.zeros(n)
                e[i], e[j] = h[i], h[j]
                est.append((fun(x + e) - 2 * f0 + fun(x - e) - H[i, i] * h[i] ** 2 - H[j, j] * h[j] ** 2) / (2 * h[i] * h[j]))
            H[i, j] = H[j, i] = _extrapolate(est)
    return H


def nd_jacobian(fun, x, d=ND_D_JACOBIAN, r=ND_R, h0=None):
    """Derivatives of an array-valued function along each coordinate (stacked on the first
    axis) by numDeriv's ``jacobian(method = "Richardson")``: central differences extrapolated
    over r halvings of the steps."""
    x = np.asarray(x, float)
    h0 = _nd_steps(x, d) if h0 is None else np.asarray(h0, float)
    out = []
    for i in range(len(x)):
        est = []
        for k in range(r):
            e = np.zeros(len(x))
            e[i] = h0[i] / 2**k
            est.append((fun(x + e) - fun(x - e)) / (2 * e[i]))
        out.append(_extrapolate(est))
    return np.stack(out)


def _satterthwaite(eng, theta, sigma, reml, vcov):
    """lmerTest's Satterthwaite: df_j = 2 V_jj^2 / (g_j' A g_j), A = 2 H^+ of the deviance in
    (theta, sigma) (eigenvalues above 1e-8 inverted, as lmerTest), g_j the gradient of V_jj in
    (theta, sigma).

    H and the Jacobian of the covariance come from numDeriv's Richardson method (r = 4 halvings),
    in the engine's internal coordinates (theta for random-effect columns at unit root mean
    square), with first steps SATT_D x max(|x|, SATT_FLOOR): numDeriv's relative steps (lmerTest)
    shrink with a parameter near 0 (a covariance of a variance near zero, 3e-4 on rs100_ml) until
    the rounding of the deviance dominates the second differences. One factorisation per theta
    serves the deviance and the covariance at every sigma (sigma enters both in closed form), and
    the Jacobian's points are the Hessian's."""
    x = np.r_[eng.to_int(theta), sigma]
    s = np.r_[eng.theta_rowscale, 1.0]  # d/d theta (lme4's scale) = rowscale x d/d theta_int
    cache = {}

    def terms(t):
        key = t.tobytes()
        if key not in cache:
            cache[key] = eng.varpar_terms(eng.to_orig(t), reml)
        return cache[key]

    def dev(v):
        return eng.deviance_vp_from(terms(v[:-1]), v[-1], reml)

    def cov(v):
        return v[-1] ** 2 * terms(v[:-1])["cov"]

    h0 = SATT_D * np.maximum(np.abs(x), np.r_[np.full(len(theta), SATT_FLOOR), 0.0])
    H = nd_hessian(dev, x, h0=h0) * np.outer(s, s)
    w, V = np.linalg.eigh(H)
    pos = w > 1e-8
    A = 2 * (V[:, pos] / w[pos]) @ V[:, pos].T
    J = nd_jacobian(cov, x, h0=h0) * s[:, None, None]  # (k, p, p)
    var = np.diag(vcov)
    g = np.stack([np.diag(Jk) for Jk in J], axis=1)  # (p, k)
    denom = np.einsum("pk,kl,pl->p", g, A, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = 2 * var**2 / denom
    neg = int((w < -1e-8).sum())
    return df, dict(H=H, A=A, J=J, hess_eigen=w, negative_eigen=neg, factorisations=len(cache))
