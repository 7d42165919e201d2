"""AR(1) residuals within patients: ``lmm(..., residuals="ar1", time="session")``.

The model is nlme's ``lme(..., correlation = corAR1(form = ~ time | group))``:

    y = X beta + Z b + e,   b ~ N(0, sigma^2 Lambda Lambda'),   e ~ N(0, sigma^2 R_phi)

with ``R_phi`` block diagonal over the groups of the innermost grouping factor of the random
effects (the patients in ``(1 | patient)`` or ``(1 | therapist/patient)``), and within a group
``corr(e_s, e_t) = phi^|t - s|`` for the integer times ``s, t`` (session numbers): a gap of k
sessions correlates phi^k, as nlme's ``corAR1`` with an integer covariate.

With phi known the model is the iid model after prewhitening: within a group, rows in time
order, the first row is kept and each later row becomes

    (e_t - phi^g e_{t-1}) / sqrt(1 - phi^(2g)),   g = the gap in time to the previous row

(the inverse Cholesky factor of R_phi; an AR(1) process seen at integer times is Markov, so the
conditional law of e_t given the past rows depends on the previous row only). The transform is
applied to y, X and every level's Z (it mixes rows within a group only, so the nesting is
kept), the existing engine (:mod:`.nested`) evaluates the profiled deviance of the
transformed data, and log|R_phi| = sum log(1 - phi^(2g)) is added (the Jacobian of the
transform; the REML term log|X'V^{-1}X| is unchanged by it). phi is found by Brent's method on
atanh(phi), the profiled deviance over theta minimised at each phi by :func:`.optimize_theta`;
the optimum is polished by Newton steps on the profile.
"""

from __future__ import annotations

import dataclasses
import math
import time as _time

import numpy as np
import pandas as pd
from scipy import optimize

from ...exceptions import (
    ColumnError,
    ModelSpecError,
    OptionError,
    SessionDataError,
    _fmt_labels,
)
from .design import group_labels
from .nested import Level, NestedEngine
from .optimize import CONVERGED_TOL, optimize_theta

RESIDUALS = ("iid", "ar1")
Z_MAX = 5.0  # |atanh(phi)| searched: |phi| up to 0.9999
_H = 1e-4  # step (atanh scale) of the profile's derivatives


def residuals_option(residuals, time, engine: str, df_method: str) -> None:
    """Refuse residual structures and option combinations the package cannot fit."""
    if not isinstance(residuals, str) or residuals not in RESIDUALS:
        raise OptionError("residuals", residuals, RESIDUALS,
                          hint="'ar1' gives AR(1) residuals within patients by session (nlme's corAR1)")
    if residuals == "iid":
        if time is not None:
            raise OptionError("time", time, (None,), hint="time= orders the AR(1) residuals; it needs residuals='ar1'")
        return
    if not isinstance(time, str):
        raise OptionError("time", time, (), hint="residuals='ar1' needs the name of the integer time column, "
                          "e.g. time='session' (as nlme's corAR1(form = ~ session | patient))")
    if engine == "statsmodels":
        raise OptionError("engine", engine, ("auto", "fast"), hint="AR(1) residuals are fitted by the fast engine only")
    if df_method == "kenward-roger":
        raise OptionError("df_method", df_method, ("satterthwaite", "z"),
                          hint="Kenward-Roger is not implemented for AR(1) residuals; use Satterthwaite df (default)")


#: Largest median gap between consecutive times of a patient that the AR(1) accepts (session numbers
#: skip a few sessions; a median gap above this is dates or seconds, where phi^gap vanishes).
MAX_TYPICAL_GAP = 20


class AR1:
    """The AR(1) residual structure of one design: group and time of each row, the prewhitening
    transform at a given phi, and the fit over (theta, phi).

    Parameters
    ----------
    design : Design
        From :func:`.design.build_design`; must be nested.
    data : DataFrame
        The data the design was built from (the time column is read from it).
    time : str
        The integer time column.
    """

    def __init__(self, design, data: pd.DataFrame, time: str):
        if design.crossed:
            raise ModelSpecError(
                f"residuals='ar1' with crossed grouping factors ({_fmt_labels([lv.name for lv in design.levels])}) is not "
                "supported: the AR(1) runs within the innermost grouping factor of a nested design, e.g. "
                "(1 | patient) or (1 | therapist/patient)"
            )
        if time not in data.columns:
            raise ColumnError(f"time={time!r} (the AR(1) time column) is not among the data's columns; available columns: "
                              f"{_fmt_labels(list(data.columns), limit=25)}")
        self.d = design
        self.time = time
        inner = design.levels[0]
        self.group_name = inner.name
        ok = design.columns.ok
        raw = data[time]
        used = raw if ok is None else raw[ok]
        labels = used.index
        if not (pd.api.types.is_numeric_dtype(used) and not pd.api.types.is_bool_dtype(used)):
            raise ColumnError(f"time={time!r} holds non-numeric values (dtype {used.dtype}); the AR(1) needs integer times "
                              "(session numbers 1, 2, 3, ...)")
        t = used.to_numpy(dtype=float, na_value=np.nan)
        bad = np.isnan(t)
        if bad.any():
            raise ColumnError(f"time={time!r} is missing at row(s) {_fmt_labels(labels[bad].tolist())} of the rows the model "
                              "uses; fill in the session numbers or drop those rows first")
        frac = t != np.round(t)
        if frac.any() or np.isinf(t).any():
            frac = frac | np.isinf(t)
            raise ColumnError(f"time={time!r} holds non-integer values ({_fmt_labels(used[frac].tolist())}) at row(s) "
                              f"{_fmt_labels(labels[frac].tolist())}; the AR(1) needs integer times (a gap of k sessions "
                              "correlates phi^k), e.g. the session number")
        t = t.astype(np.int64)
        g = inner.codes
        order = np.lexsort((t, g))
        gs, ts = g[order], t[order]
        same = np.r_[False, gs[1:] == gs[:-1]]
        dt = np.r_[0, np.diff(ts)]
        dup = same & (dt == 0)
        if dup.any():
            pos = order[np.flatnonzero(dup)]
            prev = order[np.flatnonzero(dup) - 1]
            rows = sorted(set(labels[np.r_[prev, pos]].tolist()), key=str)
            ids = group_labels(design.level_info[0], design.data)[np.unique(gs[dup])]
            raise SessionDataError(
                f"time={time!r}: {int(dup.sum())} repeated time(s) within {self.group_name} {_fmt_labels(ids.tolist())} "
                f"({time} {_fmt_labels(ts[dup].tolist())}) at row(s) {_fmt_labels(rows)}; AR(1) residuals need distinct "
                f"times within each {self.group_name}: remove or merge the repeated sessions",
                rows=rows,
            )
        gaps = dt[same]
        if len(gaps) and int(np.median(gaps)) > MAX_TYPICAL_GAP:
            raise ColumnError(
                f"time={time!r}: consecutive rows of a {self.group_name} are a median of {int(np.median(gaps))} units apart; "
                f"the AR(1) correlates rows k units apart by phi^k, which cannot be estimated at such gaps. {time!r} looks "
                "like dates, days or seconds: give the session number (1, 2, 3, ...) instead")
        self.order = order
        self.gap = np.where(same, dt, 0)  # 0 = the first row of a group
        self._later = same
        self._W = np.hstack([design.X, design.y[:, None]] + [lv.Z for lv in design.levels])[order]
        self._cache: dict = {}
        self.phi = 0.0

    # -- the transform -----------------------------------------------------------------------
    def _coef(self, phi):
        a = np.where(self._later, np.power(phi, self.gap.astype(float)), 0.0)
        return a, 1.0 - a * a

    def logdet(self, phi: float) -> float:
        """log|R_phi| (the correlation matrix of the residuals, all groups)."""
        return float(np.log(self._coef(phi)[1]).sum())

    def engine(self, phi: float) -> NestedEngine:
        """The nested engine of the data prewhitened at ``phi`` (cached)."""
        key = float(phi)
        eng = self._cache.get(key)
        if eng is None:
            a, v = self._coef(phi)
            W = self._W
            prev = np.vstack([W[:1], W[:-1]])
            Ws = (W - a[:, None] * prev) / np.sqrt(v)[:, None]
            Wt = np.empty_like(Ws)
            Wt[self.order] = Ws
            p = self.d.X.shape[1]
            levels, off = [], p + 1
            for lv in self.d.levels:
                levels.append(Level(name=lv.name, Z=Wt[:, off : off + lv.q], blocks=list(lv.blocks), codes=lv.codes,
                                    n_groups=lv.n_groups, parent=lv.parent))
                off += lv.q
            eng = NestedEngine(Wt[:, :p], Wt[:, p], levels)
            if len(self._cache) > 200:
                self._cache.clear()
            self._cache[key] = eng
        return eng

    # -- deviance over (theta, phi) ---------------------------------------------------------------
    def deviance_vp(self, theta_phi, sigma, reml=True) -> float:
        """Deviance at (original-scale theta, phi) and sigma, beta profiled (for Satterthwaite:
        the variance parameters are theta, phi and sigma)."""
        phi = float(theta_phi[-1])
        if not -1.0 < phi < 1.0:
            return np.inf
        return float(self.engine(phi).deviance_vp(theta_phi[:-1], sigma, reml)) + self.logdet(phi)

    def vcov_beta(self, theta_phi, sigma):
        return self.engine(float(theta_phi[-1])).vcov_beta(theta_phi[:-1], sigma)

    # -- what inference._satterthwaite asks of an engine: coordinates (theta, phi) as they are ----
    @property
    def theta_rowscale(self) -> np.ndarray:
        return np.ones(self._n_vp)  # set by to_int(), which _satterthwaite calls first

    _n_vp = 0

    def to_int(self, theta_phi) -> np.ndarray:
        x = np.asarray(theta_phi, float)
        self._n_vp = len(x)
        return x

    def to_orig(self, theta_phi) -> np.ndarray:
        return np.asarray(theta_phi, float)

    def varpar_terms(self, theta_phi, reml: bool) -> dict:
        """The covariance of beta at sigma = 1 (it scales with sigma^2) and the point itself."""
        phi = float(theta_phi[-1])
        cov = self.vcov_beta(theta_phi, 1.0) if -1.0 < phi < 1.0 else np.full((self.d.X.shape[1],) * 2, np.nan)
        return {"theta_phi": np.asarray(theta_phi, float), "cov": cov}

    def deviance_vp_from(self, terms: dict, sigma: float, reml: bool) -> float:
        return self.deviance_vp(terms["theta_phi"], sigma, reml)

    # -- the fit ------------------------------------------------------------------------------------
    def fit(self, reml: bool, optimizer: str = "bobyqa", start=None, restart: bool = True):
        """(engine at phi-hat, internal theta, OptSummary) at the optimum over (theta, phi); the
        OptSummary's objective is the full deviance (log|R_phi| included), its checks add
        ``phi_gradient`` and ``phi_newton_decrement`` (the profile's, on the atanh scale)."""
        t0 = _time.perf_counter()
        warm = {"theta": None}

        def profile(z):
            phi = math.tanh(z)
            eng = self.engine(phi)
            s = start if start is not None else (warm["theta"] if eng.n_theta > 1 else None)
            x, os = optimize_theta(eng, reml, optimizer=optimizer, start=s, restart=False)
            warm["theta"] = eng.to_orig(x)
            return os.objective + self.logdet(phi)

        r = optimize.minimize_scalar(profile, bounds=(-Z_MAX, Z_MAX), method="bounded", options={"xatol": 1e-6})
        z = float(r.x)
        fz = float(r.fun)
        # Newton steps on the profile (central differences), while they lower it
        for _ in range(4):
            fp, fm = profile(z + _H), profile(z - _H)
            g = (fp - fm) / (2 * _H)
            h = (fp - 2 * fz + fm) / _H**2
            if not (h > 0) or abs(g) * abs(g) / (2 * h) < 1e-12:
                break
            zn = float(np.clip(z - g / h, -Z_MAX, Z_MAX))
            fn = profile(zn)
            if fn >= fz:
                break
            z, fz = zn, fn
        fp, fm = profile(z + _H), profile(z - _H)
        g = (fp - fm) / (2 * _H)
        h = (fp - 2 * fz + fm) / _H**2
        dec = g * g / (2 * h) if h > 0 else math.inf
        phi = math.tanh(z)
        self.phi = phi
        eng = self.engine(phi)
        x, os = optimize_theta(eng, reml, optimizer=optimizer, start=start, restart=restart)
        # the fit's convergence message reads the largest decrement: theta's or phi's
        checks = dict(os.checks, phi_gradient=float(g), phi_newton_decrement=float(dec),
                      newton_decrement=max(os.checks["newton_decrement"], float(dec)))
        at_edge = abs(z) >= Z_MAX - 1e-3
        converged = bool(os.converged and dec <= CONVERGED_TOL and not at_edge)
        os = dataclasses.replace(os, objective=float(os.objective + self.logdet(phi)), checks=checks, converged=converged,
                                 n_evals=os.n_evals + int(r.nfev) + 8,
                                 seconds=_time.perf_counter() - t0)
        return eng, x, os
