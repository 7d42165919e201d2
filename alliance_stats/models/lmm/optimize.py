"""Stage 3 of a linear mixed model (lme4's ``optimizeLmer``): minimise the profiled deviance
over the relative covariance parameters theta, check the optimum, and say what was done.

The optimizer is BOBYQA (Powell's bound-constrained quadratic-model method, nlopt's
``LN_BOBYQA``), as lme4's default ``nloptwrap`` and MixedModels.jl use, from lme4's start
(identity relative factors: 1 on the diagonal of theta, 0 below) and in lme4's coordinates
(theta on the scale of the data's columns). A single variance (one random intercept) is found
by Brent's method on the line instead. The stopping rules are tighter than lme4's defaults, so
that the optimum is reached to about 1e-9 in the deviance.

After the optimizer stops, two checks run:

1. **Local optimality**, from a finite-difference gradient and Hessian in the optimizer's
   well-scaled internal coordinates (each random-effect column at unit root mean square): a
   parameter sitting on its bound (a Cholesky diagonal at 0) with a positive one-sided
   derivative is settled there; on the others the Newton step must promise no gain larger
   than ``DECREMENT_TOL`` deviance units (1e-6; the fit warns above ``CONVERGED_TOL``, 1e-5, after
   every restart), and the curvature must not be negative (a saddle is
   not an optimum: the signed eigenvalues are read, not their absolute values).
2. **The boundary.** When a diagonal element of a Cholesky factor ends at 0, the optimum may be
   a corner of the Cholesky coordinates that is a local minimum there although the same
   covariance matrix written with its zero elsewhere is not. The covariance matrix is rebuilt,
   a small variance is added on that diagonal, it is factored again and the optimizer is run
   from there. And when a block's correlation matrix is near singular (|corr| > 0.5 for two
   terms) but no diagonal is 0, the optimum may lie on the boundary behind a ridge or at the
   end of a long curved valley: the optimizer is run on the boundary, from the nearest singular
   covariance matrix with its zero diagonal held. The better optimum is kept.

Newton steps from the checks' gradient and Hessian polish the optimum (the stopping rules
leave estimates at about 1e-5 of their size; the Newton steps bring them to about 1e-8). When
a check fails the optimizer is restarted from the point the check found (a Newton step or a
direction of negative curvature), and other optimizers (nlopt's Nelder-Mead and Subplex, scipy's
L-BFGS-B) are run from the best point so far; the best optimum found is kept. What was
done is returned as an :class:`OptSummary` (``LMMResult.optsum``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from ...exceptions import ModelSpecError, OptionError
from .nested import NestedEngine

ENGINES = ("auto", "fast", "statsmodels")
OPTIMIZERS = ("bobyqa", "nelder-mead", "sbplx", "cobyla", "L-BFGS-B")
_NLOPT = {"bobyqa": "LN_BOBYQA", "nelder-mead": "LN_NELDERMEAD", "sbplx": "LN_SBPLX", "cobyla": "LN_COBYLA"}
# stopping rules of the optimizer: near the optimum the Newton steps of the checks converge much
# faster than BOBYQA's quadratic models, so the optimizer stops earlier than MixedModels.jl's
# defaults (ftol_rel 1e-12, ftol_abs 1e-8, xtol_abs 1e-10) and the Newton steps finish (same
# optima to about 1e-10 in the deviance, a quarter fewer evaluations on a random slope)
FTOL_REL, FTOL_ABS, XTOL_ABS, MAXEVAL = 1e-9, 1e-5, 1e-7, 100_000
DECREMENT_TOL = 1e-6  # a Newton step promising more deviance than this sends the optimizer on (restarts)
CONVERGED_TOL = 1e-5  # ... and more than this, after every restart, is reported (ConvergenceWarning)
POLISH_TOL = 1e-10  # Newton steps are taken while they promise more than this
BOUNDARY_TOL = 1e-4  # a Cholesky diagonal below this (internal scale) counts as 0 (lme4's isSingular)
RESTART_VARIANCE = 1e-2  # the variance (relative to the residual, internal scale) added at a zero diagonal
NEAR_SINGULAR = 0.5  # correlation-matrix eigenvalue below which the nearest singular matrix is tried (|corr| > 0.5)
TINY_RATIO = 1e-3  # a variance below this share of its block partner's leaves their correlation undetermined
_H = 1e-4  # finite-difference step of the checks, internal coordinates
# Brent's relative tolerance on a single relative factor: its deviance is then within about
# 1e-11 of the minimum on the sample study (1e-9 took 27 evaluations, this 16, same optimum to
# 1e-13), and the checks' Newton steps take over when it is not
BRENT_XTOL = 1e-6


@dataclass(frozen=True, repr=False)
class OptSummary:
    """What the optimizer did (as MixedModels.jl's ``OptSummary`` and lme4's ``@optinfo``).

    Attributes
    ----------
    optimizer : str
        The optimizer of the first pass (``"bobyqa"``, ``"brent"`` for a single variance,
        ``"statsmodels"`` for that engine).
    start, lower : ndarray
        Start and lower bounds of theta (lme4's scale: relative Cholesky factors of the
        random-effect covariance matrices, column-major lower triangles).
    tolerances : dict
        The stopping rules of the optimizer.
    feval : int
        Deviance evaluations of the first pass (lme4's ``feval``).
    n_evals : int
        Deviance evaluations of everything: passes, checks and restarts.
    final : ndarray
        theta at the optimum reported.
    objective : float
        The deviance there (the REML criterion for REML fits).
    return_code : str
        The first pass's return code (nlopt's names, e.g. ``"FTOL_REACHED"``).
    checks : dict
        The checks at the optimum reported: ``gradient`` (largest absolute derivative over the
        parameters not held by their bound, internal scale), ``newton_decrement`` (the deviance
        gain a Newton step promises), ``min_eigenvalue`` (smallest curvature eigenvalue of the
        same parameters; negative = a saddle), ``at_bound`` (theta positions held at 0), and
        ``boundary_restarts`` (one dict per restart from a re-factored covariance matrix:
        start, deviance reached, whether it improved).
    restarts : tuple of dict
        Every pass after the first: what it was (``"boundary"``, ``"check"``, or an
        alternative optimizer), the optimizer, its deviance and evaluations.
    converged : bool
        The checks passed at the optimum reported.
    seconds : float
        Wall-clock time of the optimisation and checks.
    """

    optimizer: str
    start: np.ndarray
    lower: np.ndarray
    tolerances: dict
    feval: int
    n_evals: int
    final: np.ndarray
    objective: float
    return_code: str
    checks: dict
    restarts: tuple = ()
    converged: bool = True
    seconds: float = 0.0

    def __repr__(self) -> str:
        def vec(v):
            return "[" + ", ".join(f"{x:.6g}" for x in np.asarray(v, float)) + "]"

        c = self.checks
        tol = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.tolerances.items())
        lines = [
            "Optimizer summary (alliance-stats lmm)",
            f"  optimizer          {self.optimizer}",
            f"  start (theta)      {vec(self.start)}",
            f"  lower bounds       {vec(self.lower)}",
            f"  tolerances         {tol}",
            f"  evaluations        {self.n_evals} in all ({self.feval} in the first pass)",
            f"  final (theta)      {vec(self.final)}",
            f"  objective          {self.objective:.10g}",
            f"  return code        {self.return_code}",
            f"  gradient           {c.get('gradient', float('nan')):.3g} (largest, free parameters)",
            f"  Newton decrement   {c.get('newton_decrement', float('nan')):.3g} deviance units (restarts above {DECREMENT_TOL:g}, warning above {CONVERGED_TOL:g})",
            f"  min eigenvalue     {c.get('min_eigenvalue', float('nan')):.4g} (curvature; negative = saddle)",
            f"  at bound           {list(c.get('at_bound', ())) or 'none'}",
        ]
        for b in c.get("boundary_restarts", ()):
            lines.append(f"  {b['kind']:<18s} from {vec(b['start'])}: deviance {b['objective']:.10g} "
                         f"({'improved' if b['improved'] else 'no gain'})")
        for r in self.restarts:
            lines.append(f"  restart            {r['why']}, {r['optimizer']}: deviance {r['objective']:.10g}, {r['evals']} evaluations")
        lines.append(f"  converged          {self.converged} ({self.seconds:.3g} s)")
        return "\n".join(lines)


class _Objective:
    """The deviance in internal coordinates, with a count of evaluations and the best point seen."""

    def __init__(self, eng: NestedEngine, reml: bool):
        self.eng, self.reml = eng, reml
        self.n = 0
        self.best_f, self.best_x = math.inf, None

    def __call__(self, x) -> float:
        self.n += 1
        v = self.eng.deviance(x, self.reml)
        if v < self.best_f:
            self.best_f, self.best_x = v, np.array(x, float)
        return v


def lme4_start(eng: NestedEngine) -> np.ndarray:
    """lme4's start (original scale): 1 on the diagonal of each relative factor, 0 below."""
    return np.concatenate([np.where(t[2], 1.0, 0.0) for t in eng.tri_index])


def optimize_theta(eng: NestedEngine, reml: bool, optimizer: str = "bobyqa", start=None, restart: bool = True):
    """Minimise the profiled deviance; returns (internal-scale theta, :class:`OptSummary`).

    ``optimizer`` names the first pass, which the Newton steps of the checks polish; with
    ``restart`` the boundary restarts and, when a check fails, the other restarts follow
    (without, the polished first pass is only checked, as ``all_fit`` wants).
    ``start`` is theta on lme4's scale (default lme4's start)."""
    if optimizer not in OPTIMIZERS:
        raise OptionError("optimizer", optimizer, OPTIMIZERS)
    t0 = time.perf_counter()
    f = _Objective(eng, reml)
    lo = np.where(np.isfinite(eng.lower), eng.lower, -np.inf)
    x0 = lme4_start(eng) if start is None else _check_start(eng, start)
    name = "brent" if (optimizer == "bobyqa" and eng.n_theta == 1 and start is None) else optimizer
    fx, x, code = _run(name, f, eng.to_int(x0), lo, eng)
    if not np.isfinite(fx):
        raise ModelSpecError("the deviance could not be evaluated at the start; check the data for infinite or constant values")
    feval = f.n
    tolerances = _tolerances(name)
    restarts, boundary = [], []
    check = _check(f, x, fx, lo, eng)
    fx, x, check = _polish(f, fx, x, check, lo, eng)
    if restart:
        again = optimizer if optimizer != "brent" else "bobyqa"
        tried = []  # boundary starts already run (each at most once)
        for _ in range(3):  # a restart that moves the optimum is followed by the checks again
            moved = False
            # (i) a failed local check: restart from where the check found a lower point, then
            # other optimizers from the best point, keeping the best
            for why, alt in [("check", again), ("alternative", "nelder-mead"), ("alternative", "sbplx"),
                             ("alternative", "L-BFGS-B")]:
                if check["ok"]:
                    break
                n_before = f.n
                x_from = check["probe"] if (why == "check" and check["probe"] is not None) else x
                fa, xa, _ = _run(alt, f, x_from, lo, eng)
                restarts.append(dict(why=why, optimizer=alt, objective=fa, evals=f.n - n_before))
                if f.best_f < fx:  # what the optimizer reported, or a lower point its path or the checks saw
                    fx, x = f.best_f, f.best_x.copy()
                fx, x, check = _polish(f, fx, x, _check(f, x, fx, lo, eng), lo, eng)
            # (ii) the boundary: a zero Cholesky diagonal is re-factored with a small variance
            # added and the optimizer run from there; and a block whose correlations are nearly
            # singular (|corr| > 0.5 for two terms) may have its optimum on the boundary behind a
            # ridge or at the end of a long curved valley: the optimizer is run on the boundary
            # (from the nearest singular covariance matrix, its zero Cholesky diagonal held) and
            # the checks then say whether the deviance falls off that face
            for why, start_held in [("boundary", _refactored(eng, x))] + [("near boundary", c) for c in _nearest_singular(eng, x)]:
                if start_held is None or any(np.array_equal(start_held[0], t) for t in tried):
                    continue
                xs, held = start_held
                tried.append(xs)
                n_before = f.n
                alt = "bobyqa" if held.any() and again == "L-BFGS-B" else again  # L-BFGS-B moves every parameter
                fb, xb, _ = _run(alt, f, xs, lo, eng, free=~held)
                improved = fb < fx - 1e-9 * max(1.0, abs(fx))
                boundary.append(dict(kind=why, start=eng.to_orig(xs), objective=fb, improved=bool(improved)))
                restarts.append(dict(why=why, optimizer=alt, objective=fb, evals=f.n - n_before))
                if fb < fx:
                    fx, x, check = _polish(f, fb, xb, _check(f, xb, fb, lo, eng), lo, eng)
                    moved = moved or improved
            if not moved:  # nothing new to check from
                break
    if f.best_f < fx - 1e-9 * max(1.0, abs(fx)):  # never report a point worse than one evaluated
        fx, x = f.best_f, f.best_x.copy()
        check = _check(f, x, fx, lo, eng)
    checks = dict(gradient=check["gradient"], newton_decrement=check["decrement"], min_eigenvalue=check["min_eig"],
                  at_bound=tuple(int(i) for i in check["at_bound"]), boundary_restarts=tuple(boundary))
    summary = OptSummary(
        optimizer=name, start=x0, lower=eng.lower.copy(), tolerances=tolerances, feval=feval, n_evals=f.n,
        final=eng.to_orig(x), objective=float(fx), return_code=code, checks=checks, restarts=tuple(restarts),
        converged=bool(check["converged"]), seconds=time.perf_counter() - t0,
    )
    return x, summary


def _polish(f, fx, x, check, lo, eng, steps=6):
    """Newton steps from the checks' gradient and Hessian while they promise more than
    POLISH_TOL and lower the deviance (else the lowest point the checks evaluated, when lower):
    a quasi-exact optimum for a few evaluations more, where the optimizer's stopping rule left
    the estimates at about 1e-5 of their size."""
    for _ in range(steps):
        if check["ok"] and check["decrement"] <= POLISH_TOL:
            break
        for cand in (check["newton"], check["probe"]):
            if cand is not None:
                fc = f(cand)
                if fc < fx:
                    fx, x = fc, cand
                    break
        else:
            break
        check = _check(f, x, fx, lo, eng)
    return fx, x, check


def check_point(eng: NestedEngine, reml: bool, x_int, name: str, start=None) -> OptSummary:
    """The checks at a theta found elsewhere (the statsmodels engine), as an :class:`OptSummary`."""
    t0 = time.perf_counter()
    f = _Objective(eng, reml)
    lo = np.where(np.isfinite(eng.lower), eng.lower, -np.inf)
    fx = f(x_int)
    c = _check(f, x_int, fx, lo, eng)
    checks = dict(gradient=c["gradient"], newton_decrement=c["decrement"], min_eigenvalue=c["min_eig"],
                  at_bound=tuple(int(i) for i in c["at_bound"]), boundary_restarts=())
    return OptSummary(optimizer=name, start=lme4_start(eng) if start is None else start, lower=eng.lower.copy(),
                      tolerances={}, feval=0, n_evals=f.n, final=eng.to_orig(x_int), objective=float(fx),
                      return_code="", checks=checks, converged=bool(c["converged"]), seconds=time.perf_counter() - t0)


def _check_start(eng, start):
    try:
        s = np.asarray(start, float).ravel()
    except (TypeError, ValueError):
        s = np.full(0, np.nan)
    if s.shape != (eng.n_theta,) or not np.all(np.isfinite(s)) or np.any(s < np.where(np.isfinite(eng.lower), eng.lower, -np.inf)):
        raise OptionError("start", start, (), hint=f"theta needs {eng.n_theta} finite numbers in lme4's order "
                          "(column-major lower triangle of each relative Cholesky factor), diagonal elements >= 0")
    return s


def _tolerances(name):
    if name == "brent":
        return {"xtol": BRENT_XTOL, "then": "Newton steps"}
    if name == "L-BFGS-B":
        return {"ftol": 1e-15, "gtol": 1e-9, "gradient": "central differences, step 1e-6"}
    return {"ftol_rel": FTOL_REL, "ftol_abs": FTOL_ABS, "xtol_abs": XTOL_ABS, "maxeval": MAXEVAL,
            "initial_step": "nlopt's default (as lme4)"}


def _run(name, f, x_int, lo, eng, free=None):
    """One pass of optimizer ``name`` from internal ``x_int``: (deviance, internal x, return code).
    nlopt's optimizers work in lme4's coordinates (original scale), as lme4 does; with ``free``
    (a mask) only those parameters move and the others stay at their values in ``x_int``."""
    x_int = np.maximum(np.asarray(x_int, float), lo)
    if name == "brent":
        # the deviance of one relative factor depends on theta^2: Brent's method on |theta|
        s = max(x_int[0], 1e-3)
        try:
            r = optimize.minimize_scalar(lambda t: f(np.array([abs(t)])), bracket=(s, 0.5 * s), method="brent",
                                         options=dict(xtol=BRENT_XTOL))  # the checks and Newton polish finish
            x = np.array([abs(r.x)])
            return float(f(x)), x, "XTOL_REACHED"
        except (ValueError, RuntimeError, np.linalg.LinAlgError):  # pragma: no cover - defensive
            return _run("bobyqa", f, x_int, lo, eng)
    if name == "L-BFGS-B":
        return _lbfgsb(f, x_int, lo)
    import nlopt

    free = np.ones(len(x_int), bool) if free is None else np.asarray(free, bool)
    scale = eng.theta_rowscale[free]  # internal theta = original theta x column scale

    def full(t):
        y = x_int.copy()
        y[free] = t * scale
        return y

    def obj(t, grad):
        v = f(full(t))
        return v if np.isfinite(v) else 1e300

    k = int(free.sum())
    algo = _NLOPT[name]
    if k == 1 and name == "sbplx":
        algo = "LN_NELDERMEAD"
    opt = nlopt.opt(getattr(nlopt, algo), k)
    opt.set_min_objective(obj)
    opt.set_lower_bounds(np.where(np.isfinite(lo[free]), lo[free] / scale, -np.inf))
    opt.set_ftol_rel(FTOL_REL)
    opt.set_ftol_abs(FTOL_ABS)
    opt.set_xtol_abs(XTOL_ABS)
    opt.set_maxeval(MAXEVAL)
    x0 = x_int[free] / scale
    try:
        t = opt.optimize(x0)
        code = _NLOPT_CODES.get(opt.last_optimize_result(), str(opt.last_optimize_result()))
        x = np.maximum(full(t), lo)
        return float(f(x)) if opt.last_optimum_value() >= 1e300 else float(opt.last_optimum_value()), x, code
    except (nlopt.RoundoffLimited, RuntimeError, ValueError) as e:
        if f.best_x is None:
            return math.inf, x_int, type(e).__name__
        return f.best_f, f.best_x.copy(), "ROUNDOFF_LIMITED" if isinstance(e, nlopt.RoundoffLimited) else "FAILURE"


_NLOPT_CODES = {1: "SUCCESS", 2: "STOPVAL_REACHED", 3: "FTOL_REACHED", 4: "XTOL_REACHED", 5: "MAXEVAL_REACHED",
                6: "MAXTIME_REACHED", -1: "FAILURE", -2: "INVALID_ARGS", -3: "OUT_OF_MEMORY", -4: "ROUNDOFF_LIMITED",
                -5: "FORCED_STOP"}


def _lbfgsb(f, x_int, lo):
    """scipy's L-BFGS-B with central-difference gradients on the deviance divided by its value
    at the start (of order one whatever the number of rows), internal coordinates."""
    f0 = f(x_int)
    sc = abs(f0) if np.isfinite(f0) and f0 != 0 else 1.0
    h = 1e-6

    def fun(t):
        t = np.maximum(t, lo)
        v = f(t) / sc
        g = np.empty_like(t)
        for i in range(len(t)):
            e = np.zeros_like(t)
            e[i] = h
            if np.isfinite(lo[i]) and t[i] - h < lo[i]:
                g[i] = (f(t + e) / sc - v) / h
            else:
                g[i] = (f(t + e) - f(t - e)) / (2 * h * sc)
        return (v if np.isfinite(v) else 1e300), np.where(np.isfinite(g), g, 0.0)

    bounds = [(b if np.isfinite(b) else None, None) for b in lo]
    try:
        r = optimize.minimize(fun, x_int, jac=True, method="L-BFGS-B", bounds=bounds,
                              options=dict(maxiter=2000, ftol=1e-15, gtol=1e-9, maxcor=20))
        x = np.maximum(np.asarray(r.x, float), lo)
        return float(f(x)), x, "CONVERGENCE" if r.success else "STOPPED"
    except (np.linalg.LinAlgError, ValueError, FloatingPointError):  # pragma: no cover - defensive
        return f.best_f, f.best_x.copy(), "FAILURE"


def _check(f, x, fx, lo, eng):
    """Finite-difference gradient and Hessian at internal ``x``, with bounds treated correctly.

    For each parameter: f(x + h e_i) and either f(x - h e_i) (central differences) or, within
    2h of its bound, f(x + 2h e_i) (one-sided, second order); cross terms from f(x + h e_i + h e_j).
    Steps are 1e-4 relative to the parameter (at least 1e-4).
    A parameter at its bound whose one-sided derivative is clearly positive is held there; the
    others must show no gain from a Newton step and no negative curvature. ``probe`` is the
    lowest point evaluated when one lies below ``fx`` (or the Newton / negative-curvature step),
    where a restart should start."""
    k = len(x)
    h = _H * np.maximum(1.0, np.abs(x))  # relative steps for large theta (ill-conditioned factors)
    near = np.isfinite(lo) & (x - lo < 2 * h)
    fp = np.empty(k)
    fo = np.empty(k)  # f(x - h e_i) or f(x + 2h e_i)
    pts = []
    for i in range(k):
        e = np.zeros(k)
        e[i] = h[i]
        fp[i] = f(x + e)
        pts.append((fp[i], x + e))
        y = x + 2 * e if near[i] else x - e
        fo[i] = f(y)
        pts.append((fo[i], y))
    inside = near & (x > lo)
    if inside.any():  # parameters just off their bound: is the bound itself lower?
        y = np.where(inside, lo, x)
        pts.append((f(y), y))
    g = np.where(near, (-3 * fx + 4 * fp - fo) / (2 * h), (fp - fo) / (2 * h))
    H = np.empty((k, k))
    H[np.diag_indices(k)] = np.where(near, (fx - 2 * fp + fo) / h**2, (fp - 2 * fx + fo) / h**2)
    for i in range(k):
        for j in range(i + 1, k):
            e = np.zeros(k)
            e[i], e[j] = h[i], h[j]
            fij = f(x + e)
            pts.append((fij, x + e))
            H[i, j] = H[j, i] = (fij - fp[i] - fp[j] + fx) / (h[i] * h[j])
    # rounding in the deviance (about 1e-12 of its size) seen through the differences
    noise = 1e-13 * max(abs(fx), 1.0)  # measured: about 1e-14 of the deviance
    gtol = np.maximum(100 * noise / h, 1e-6)
    at_lo = np.isfinite(lo) & (x - lo <= 1e-8)
    held = at_lo & (g > gtol)
    free = ~held
    out = dict(gradient=float(np.abs(g[free]).max()) if free.any() else 0.0, decrement=0.0, min_eig=math.nan,
               at_bound=np.flatnonzero(at_lo), probe=None, newton=None, ok=True, converged=True)
    if not np.all(np.isfinite(g)) or not np.all(np.isfinite(H)):
        out.update(ok=False, decrement=math.inf, converged=False)
        return out
    lowest = min(pts, key=lambda p: p[0])
    if free.any():
        gf, Hf = g[free], H[np.ix_(free, free)]
        lam, V = np.linalg.eigh(0.5 * (Hf + Hf.T))
        out["min_eig"] = float(lam[0])
        eig_tol = max(10 * noise / float(h[free].min()) ** 2, 1e-7 * float(np.abs(lam).max()))
        # a negative gradient at a bound points inwards: that parameter is free to move
        if lam[0] < -eig_tol:
            out["ok"] = False
            out["decrement"] = math.inf
            v = np.zeros(k)
            v[free] = V[:, 0]
            # the direction of negative curvature, pointed inwards at the bounds and downhill
            if np.any(v[at_lo] < 0) or (np.all(v[at_lo] == 0) and g @ v > 0):
                v = -v
            out["probe"] = np.maximum(x + 0.1 * max(1.0, np.abs(x).max()) * v / np.abs(v).max(), lo)
        else:
            lam_c = np.maximum(lam, eig_tol)
            dx = V @ ((V.T @ gf) / lam_c)
            dec = 0.5 * float(gf @ dx)
            out["decrement"] = dec
            y = x.copy()
            y[free] = x[free] - dx
            out["newton"] = np.maximum(y, lo)
            if dec > DECREMENT_TOL:
                out["ok"] = False
                out["probe"] = out["newton"]
    if lowest[0] < fx - max(noise, 1e-9):  # a probe already found a lower point
        out["ok"] = False
        out["probe"] = lowest[1]
    # converged: no gain above CONVERGED_TOL is in sight (neither promised nor found)
    out["converged"] = out["decrement"] <= CONVERGED_TOL and lowest[0] >= fx - max(noise, CONVERGED_TOL)
    return out


def _refactored(eng: NestedEngine, x):
    """The start of a boundary restart (internal scale) and an empty mask of held parameters, or
    None: in each correlated block (two or more terms) with a Cholesky diagonal at 0, the
    covariance matrix (relative, internal scale) with ``RESTART_VARIANCE`` added on those
    diagonal positions, factored again. A single variance at 0 needs no restart: its deviance
    is even in its theta, so the one-sided checks see whether it should move."""
    lams = eng.lambdas(x)
    out, changed = [], False
    for L, (r, c, dg) in zip(lams, eng.tri_index):
        Lnew = L.copy()
        off = 0
        for b in _blocks_of(r, c, L.shape[0]):
            idx = np.arange(off, off + b)
            zero = np.diagonal(L)[idx] < BOUNDARY_TOL
            if b > 1 and zero.any():
                S = L[np.ix_(idx, idx)] @ L[np.ix_(idx, idx)].T
                S[idx[zero] - off, idx[zero] - off] += RESTART_VARIANCE
                Lnew[np.ix_(idx, idx)] = np.linalg.cholesky(S + 1e-12 * np.eye(b))
                changed = True
            off += b
        out.append(Lnew[r, c])
    return (np.concatenate(out), np.zeros(len(x), bool)) if changed else None


def _nearest_singular(eng: NestedEngine, x):
    """Starts of near-boundary restarts (internal scale), each with the mask of the Cholesky
    diagonal it sets to 0 (held there): for each correlated block whose correlation matrix has
    an eigenvalue below NEAR_SINGULAR, the covariance matrix with that eigenvalue set to 0,
    factored again; and for each pair of terms one of whose variances is below TINY_RATIO of
    the other's (where the correlation is not determined), the rank-one matrices with
    correlation +1 and -1."""
    lams = eng.lambdas(x)
    starts = []
    k = 0
    for L, (r, c, dg) in zip(lams, eng.tri_index):
        off = 0
        for b in _blocks_of(r, c, L.shape[0]):
            idx = np.arange(off, off + b)
            Lb = L[np.ix_(idx, idx)]
            S = Lb @ Lb.T
            v = np.diag(S)
            cands = []
            if b > 1 and np.diagonal(Lb).min() >= BOUNDARY_TOL:
                sd = np.sqrt(v)
                w, V = np.linalg.eigh(S / np.outer(sd, sd))
                if w[0] < NEAR_SINGULAR:
                    w[0] = 0.0
                    cands.append((V * w) @ V.T * np.outer(sd, sd))
            if b == 2 and v.max() > 0 and v.min() < TINY_RATIO * v.max():
                sd = np.sqrt(np.maximum(v, TINY_RATIO**2 * v.max()))
                cands += [np.outer(sd * [1, sg], sd * [1, sg]) for sg in (1.0, -1.0)]
            for Sn in cands:
                Lnew = L.copy()
                Lnew[np.ix_(idx, idx)] = _psd_cholesky(Sn)
                xs = x.copy()
                xs[k : k + len(r)] = Lnew[r, c]
                held = np.zeros(len(x), bool)
                held[k : k + len(r)] = dg & (Lnew[r, c] == 0)
                starts.append((xs, held))
            off += b
        k += len(r)
    return starts


def _psd_cholesky(S):
    """Lower-triangular L with L L' = S for a positive semi-definite S (zero columns where S is
    singular), with non-negative diagonal."""
    S = np.array(S, float)
    n = len(S)
    L = np.zeros_like(S)
    for j in range(n):
        d = S[j, j] - L[j, :j] @ L[j, :j]
        if d > 1e-14 * max(S[j, j], 1e-300):
            L[j, j] = np.sqrt(d)
            L[j + 1 :, j] = (S[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L


def _blocks_of(r, c, q):
    """Sizes of the correlated blocks of a level from its (row, col) theta positions."""
    sizes, off = [], 0
    while off < q:
        rows_in = r[c == off]
        b = int(rows_in.max() - off + 1)
        sizes.append(b)
        off += b
    return sizes
