"""Linear mixed models with lme4's formulation and answers: ``als.lmm`` and ``als.compare``.

Sessions nested in patients nested in therapists.  The fit minimises lme4's profiled (RE)ML
deviance over the relative covariance factors (theta) by bounded quasi-Newton from lme4's start
(Brent's method for a single variance); when the convergence check fails, a second start and a
simplex polish follow and the best optimum is kept.  It says in plain words when the estimate is
on the boundary (a variance of zero) or when the optimizers disagree.  Inference for fixed effects
follows lmerTest: Satterthwaite degrees of freedom from the Hessian of the deviance in
(theta, sigma) and the Jacobian of the coefficient covariance.
"""

from __future__ import annotations

import html
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from .._format import apa_p, fmt_ci
from ..exceptions import (
    AllianceStatsWarning,
    ColumnError,
    ConvergenceWarning,
    ModelSpecError,
    SingularFitWarning,
    _fmt_labels,
    user_stacklevel,
)
from ._lmm_engine import Level, NestedEngine
from ._lmm_formula import parse_formula

__all__ = ["lmm", "LMMResult", "compare"]

SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on theta


# ----------------------------------------------------------------------------------------
# design
# ----------------------------------------------------------------------------------------
@dataclass
class _Design:
    formula: str
    response: str
    fixed: str
    terms: list
    columns: "_Columns"  # the used columns of the complete rows; .data is their DataFrame
    X: np.ndarray
    xnames: list
    dropped_cols: list
    y: np.ndarray
    levels: list  # engine Levels, innermost first
    level_info: list  # per level: dict(name, cols, term_names, exprs, specs, labels)
    x_spec: object
    n_dropped: int
    dropped: pd.Series

    @property
    def data(self) -> pd.DataFrame:
        """Complete cases, used columns only, original index (made on first use)."""
        return self.columns.frame


class _Columns:
    """The columns a model uses, for its complete rows: numpy arrays for the fit, and the
    DataFrame (``frame``) made only when something needs it (formulaic terms, group labels,
    messages, refits). The design holds a shallow copy of the data: under pandas'
    copy-on-write, later changes to the caller's frame do not reach it."""

    def __init__(self, data: pd.DataFrame, cols: list):
        self.src = data.copy(deep=False)
        self.src.attrs = {}  # pandas deep-copies attrs into every derived object; the design needs none
        self.cols = cols
        series = {c: self.src[c] for c in cols}
        self.dtypes = {c: v.dtype for c, v in series.items()}
        self.raw = {c: v.to_numpy() for c, v in series.items()}
        self.ok = None  # boolean mask of complete rows; None = all rows
        self._arr = {}
        self._frame = None

    def missing(self) -> np.ndarray | None:
        """(rows, columns) missingness, or None when nothing is missing."""
        flags = []
        for c in self.cols:
            v = self.raw[c]
            m = np.isnan(v) if v.dtype.kind == "f" else None if v.dtype.kind in "iub" else np.asarray(pd.isna(v), bool)
            flags.append(m)
        if not any(m is not None and m.any() for m in flags):
            return None
        n = len(self.src)
        return np.column_stack([m if m is not None else np.zeros(n, bool) for m in flags])

    def array(self, c: str) -> np.ndarray:
        if c not in self._arr:
            v = self.raw[c]
            self._arr[c] = v if self.ok is None else v[self.ok]
        return self._arr[c]

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            sub = self.src[self.cols]
            self._frame = sub if self.ok is None else sub.loc[self.ok]
        return self._frame

    def __len__(self):
        return len(self.src) if self.ok is None else int(self.ok.sum())


def _needed_columns(data, response, fixed, terms, dtypes=None):
    from formulaic import Formula

    dtypes = dtypes if dtypes is not None else dict(zip(data.columns, data.dtypes))
    cols = []

    def add(names):
        for c in names:
            if c not in cols:
                cols.append(c)

    add([response] if response in data.columns else sorted(Formula(f"{response} ~ 1").required_variables, key=str))
    plain = _plain_terms(fixed, dtypes)
    add(plain[1] if plain is not None else sorted(Formula(fixed).required_variables, key=lambda c: fixed.find(c)))
    for t in terms:
        plain = _plain_terms(t.expr, dtypes)
        add(plain[1] if plain is not None else sorted(Formula(t.expr).required_variables, key=str))
    for t in terms:
        add(t.group)
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ColumnError(
            f"the formula uses {_fmt_labels(missing)}, not found among the data's columns; "
            f"available columns: {_fmt_labels(list(data.columns), limit=25)}"
        )
    if not data.columns.is_unique:
        twice = [c for c in cols if (data.columns == c).sum() > 1]
        if twice:
            raise ColumnError(
                f"the data have more than one column named {_fmt_labels(twice)}; rename or drop the copies "
                "so that each column the formula uses has one name"
            )
    return cols


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _plain_terms(expr: str, dtypes: dict):
    """``(intercept, [columns])`` when ``expr`` is a plain sum of numeric columns (``1 + a + b``,
    ``0 + a``, ``a``), else None. Such terms are built without formulaic: the same columns, in
    the same order, with the same names ('Intercept' first), at a fraction of the cost."""
    intercept, cols = True, []
    for tok in (t.strip() for t in expr.split("+")):
        if tok == "1":
            continue
        if tok in ("0", "-1"):
            intercept = False
            continue
        if not _IDENT.match(tok) or tok in cols or tok not in dtypes:
            return None
        dt = dtypes[tok]
        if not pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt):
            return None
        cols.append(tok)
    return intercept, cols


def _plain_matrix(plain, cc: _Columns):
    intercept, cols = plain
    n = len(cc)
    parts = ([np.ones(n)] if intercept else []) + [np.asarray(cc.array(c), float) for c in cols]
    X = np.column_stack(parts) if parts else np.empty((n, 0))
    return X, (["Intercept"] if intercept else []) + list(cols)


def _dense_codes(v: np.ndarray):
    """(codes, number of distinct values) of integers, numbered in sorted order."""
    if len(v) and v.dtype.kind in "iu":
        lo, hi = int(v.min()), int(v.max())
        if hi - lo <= 4 * len(v):  # a bounded range: a lookup table instead of a sort
            present = np.zeros(hi - lo + 1, bool)
            present[v - lo] = True
            rank = np.cumsum(present) - 1
            return rank[v - lo].astype(np.int64), int(rank[-1]) + 1
    uniq, k = np.unique(v, return_inverse=True)
    return k.astype(np.int64), len(uniq)


def _group_codes(cc: _Columns, cols):
    """Group number of each row for the ID column(s), groups in sorted order of their IDs (as
    ``groupby(cols, sort=True).ngroup()``)."""
    codes = None
    for c in cols:
        v = cc.array(c)
        if v.dtype.kind in "iuf":  # numeric IDs: no hashing needed
            k, nk = _dense_codes(v)
        elif isinstance(cc.dtypes[c], pd.CategoricalDtype):  # sorted in the categories' order
            k, uniq = pd.factorize(cc.frame[c], sort=True)
            nk = len(uniq)
        else:
            k, uniq = pd.factorize(v, sort=True)
            nk = len(uniq)
        codes = k.astype(np.int64) if codes is None else _dense_codes(codes * nk + k)[0]
    return codes


def _join_keys(df: pd.DataFrame) -> pd.Series:
    """'a:b' labels of several ID columns, vectorised (no per-row Python)."""
    cols = [df[c].astype(str).astype(object) for c in df.columns]
    out = cols[0]
    for c in cols[1:]:
        out = out + ":" + c
    return out


def _labels(inf: dict, cc: pd.DataFrame) -> np.ndarray:
    """The ID label of each group of a level ('T01:P0003' for several ID columns), cached."""
    if "labels" not in inf:
        ids = cc[list(inf["cols"])].iloc[inf["label_rows"]]
        inf["labels"] = _join_keys(ids).to_numpy() if len(inf["cols"]) > 1 else ids.iloc[:, 0].to_numpy()
    return inf["labels"]


def build_design(formula: str, data: pd.DataFrame) -> _Design:
    from formulaic import model_matrix

    if not isinstance(data, pd.DataFrame):
        raise ModelSpecError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    response, fixed, terms = parse_formula(formula)
    dtypes = dict(zip(data.columns, data.dtypes))
    cols = _needed_columns(data, response, fixed, terms, dtypes)
    cc = _Columns(data, cols)
    miss = cc.missing()
    if miss is not None:
        anymiss = miss.any(axis=1)
        counts = np.bincount(miss[anymiss].argmax(axis=1), minlength=len(cols))
        cc.ok = ~anymiss
    else:
        counts = np.zeros(len(cols), int)
    dropped = pd.Series({f"missing {c}": int(k) for c, k in zip(cols, counts) if k}, dtype="int64", name="rows")
    for c in cols:
        if pd.api.types.is_float_dtype(cc.dtypes[c]):  # integer and boolean columns cannot hold infinity
            inf = np.isinf(np.asarray(cc.array(c), float))
            if inf.any():
                raise ModelSpecError(
                    f"column {c!r} holds infinite values at rows {_fmt_labels(cc.frame.index[inf].tolist())}; "
                    "set them to missing (they are then counted) or correct them"
                )
    if len(cc) == 0:
        raise ModelSpecError(f"no complete rows: every row misses one of {_fmt_labels(cols)}")

    # response and fixed effects -------------------------------------------------------------
    yv = cc.array(response) if response in cc.raw else None
    if yv is not None and yv.dtype.kind in "iufb":
        y = yv.astype(float)
    else:
        frame = cc.frame
        yy = pd.to_numeric(frame[response], errors="coerce") if yv is not None else model_matrix(f"{response} - 1", frame).iloc[:, 0]
        if yy.isna().any():
            rows = frame.index[yy.isna().to_numpy()].tolist()
            raise ModelSpecError(f"outcome {response!r} holds values that are not numbers at rows {_fmt_labels(rows)}")
        y = yy.to_numpy(float)
    plain = _plain_terms(fixed, dtypes)
    if plain is not None:
        X, xnames = _plain_matrix(plain, cc)
        x_spec = None  # made by formulaic on first use (prediction on new data)
    else:
        mm = model_matrix(fixed, cc.frame, na_action="raise")
        Xdf = pd.DataFrame(mm)
        xnames = [str(c) for c in Xdf.columns]
        X = Xdf.to_numpy(float)
        x_spec = mm.model_spec
    keep, dropped_cols = _full_rank(X, xnames)
    if dropped_cols:
        warnings.warn(
            f"fixed-effect model matrix is rank deficient: dropped {_fmt_labels(dropped_cols)} "
            "(constant, or a linear combination of the other predictors); its effect cannot be estimated "
            "from these data",
            AllianceStatsWarning,
            stacklevel=user_stacklevel(),
        )
    X = X[:, keep]
    xnames = [xnames[i] for i in keep]

    # grouping factors ---------------------------------------------------------------------------
    factors = {}
    for t in terms:
        key = frozenset(t.group)
        factors.setdefault(key, {"cols": t.group, "terms": []})["terms"].append(t)
    info = []
    for key, f in factors.items():
        codes = _group_codes(cc, f["cols"])
        info.append(dict(name=":".join(f["cols"]), cols=f["cols"], codes=codes, n=int(codes.max()) + 1, terms=f["terms"], pos=len(info)))
    info.sort(key=lambda d: -d["n"])
    for fine, coarse in zip(info[:-1], info[1:]):
        # nested: every row of a fine group has the same coarse group (here: the last one written)
        parent = np.empty(fine["n"], np.int64)
        parent[fine["codes"]] = coarse["codes"]
        off = parent[fine["codes"]] != coarse["codes"]
        if off.any():
            bad = len(np.unique(fine["codes"][off]))
            example = fine["codes"][off][0]
            ex_rows = cc.frame.loc[fine["codes"] == example, list(dict.fromkeys(list(fine["cols"]) + list(coarse["cols"])))].drop_duplicates()
            outer, inner = sorted([fine, coarse], key=lambda d: d["pos"])
            raise ModelSpecError(
                f"grouping factors {fine['name']!r} and {coarse['name']!r} are crossed, not nested: {bad} "
                f"{fine['name']} group(s) appear under more than one {coarse['name']} (e.g. "
                f"{ex_rows.head(3).to_dict('records')}). Crossed random effects are not supported. If the "
                f"{inner['name']} IDs restart within each {outer['name']} (the same number for different people), "
                f"write the nesting explicitly: (1 | {outer['name']}/{inner['name']})"
            )
        if fine["n"] == coarse["n"]:
            raise ModelSpecError(
                f"grouping factors {fine['name']!r} and {coarse['name']!r} define the same groups; "
                f"put all terms for that level in one grouping factor"
            )
    # number groups so that each level's parents are non-decreasing
    keys = [d["codes"] for d in info]  # finest first
    order = np.lexsort(keys)
    levels, level_info = [], []
    for li, d in enumerate(info):
        exprs, specs, names, blocks, Zs = [], [], [], [], []
        for t in d["terms"]:
            plain = _plain_terms(t.expr, dtypes)
            if plain is not None:
                zmat, znames = _plain_matrix(plain, cc)
                spec = None  # made by formulaic on first use
            else:
                zm = model_matrix(t.expr, cc.frame, na_action="raise")
                zdf = pd.DataFrame(zm)
                zmat, znames, spec = zdf.to_numpy(float), [str(c) for c in zdf.columns], zm.model_spec
            if zmat.shape[1] == 0:
                raise ModelSpecError(f"random-effect term {t.text!r} has no columns")
            Zs.append(zmat)
            specs.append(spec)
            names.extend(znames)
            blocks.append(zmat.shape[1])
            exprs.append(t.expr)
        if len(set(names)) < len(names):
            raise ModelSpecError(f"the same random-effect column appears twice for {d['name']!r}: {names}")
        Z = np.hstack(Zs)
        change = np.r_[True, np.any(np.vstack([k[order][1:] != k[order][:-1] for k in keys[li:]]), axis=0)]
        newc = np.cumsum(change) - 1
        codes = np.empty_like(newc)
        codes[order] = newc
        levels.append(Level(name=d["name"], Z=Z, blocks=blocks, codes=codes, n_groups=int(newc[-1]) + 1))
        # the groups' ID labels are made on first use (_labels): the fit does not need them
        level_info.append(dict(name=d["name"], cols=d["cols"], exprs=exprs, specs=specs, term_names=names, label_rows=order[change]))
    for li in range(len(levels) - 1):
        par = np.empty(levels[li].n_groups, int)
        par[levels[li].codes] = levels[li + 1].codes
        levels[li].parent = par
    n_fe = X.shape[1]
    if len(y) <= n_fe:
        raise ModelSpecError(f"{len(y)} complete rows for {n_fe} fixed effects: not enough data")
    return _Design(
        formula=formula, response=response, fixed=fixed, terms=terms, columns=cc, X=X, xnames=xnames,
        dropped_cols=dropped_cols, y=y, levels=levels, level_info=level_info, x_spec=x_spec,
        n_dropped=int(len(data) - len(y)), dropped=dropped,
    )


def _full_rank(X, names):
    """Columns to keep (in order) and the names of those dropped. As R's limited-pivoting QR
    (which lme4 uses): a column is dropped when it is, within 1e-7 of its norm, a linear
    combination of the columns before it, so earlier columns are kept."""
    if X.shape[1] == 0:
        raise ModelSpecError("the fixed part has no columns; keep at least an intercept")
    sc = np.sqrt((X**2).mean(axis=0))
    sc[sc == 0] = 1.0
    Xs = X / sc
    if np.all(sc > 0) and X.shape[0] >= X.shape[1]:
        # the usual case, full rank: one QR shows it (each column's part orthogonal to the
        # columns before it is |R_jj|); the column-by-column check runs only when one is small
        R = np.linalg.qr(Xs, mode="r")
        if np.all(np.abs(np.diag(R)) > 1e-6 * np.linalg.norm(Xs, axis=0)):
            return list(range(X.shape[1])), []
    keep, Q = [], np.empty((X.shape[0], 0))
    for j in range(X.shape[1]):
        x = Xs[:, j]
        nx = np.linalg.norm(x)
        r = x - Q @ (Q.T @ x)
        r = r - Q @ (Q.T @ r)  # second pass for numerical orthogonality
        nr = np.linalg.norm(r)
        if nx > 0 and nr > 1e-7 * nx:
            keep.append(j)
            Q = np.column_stack([Q, r / nr])
    return keep, [names[i] for i in range(X.shape[1]) if i not in keep]


# ----------------------------------------------------------------------------------------
# optimisation
# ----------------------------------------------------------------------------------------
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


def _richardson(fun, x, i, j=None, h0=None, levels=4):
    """Second derivative (i==j or mixed) or first derivative (j is None) by central differences
    with Richardson extrapolation (as numDeriv)."""
    x = np.asarray(x, float)
    hi0 = h0[i]
    hj0 = h0[j] if j is not None else None
    ests = []
    for k in range(levels):
        hi = hi0 / 2**k
        ei = np.zeros_like(x)
        ei[i] = hi
        if j is None:
            d = (fun(x + ei) - fun(x - ei)) / (2 * hi)
        elif i == j:
            d = (fun(x + ei) - 2 * fun(x) + fun(x - ei)) / hi**2
        else:
            hj = hj0 / 2**k
            ej = np.zeros_like(x)
            ej[j] = hj
            d = (fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej) + fun(x - ei - ej)) / (4 * hi * hj)
        ests.append(d)
    # Richardson table, error O(h^2) per level
    T = [np.asarray(e, float) for e in ests]
    m = 1
    while len(T) > 1:
        T = [(4**m * T[k + 1] - T[k]) / (4**m - 1) for k in range(len(T) - 1)]
        m += 1
    return T[0]


def _satterthwaite(eng, theta, sigma, reml, vcov):
    """lmerTest's Satterthwaite: df_j = 2 V_jj^2 / (g_j' A g_j), A = 2 H^+ of the deviance in
    (theta, sigma), g_j the gradient of V_jj in (theta, sigma)."""
    vp = np.r_[theta, sigma]
    h0 = 0.1 * np.abs(vp) + 1e-4 * (np.abs(vp) < 1e-8)
    h0 = np.minimum(h0, np.maximum(0.5 * np.abs(vp), 1e-4)) * 0.5

    def dev(v):
        return eng.deviance_vp(v[:-1], v[-1], reml)

    k = len(vp)
    H = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            H[i, j] = H[j, i] = _richardson(dev, vp, i, j, h0=h0)
    w, V = np.linalg.eigh(H)
    pos = w > 1e-8
    A = 2 * (V[:, pos] / w[pos]) @ V[:, pos].T

    def cov(v):
        return eng.vcov_beta(v[:-1], v[-1])

    J = np.stack([_richardson(cov, vp, i, h0=h0) for i in range(k)])  # (k, p, p)
    var = np.diag(vcov)
    g = np.stack([np.diag(J[i]) for i in range(k)], axis=1)  # (p, k)
    denom = np.einsum("pk,kl,pl->p", g, A, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = 2 * var**2 / denom
    neg = int((w < -1e-8).sum())
    return df, dict(H=H, A=A, J=J, hess_eigen=w, negative_eigen=neg)


# ----------------------------------------------------------------------------------------
# result
# ----------------------------------------------------------------------------------------
@dataclass(repr=False)
class LMMResult:
    """A fitted linear mixed model (see :func:`alliance_stats.lmm`).

    Attributes
    ----------
    fixed : DataFrame
        term, estimate, se, df, t, p, ci_low, ci_high (95%).
    random : DataFrame
        Variance components: group, term1, term2, variance, sd, corr (covariance rows have term2
        and corr; the last row is the residual).
    llf, aic, bic : float
        Log-likelihood (REML or ML, as fitted) and information criteria as lme4 reports them.
    reml, converged : bool
    n_obs : int
    n_groups : dict
        Number of groups per grouping factor.
    n_dropped : int
        Rows left out; ``dropped`` says why (each row counted once, under the first missing column).
    formula, df_method, theta, sigma, messages
    """

    formula: str
    fixed: pd.DataFrame
    random: pd.DataFrame
    llf: float
    aic: float
    bic: float
    reml: bool
    converged: bool
    n_obs: int
    n_groups: dict
    n_dropped: int
    dropped: pd.Series
    df_method: str
    theta: np.ndarray
    sigma: float
    vcov: pd.DataFrame
    messages: list
    singular: bool
    dropped_terms: list
    engine: str = "fast"
    _design: _Design = field(default=None)
    _sol: dict = field(default=None)
    _engine: NestedEngine = field(default=None)
    _sigmas: list = field(default=None)  # per level covariance matrices (original scale)
    _sat: dict = field(default=None)

    # -- basics --------------------------------------------------------------------------------
    @property
    def deviance(self) -> float:
        """-2 log-likelihood (the REML criterion for REML fits)."""
        return -2 * self.llf

    @property
    def n_params(self) -> int:
        return len(self.fixed) + len(self.theta) + 1

    @property
    def params(self) -> pd.Series:
        return self.fixed.set_index("term")["estimate"]

    def refit(self, reml: bool | None = None, df_method: str | None = None) -> "LMMResult":
        """The same model on the same complete rows, e.g. ``refit(reml=False)`` for a LRT."""
        return lmm(self.formula, self._design.data, reml=self.reml if reml is None else reml, df_method=df_method or self.df_method,
                   engine=self.engine)

    # -- random effects, prediction ----------------------------------------------------------
    def random_effects(self) -> pd.DataFrame:
        """BLUPs (conditional modes) with conditional SDs, long format:
        group (grouping factor), level (the group's ID), term, estimate, cond_sd."""
        if "condvar" not in self._sol:
            self._sol = self._engine.solve(self._engine.to_int(self.theta), self.reml, condvar=True)
        out = []
        for li, inf in enumerate(self._design.level_info):
            b = self._sol["b"][li]
            cv = self._sol["condvar"][li]
            sd = np.sqrt(np.clip(np.diagonal(cv, axis1=1, axis2=2), 0, None))
            for k, term in enumerate(inf["term_names"]):
                out.append(pd.DataFrame({"group": inf["name"], "level": _labels(inf, self._design.data), "term": term, "estimate": b[:, k], "cond_sd": sd[:, k]}))
        return pd.concat(out, ignore_index=True)

    def predict(self, data: pd.DataFrame | None = None, include_random: bool = True) -> pd.Series:
        """Predictions: X beta (+ Z b when ``include_random``). Without ``data`` the rows used in the
        fit; with new data, groups not seen in the fit get random effects of zero."""
        d = self._design
        beta = self.fixed["estimate"].to_numpy()
        if data is None:
            eta = d.X @ beta
            if include_random:
                for lv, b in zip(d.levels, self._sol["b"]):
                    eta = eta + np.einsum("nq,nq->n", lv.Z, b[lv.codes])
            return pd.Series(eta, index=d.data.index, name="predicted")
        if d.x_spec is None:
            from formulaic import model_matrix

            d.x_spec = model_matrix(d.fixed, d.data).model_spec
        Xn = pd.DataFrame(d.x_spec.get_model_matrix(data, na_action="ignore"))
        Xn = Xn[[c for c in Xn.columns if str(c) in d.xnames]]
        eta = Xn.to_numpy(float) @ beta
        if include_random:
            for inf, b in zip(d.level_info, self._sol["b"]):
                missing = [c for c in inf["cols"] if c not in data.columns]
                if missing:
                    raise ColumnError(f"new data lacks grouping column(s) {_fmt_labels(missing)}; pass include_random=False for population predictions")
                if any(sp is None for sp in inf["specs"]):
                    from formulaic import model_matrix

                    inf["specs"] = [sp if sp is not None else model_matrix(e, d.data).model_spec for sp, e in zip(inf["specs"], inf["exprs"])]
                Zn = np.hstack([pd.DataFrame(s.get_model_matrix(data, na_action="ignore")).to_numpy(float) for s in inf["specs"]])
                key = _join_keys(data[list(inf["cols"])]) if len(inf["cols"]) > 1 else data[inf["cols"][0]]
                pos = pd.Index(_labels(inf, d.data)).get_indexer(key)
                bb = np.where((pos >= 0)[:, None], b[np.maximum(pos, 0)], 0.0)
                eta = eta + np.einsum("nq,nq->n", Zn, bb)
        return pd.Series(eta, index=data.index, name="predicted")

    def residuals(self) -> pd.Series:
        return pd.Series(self._design.y, index=self._design.data.index) - self.predict()

    # -- variance shares ------------------------------------------------------------------------
    def icc(self) -> pd.DataFrame:
        """Share of the variance at each level: random-intercept variances and the residual.

        For models with random slopes the shares refer to the intercept variances (i.e. where the
        slope predictors are 0); ``attrs['note']`` says so."""
        rows = []
        for inf, S in zip(self._design.level_info, self._sigmas):
            if "Intercept" in inf["term_names"]:
                k = inf["term_names"].index("Intercept")
                rows.append({"level": inf["name"], "variance": S[k, k]})
        rows.append({"level": "Residual", "variance": self.sigma**2})
        df = pd.DataFrame(rows)
        df["share"] = df["variance"] / df["variance"].sum()
        if any(len(inf["term_names"]) > 1 for inf in self._design.level_info):
            df.attrs["note"] = "random slopes present: shares use intercept variances (slope predictors at 0)"
        return df

    def r2(self) -> pd.Series:
        """Nakagawa & Schielzeth (2013) marginal and conditional R^2, with Johnson's (2014)
        extension for random slopes (mean of z' Sigma z over the rows)."""
        d = self._design
        beta = self.fixed["estimate"].to_numpy()
        var_f = float(np.var(d.X @ beta, ddof=1))
        var_r = 0.0
        for lv, S in zip(d.levels, self._sigmas):
            var_r += float(np.mean(np.einsum("nq,qk,nk->n", lv.Z, S, lv.Z)))
        var_e = self.sigma**2
        tot = var_f + var_r + var_e
        return pd.Series({"marginal": var_f / tot, "conditional": (var_f + var_r) / tot}, name="R2")

    # -- contrasts ---------------------------------------------------------------------------------
    def contrast(self, L) -> pd.Series:
        """Test of a linear combination ``L @ beta`` (L: dict term -> weight or a vector) with the
        model's df method (Satterthwaite as lmerTest's ``contest1D``)."""
        names = self.fixed["term"].tolist()
        if isinstance(L, dict):
            unknown = [k for k in L if k not in names]
            if unknown:
                raise ColumnError(f"unknown term(s) {_fmt_labels(unknown)}; terms are {_fmt_labels(names)}")
            L = np.array([L.get(n, 0.0) for n in names], float)
        L = np.asarray(L, float)
        est = float(L @ self.fixed["estimate"].to_numpy())
        V = self.vcov.to_numpy()
        var = float(L @ V @ L)
        if self.df_method == "satterthwaite":
            g = np.array([L @ self._sat["J"][k] @ L for k in range(self._sat["J"].shape[0])])
            df = 2 * var**2 / float(g @ self._sat["A"] @ g)
        else:
            df = np.inf
        t = est / np.sqrt(var)
        p = 2 * (stats.t.sf(abs(t), df) if np.isfinite(df) else stats.norm.sf(abs(t)))
        crit = stats.t.ppf(0.975, df) if np.isfinite(df) else stats.norm.ppf(0.975)
        se = np.sqrt(var)
        return pd.Series({"estimate": est, "se": se, "df": df, "t": t, "p": p, "ci_low": est - crit * se, "ci_high": est + crit * se})

    # -- display ------------------------------------------------------------------------------------
    def summary(self) -> str:
        crit = "REML criterion" if self.reml else "ML"
        lines = [
            f"Linear mixed model fit by {'REML' if self.reml else 'maximum likelihood'} (alliance-stats)",
            f"Formula: {self.formula}",
            f"{crit}: deviance {self.deviance:.2f}; logLik {self.llf:.2f}; AIC {self.aic:.2f}; BIC {self.bic:.2f}",
            f"Observations: {self.n_obs}; groups: " + ", ".join(f"{k} {v}" for k, v in self.n_groups.items()),
        ]
        if self.n_dropped:
            lines.append(f"Rows left out: {self.n_dropped} (" + "; ".join(f"{k}: {v}" for k, v in self.dropped.items()) + ")")
        lines.append("")
        lines.append("Random effects:")
        lines.append(self.random.to_string(index=False, na_rep="", float_format=lambda x: f"{x:.4f}"))
        lines.append("")
        dfm = "Satterthwaite df (as lmerTest)" if self.df_method == "satterthwaite" else "Wald z"
        lines.append(f"Fixed effects ({dfm}):")
        lines.append(self.fixed.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
        for m in self.messages:
            lines.append(f"Note: {m}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def to_apa(self, digits: int = 2) -> pd.DataFrame:
        """APA-style fixed-effects table: b, SE, df, t, p ('< .001'), 95% CI in brackets.
        Write it out with ``.to_markdown()``, ``.to_latex()`` or ``.to_html()``."""
        f = self.fixed
        return pd.DataFrame(
            {
                "Term": f["term"],
                "b": [f"{v:.{digits}f}" for v in f["estimate"]],
                "SE": [f"{v:.{digits}f}" for v in f["se"]],
                "df": ["inf" if not np.isfinite(v) else f"{v:.1f}" for v in f["df"]],
                "t": [f"{v:.{digits}f}" for v in f["t"]],
                "p": [apa_p(v) for v in f["p"]],
                "95% CI": [fmt_ci(a, b, digits) for a, b in zip(f["ci_low"], f["ci_high"])],
            }
        )

    def _repr_html_(self) -> str:
        head = html.escape(f"Linear mixed model ({'REML' if self.reml else 'ML'}): {self.formula}")
        info = html.escape(
            f"n = {self.n_obs}; " + ", ".join(f"{k}: {v}" for k, v in self.n_groups.items())
            + f"; logLik = {self.llf:.2f}" + (f"; {self.n_dropped} rows left out" if self.n_dropped else "")
        )
        notes = "".join(f"<br><em>{html.escape(m)}</em>" for m in self.messages)
        rnd = self.random.to_html(index=False, na_rep="", float_format=lambda x: f"{x:.4f}")
        return f"<div><strong>{head}</strong><br>{info}{notes}{self.to_apa().to_html(index=False)}{rnd}</div>"

    def plot(self, ax=None, intercept: bool = False):
        """Coefficient plot: fixed effects with 95% CIs."""
        import matplotlib.pyplot as plt

        f = self.fixed if intercept else self.fixed[self.fixed["term"] != "Intercept"]
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 0.5 + 0.4 * max(len(f), 1)))
        yv = np.arange(len(f))[::-1]
        ax.errorbar(f["estimate"], yv, xerr=[f["estimate"] - f["ci_low"], f["ci_high"] - f["estimate"]], fmt="o", color="k", capsize=3)
        ax.axvline(0, color="0.6", lw=0.8, ls="--")
        ax.set_yticks(yv)
        ax.set_yticklabels(f["term"])
        ax.set_xlabel("estimate (95% CI)")
        return ax


# ----------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------
def lmm(formula: str, data: pd.DataFrame, *, reml: bool = True, df_method: str = "satterthwaite",
        engine: str = "auto") -> LMMResult:
    """Fit a linear mixed model written in lme4 syntax; the answers are lme4's and lmerTest's.

    Parameters
    ----------
    formula : str
        ``outcome ~ fixed + (terms | group)``. Random terms: ``(1 | patient)``,
        ``(1 + session | patient)``, ``(0 + x | g)``, ``(1 + x || g)`` (uncorrelated), nested
        ``(1 | therapist/patient)`` or ``(1 | therapist) + (1 | therapist:patient)``, slopes at any
        level. Grouping factors must be nested; crossed factors raise :class:`ModelSpecError`.
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
        ``alliance_stats/models/_lmm_engine.py``). ``"statsmodels"``: statsmodels' MixedLM
        (one grouping factor, or random intercepts and uncorrelated slopes of patients within
        therapists); everything else is computed at its estimate by the same code, so the
        result is the same kind of object and a convergence warning tells when statsmodels
        stopped short of the optimum. ``"auto"`` (default) is ``"fast"``, which covers every
        design ``lmm`` accepts (crossed factors are refused by both).

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
    eng = NestedEngine(d.X, d.y, d.levels)
    engine = "fast" if engine == "auto" else engine
    if engine == "fast":
        opt = _optimize(eng, reml)
    else:
        from ._lmm_statsmodels import statsmodels_theta

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
    messages = []
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
    for lv, inf, Lm, (r, c, dg) in zip(d.levels, d.level_info, lam, eng._tri):
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


# ----------------------------------------------------------------------------------------
# model comparison
# ----------------------------------------------------------------------------------------
def compare(*models: LMMResult) -> pd.DataFrame:
    """Likelihood-ratio tests and AIC/BIC for nested models fitted to the same rows.

    Models are ordered by number of parameters and each is tested against the previous one.
    When they differ in fixed effects and any was fitted by REML, all are refitted by maximum
    likelihood first (REML likelihoods of different fixed parts are not comparable); the
    ``criterion`` column and ``attrs['note']`` say so.
    """
    if len(models) < 2:
        raise ModelSpecError("compare() needs at least two fitted models")
    for m in models:
        if not isinstance(m, LMMResult):
            raise ModelSpecError(f"compare() takes LMMResult objects, got {type(m).__name__}")
    n = {m.n_obs for m in models}
    ys = [m._design.y for m in models]
    if len(n) > 1 or any(not np.array_equal(ys[0], y) for y in ys[1:]) or any(
        not m._design.data.index.equals(models[0]._design.data.index) for m in models[1:]
    ):
        raise ModelSpecError(
            f"the models were fitted to different rows (n = {sorted(n)}) or outcomes; a likelihood-ratio "
            "test needs the same complete cases: drop rows with missing values in any model's columns first"
        )
    fixed_sets = {tuple(m.fixed["term"]) for m in models}
    note = ""
    if len(fixed_sets) > 1 and any(m.reml for m in models):
        models = tuple(m.refit(reml=False) if m.reml else m for m in models)
        note = "refitted with ML: the models differ in their fixed effects, so REML likelihoods are not comparable"
        crit = "ML (refit)"
    else:
        crit = "REML" if all(m.reml for m in models) else "ML"
        if len({m.reml for m in models}) > 1:
            raise ModelSpecError("some models were fitted by REML and some by ML; refit them the same way")
    order = sorted(range(len(models)), key=lambda i: models[i].n_params)
    rows = []
    prev = None
    for i in order:
        m = models[i]
        r = {"model": m.formula, "npar": m.n_params, "AIC": m.aic, "BIC": m.bic, "logLik": m.llf, "deviance": m.deviance, "Chisq": np.nan, "Df": np.nan, "p": np.nan, "criterion": crit}
        if prev is not None:
            chisq = max(2 * (m.llf - prev.llf), 0.0)
            dfd = m.n_params - prev.n_params
            r.update(Chisq=chisq, Df=dfd, p=stats.chi2.sf(chisq, dfd) if dfd > 0 else np.nan)
        rows.append(r)
        prev = m
    out = pd.DataFrame(rows)
    out.attrs["note"] = note
    return out
