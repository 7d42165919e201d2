"""Stage 3 of a linear mixed model (lme4's ``optimizeLmer``): minimise the profiled deviance
over the relative covariance parameters theta, and check the optimum."""

from __future__ import annotations

import numpy as np
from scipy import optimize

from ...exceptions import ModelSpecError
from .nested import NestedEngine

def _optimize(eng: NestedEngine, reml: bool):
    """Minimise the profiled deviance.

    First pass: bounded quasi-Newton (L-BFGS-B with finite-difference gradients) from lme4's
    start. If its optimum passes the convergence check (curvature-scaled gradient, as lme4's
    ``solve(chol(H), grad)``), that is the answer. Otherwise the fallback runs: a second start,
    and a derivative-free Nelder-Mead polish of the best, keeping the best of all; the optima
    of the different starts are compared (``spread``).

    The objective is divided by its value at the start so that it is of order one whatever the
    number of rows; finite-difference gradients then stay accurate at 150,000 rows."""
    bounds = [(0.0 if np.isfinite(lo) else None, None) for lo in eng.lower]
    lo = np.where(np.isfinite(eng.lower), eng.lower, -np.inf)
    x0 = eng.start()
    scale = abs(eng.deviance(x0, reml))
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0

    def f(t):
        return eng.deviance(np.maximum(t, lo), reml) / scale

    def jac(t):
        return _grad(f, np.maximum(t, lo), lo, h=1e-6)

    def fun_and_forward_grad(t):
        # the value and a forward-difference gradient from k + 1 evaluations (central: 2k + 1);
        # the objective is normalised to order one, so a step of 1e-7 keeps the error near 1e-7
        t = np.maximum(t, lo)
        f0 = f(t)
        g = np.empty_like(t)
        for i in range(len(t)):
            e = np.zeros_like(t)
            e[i] = 1e-7
            g[i] = (f(t + e) - f0) / 1e-7
        return f0, g

    def quasi_newton(start, forward=False):
        # forward: the value and a forward-difference gradient from k + 1 evaluations in one call
        fun, grad = (fun_and_forward_grad, True) if forward else (f, jac)
        try:
            r = optimize.minimize(fun, start, jac=grad, method="L-BFGS-B", bounds=bounds,
                                  options=dict(maxiter=2000, ftol=FTOL, gtol=GTOL, maxcor=20))
            return (float(r.fun), np.maximum(r.x, lo))
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):  # pragma: no cover - defensive
            return None

    # forward differences (k + 1 evaluations a step) on small data, where they reach the optimum
    # and the fixed cost of a step dominates; central differences (2k + 1) on large data, where the
    # optimum is sharp and forward differences stop just short of the convergence check
    if eng.n_theta == 1 and np.isfinite(lo[0]):
        # one variance (a random intercept): the deviance depends on theta^2, so Brent's method
        # on the whole line finds the optimum of |theta| in a few evaluations
        try:
            r = optimize.minimize_scalar(lambda t: f(np.array([abs(t)])), bracket=(x0[0], 0.5 * x0[0]),
                                         method="brent", options=dict(xtol=1e-10))
            first = (float(r.fun), np.array([abs(r.x)]))
        except (ValueError, RuntimeError, np.linalg.LinAlgError):  # pragma: no cover - defensive
            first = None
    else:
        first = quasi_newton(x0, forward=eng.n < FORWARD_MAX_ROWS)
    runs = [r for r in (first,) if r is not None and np.isfinite(r[0])]
    if runs:
        gmax = _scaled_gradient(f, runs[0][1], lo, scale, f0=runs[0][0])
        if gmax <= _GRAD_TOL:
            return dict(theta_int=runs[0][1], dev=runs[0][0] * scale, spread=0.0, grad=gmax, n_runs=1)
    second = quasi_newton(0.3 * x0)
    if second is not None and np.isfinite(second[0]):
        runs.append(second)
    if not runs:
        raise ModelSpecError("the deviance could not be evaluated at any start; check the data for infinite values")
    runs.sort(key=lambda r: r[0])
    spread = (runs[-1][0] - runs[0][0]) * scale
    best_f, best_x = runs[0]
    try:
        r2 = optimize.minimize(f, best_x, method="Nelder-Mead", bounds=bounds,
                               options=dict(xatol=1e-8, fatol=1e-14, maxiter=200 * max(eng.n_theta, 2),
                                            initial_simplex=_simplex(best_x, lo)))
        if r2.fun < best_f:
            best_f, best_x = float(r2.fun), np.maximum(r2.x, lo)
    except (np.linalg.LinAlgError, ValueError):  # pragma: no cover - defensive
        pass
    gmax = _scaled_gradient(f, best_x, lo, scale)
    return dict(theta_int=best_x, dev=best_f * scale, spread=spread, grad=gmax, n_runs=len(runs))


ENGINES = ("auto", "fast", "statsmodels")
FORWARD_MAX_ROWS = 20_000  # below this, the first pass uses forward differences
FTOL, GTOL = 1e-12, 1e-7  # L-BFGS-B stopping rules on the normalised deviance
_GRAD_TOL = 2e-3  # largest curvature-scaled gradient accepted as converged (lme4's check uses 2e-3)


def _scaled_gradient(f, x, lo, scale, f0=None):
    """Projected gradient at ``x`` scaled by the curvature, in deviance units (as lme4's check of
    solve(chol(H), grad)): a gradient small relative to how sharply the deviance curves. The
    central differences of the gradient and of the curvature share their evaluations
    (2k + 1 in all; ``f0`` is f(x) when the caller has it)."""
    h = 1e-4
    f0 = f(x) if f0 is None else f0
    g = np.zeros_like(x)
    curv = np.ones_like(x)
    active = np.zeros(len(x), bool)
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = h
        fp = f(x + e)
        if np.isfinite(lo[i]) and x[i] - h < lo[i]:  # near the bound: one-sided differences
            g[i] = (fp - f0) / h * scale
            active[i] = x[i] <= lo[i] + 1e-6 and g[i] > 0
            if not active[i]:
                curv[i] = abs(f(x + 2 * e) - 2 * fp + f0) / h**2 * scale
        else:
            fm = f(x - e)
            g[i] = (fp - fm) / (2 * h) * scale
            curv[i] = abs(fp - 2 * f0 + fm) / h**2 * scale
    scaled = np.where(active, 0.0, np.abs(g) / np.sqrt(np.maximum(curv, 1.0)))
    return float(scaled.max()) if len(g) else 0.0


def _simplex(x, lo):
    k = len(x)
    S = np.tile(x, (k + 1, 1))
    for i in range(k):
        step = 1e-3 * max(abs(x[i]), 0.1)
        S[i + 1, i] = x[i] + step
    return np.maximum(S, np.where(np.isfinite(lo), lo, -np.inf))


def _grad(f, x, lo, h=1e-5):
    g = np.zeros_like(x)
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = h
        if np.isfinite(lo[i]) and x[i] - h < lo[i]:
            g[i] = (f(x + e) - f(x)) / h
        else:
            g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g

