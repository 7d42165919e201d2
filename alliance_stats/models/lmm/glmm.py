"""Generalized linear mixed models (binomial, Poisson) with lme4's ``glmer`` formulation and answers.

The model (Bates, Maechler, Bolker & Walker 2015; lme4's ``glmer``):

    g(E[y | b]) = X beta + Z b,   b = Lambda_theta u,   u ~ N(0, I)

with the canonical link g (logit for the binomial, log for the Poisson). For given theta (and
beta), the conditional modes u are found by penalised iteratively reweighted least squares
(PIRLS: Newton steps on the penalised deviance ``sum d_i(y_i, mu_i) + |u|^2``, step halving when
it rises). The Laplace approximation of the deviance at the mode is

    -2 log L ~= log|L|^2 + |u|^2 - 2 log p(y | u)         (L L' = Lambda'Z'WZ Lambda + I)

and, for one scalar random effect, adaptive Gauss-Hermite quadrature (``nagq`` > 1) replaces it
by a per-group quadrature centred at the mode and scaled by the conditional SD.

As glmer, the outer optimisation has two stages: theta alone with beta from PIRLS, then theta
and beta jointly on the Laplace (or quadrature) deviance; both with BOBYQA (nlopt's
``LN_BOBYQA``) at tight tolerances. Standard errors come from the Hessian of that deviance in
(theta, beta) by central differences, as lme4's default ``vcov`` (``use.hessian = TRUE``).

When the grouping factors are nested, the penalised least-squares system of each PIRLS step is
eliminated level by level from per-group cross-products (:class:`GLMMEngine`), so any number of
nested levels works, including observation-level random effects in a Poisson model. Crossed and
partially crossed factors use the blocked Cholesky factorisation of the LMM's crossed engine,
with weights, for that step (:mod:`.glmm_crossed`); the rest (PIRLS, deviances, optimisation) is
shared.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats

from ..._format import apa_p, fmt_ci, fmt_num
from ...exceptions import (
    ColumnError,
    ConvergenceWarning,
    ModelSpecError,
    OptionError,
    SingularFitWarning,
    _fmt_labels,
    user_stacklevel,
)
from .design import Design, build_design
from .nested import _tri_index
from .formula import _split_top
from .result import MixedResult, _bool_options, random_part, variance_rows

FAMILIES = ("binomial", "poisson")
SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on theta
GRAD_TOL = 2e-3  # lme4's check.conv.grad tolerance on the curvature-scaled gradient
HESS_STEP = 1e-4  # central-difference step of the Hessian (lme4's deriv12 uses 1e-4)
PIRLS_TOL = 1e-11  # largest Newton step (relative to 1 + |u|) at which PIRLS stops
_RESP = "_glmm_response_"  # working column name for cbind() and weighted responses


# -- families ----------------------------------------------------------------------------------


class _Binomial:
    name, link, ratio = "binomial", "logit", "or"

    @staticmethod
    def mu(eta):
        return special.expit(eta)

    @staticmethod
    def weights(eta, mu, wt):  # W = wt * mu_eta^2 / V(mu); logit: mu (1 - mu)
        return wt * mu * special.expit(-eta)

    @staticmethod
    def working(y, eta, mu):  # (y - mu) / mu_eta
        return (y - mu) / (mu * special.expit(-eta))

    @staticmethod
    def minus2ll(y, eta, wt):
        # -2 log p(y | eta) per row, as R's binomial()$aic: dbinom(round(wt y), round(wt), mu)
        m = np.round(wt)
        s = np.round(wt * y)
        const = special.gammaln(m + 1) - special.gammaln(s + 1) - special.gammaln(m - s + 1)
        return -2.0 * (const + s * special.log_expit(eta) + (m - s) * special.log_expit(-eta))

    @staticmethod
    def devres(y, eta, wt):
        return 2.0 * wt * (special.xlogy(y, y) + special.xlogy(1 - y, 1 - y)
                           - y * special.log_expit(eta) - (1 - y) * special.log_expit(-eta))

    @staticmethod
    def saturated(y, wt):  # -2 log p(y | mu = y)
        m, s = np.round(wt), np.round(wt * y)
        const = special.gammaln(m + 1) - special.gammaln(s + 1) - special.gammaln(m - s + 1)
        return -2.0 * (const + special.xlogy(s, y) + special.xlogy(m - s, 1 - y))

    @staticmethod
    def start(y, wt):  # R's binomial()$initialize: mustart = (wt y + 0.5) / (wt + 1)
        mu = (wt * y + 0.5) / (wt + 1)
        return special.logit(mu)


class _Poisson:
    name, link, ratio = "poisson", "log", "rr"

    @staticmethod
    def mu(eta):
        return np.exp(eta)

    @staticmethod
    def weights(eta, mu, wt):
        return wt * mu

    @staticmethod
    def working(y, eta, mu):
        return (y - mu) / mu

    @staticmethod
    def minus2ll(y, eta, wt):
        return -2.0 * wt * (y * eta - np.exp(eta) - special.gammaln(y + 1))

    @staticmethod
    def devres(y, eta, wt):
        return 2.0 * wt * (special.xlogy(y, y) - y * eta - y + np.exp(eta))

    @staticmethod
    def saturated(y, wt):
        return -2.0 * wt * (special.xlogy(y, y) - y - special.gammaln(y + 1))

    @staticmethod
    def start(y, wt):  # R's poisson()$initialize: mustart = y + 0.1
        return np.log(y + 0.1)


_FAMILY = {"binomial": _Binomial, "poisson": _Poisson}


# -- the deviance engine -------------------------------------------------------------------------


class GLMMEngine:
    """Penalised IRLS, Laplace and adaptive Gauss-Hermite deviances of a GLMM with nested
    grouping factors.

    Parameters
    ----------
    X : (n, p) fixed-effects matrix; y : (n,) response (a proportion for binomial rows with
    ``wt`` trials); wt : (n,) prior weights; levels : list of (Z (n, q_l), blocks, codes,
    n_groups), innermost first (lme4's order of the random-effect terms), each group of a level
    within one group of the next; family : "binomial" or "poisson".

    Notes
    -----
    Each PIRLS step solves the penalised weighted least-squares system

        [ZL'WZL + I   ZL'WX] [u   ]   [ZL'Wz]
        [X'WZL        X'WX ] [beta] = [X'Wz ]       (ZL = Z Lambda, z the working response)

    (without the beta row and column when beta is given). Because the grouping factors are
    nested, the system is eliminated level by level, innermost first, from per-group weighted
    cross-products of [ZL | X | z]: each group's block is factored on its own and its Schur
    complement added to its parent's, as the LMM engine in :mod:`.nested` does for the profiled
    deviance. log|L|^2 is the sum of the groups' log-determinants.
    """

    def __init__(self, X, y, wt, levels, family):
        self.X = np.asarray(X, float)
        self.y = np.asarray(y, float)
        self.wt = np.asarray(wt, float)
        self.fam = _FAMILY[family]
        self.n, self.p = self.X.shape
        self.levels = levels
        self.tri = [_tri_index(blocks) for _, blocks, _, _ in levels]
        self.n_theta = int(sum(len(t[0]) for t in self.tri))
        self.lower = np.concatenate([np.where(t[2], 0.0, -np.inf) for t in self.tri])
        self.qs = [Z.shape[1] for Z, _, _, _ in levels]
        self.G = [G for _, _, _, G in levels]
        self.codes = [np.asarray(c) for _, _, c, _ in levels]
        self.offsets = np.cumsum([0] + [q * G for q, G in zip(self.qs, self.G)])
        self.q = int(self.offsets[-1])
        self.parents = []
        for l in range(len(levels) - 1):
            par = np.empty(self.G[l], np.int64)
            par[self.codes[l]] = self.codes[l + 1]
            self.parents.append(par)
        self.order = np.argsort(self.codes[0], kind="stable")
        c0 = self.codes[0][self.order]
        self.starts = np.flatnonzero(np.r_[True, c0[1:] != c0[:-1]])
        self.sat = float(self.fam.saturated(self.y, self.wt).sum())  # -2 log p(y | mu = y)
        self._u = np.zeros(self.q)
        self._beta = None
        self.evaluations = 0

    # theta -> Lambda, Z Lambda ----------------------------------------------------------------
    def lambdas(self, theta):
        out, k = [], 0
        for q, (r, c, _) in zip(self.qs, self.tri):
            L = np.zeros((q, q))
            L[r, c] = theta[k : k + len(r)]
            k += len(r)
            out.append(L)
        return out

    def zl(self, theta):
        """Per level, the (n, q_l) rows of Z Lambda."""
        return [Z @ L for (Z, _, _, _), L in zip(self.levels, self.lambdas(theta))]

    def start_theta(self):
        return np.concatenate([np.where(t[2], 1.0, 0.0) for t in self.tri])

    def split(self, u):
        return [u[self.offsets[l] : self.offsets[l + 1]].reshape(self.G[l], self.qs[l]) for l in range(len(self.qs))]

    def _eta_re(self, ZL, u):
        eta = np.zeros(self.n)
        for Zl, ul, codes in zip(ZL, self.split(u), self.codes):
            eta += np.einsum("nq,nq->n", Zl, ul[codes]) if Zl.shape[1] > 1 else Zl[:, 0] * ul[codes, 0]
        return eta

    def _ancestors(self, l, lj):
        idx = np.arange(self.G[l])
        for k in range(l, lj):
            idx = self.parents[k][idx]
        return idx

    def _aggregate(self, S, l):
        out = np.zeros((self.G[l + 1],) + S.shape[1:])
        np.add.at(out, self.parents[l], S)
        return out

    # the penalised weighted least-squares solve -----------------------------------------------------
    def _solve(self, ZL, W, z, joint):
        """New (u, beta), log|L|^2, the fixed-effects Schur complement (joint) and the factors."""
        cols = ZL + ([self.X] if joint else []) + [z[:, None]]
        V = np.hstack(cols)[self.order]
        Vw = V * W[self.order, None]
        cur = np.add.reduceat(Vw[:, :, None] * V[:, None, :], self.starts, axis=0)
        L = len(self.qs)
        logdet = 0.0
        kept = []
        for l, q in enumerate(self.qs):
            if q == 1:
                Lc = np.sqrt(cur[:, :1, :1] + 1.0)
                C = cur[:, :1, 1:] / Lc
            else:
                Lc = np.linalg.cholesky(cur[:, :q, :q] + np.eye(q))
                C = np.linalg.solve(Lc, cur[:, :q, q:])
            logdet += 2.0 * float(np.log(np.diagonal(Lc, axis1=1, axis2=2)).sum())
            S = cur[:, q:, q:] - np.matmul(np.swapaxes(C, 1, 2), C)
            kept.append((Lc, C))
            cur = self._aggregate(S, l) if l + 1 < L else S.sum(axis=0)
        p = self.p if joint else 0
        Sb = cur[:p, :p]
        beta = np.linalg.solve(Sb, cur[:p, p]) if joint else None
        us = [None] * L
        for l in range(L - 1, -1, -1):
            Lc, C = kept[l]
            hq = sum(self.qs[l + 1 :])
            rhs = C[:, :, -1].copy()
            if joint:
                rhs -= C[:, :, hq : hq + p] @ beta
            if hq:
                anc = np.hstack([us[lj][self._ancestors(l, lj)] for lj in range(l + 1, L)])
                rhs -= np.einsum("gij,gj->gi", C[:, :, :hq], anc)
            us[l] = rhs / Lc[:, :, 0] if self.qs[l] == 1 else np.linalg.solve(np.swapaxes(Lc, 1, 2), rhs[:, :, None])[:, :, 0]
        u = np.concatenate([x.ravel() for x in us])
        return u, beta, logdet, Sb, kept

    # PIRLS ------------------------------------------------------------------------------------------
    def pirls(self, theta, beta=None, maxit=200):
        """Conditional modes at theta (and beta; beta from PIRLS too when None).

        Returns dict(u, beta, eta, logdet, W, ZL, kept, S, pdev, iterations)."""
        fam, X, y, wt = self.fam, self.X, self.y, self.wt
        ZL = self.zl(theta)
        joint = beta is None
        u = self._u.copy()
        b = (self._beta.copy() if self._beta is not None else self._glm_start()) if joint else np.asarray(beta, float)
        fixed = X @ b
        eta = self._eta_re(ZL, u) + fixed
        pdev = self._pdev(eta, u)
        if not np.isfinite(pdev):  # a warm start that does not suit these parameters
            u = np.zeros(self.q)
            eta = fixed.copy()
            pdev = self._pdev(eta, u)
        it = 0
        for it in range(1, maxit + 1):
            mu = fam.mu(eta)
            W = fam.weights(eta, mu, wt)
            z = eta - (0.0 if joint else fixed) + fam.working(y, eta, mu)
            un, bn, logdet, Sb, kept = self._solve(ZL, W, z, joint)
            du = un - u
            db = bn - b if joint else np.zeros(0)
            size = max(np.abs(du).max(initial=0.0), np.abs(db).max(initial=0.0))
            scale = 1.0 + max(np.abs(u).max(initial=0.0), np.abs(b).max(initial=0.0) if joint else 0.0)
            if size < 1e-13 * scale:
                break  # at the mode to rounding: W and logdet above are at the mode
            step, accepted = 1.0, False
            for _ in range(40):
                ut = u + step * du
                bt = b + step * db if joint else b
                etat = self._eta_re(ZL, ut) + (X @ bt if joint else fixed)
                pt = self._pdev(etat, ut)
                if np.isfinite(pt) and pt <= pdev + 1e-10 * abs(pdev):
                    accepted = True
                    break
                step /= 2
            if not accepted:
                raise FloatingPointError("PIRLS step halving failed to reduce the penalised deviance")
            u, b, eta, pdev = ut, bt, etat, pt
            if step == 1.0 and size < PIRLS_TOL * scale:
                # converged; factor once more at the new point (the last step was not negligible)
                mu = fam.mu(eta)
                W = fam.weights(eta, mu, wt)
                z = eta - (0.0 if joint else fixed) + fam.working(y, eta, mu)
                _, _, logdet, Sb, kept = self._solve(ZL, W, z, joint)
                break
        else:
            raise FloatingPointError(f"PIRLS did not converge in {maxit} iterations")
        self._u = u
        if joint:
            self._beta = b
        self.evaluations += 1
        return dict(u=u, beta=b, eta=eta, logdet=logdet, W=W, ZL=ZL, kept=kept, S=Sb if joint else None,
                    pdev=pdev, iterations=it)

    def _pdev(self, eta, u):
        with np.errstate(over="ignore", invalid="ignore"):
            return float(self.fam.devres(self.y, eta, self.wt).sum() + u @ u)

    def _glm_start(self):
        """beta of the fixed-effects working regression at the family's mustart (the first step
        of glm's IRLS): the start of PIRLS in stage 1."""
        eta = self.fam.start(self.y, self.wt)
        mu = self.fam.mu(eta)
        W = self.fam.weights(eta, mu, self.wt)
        z = eta + self.fam.working(self.y, eta, mu)
        sw = np.sqrt(W)
        return np.linalg.lstsq(self.X * sw[:, None], z * sw, rcond=None)[0]

    # deviances --------------------------------------------------------------------------------------
    def laplace(self, theta, beta=None):
        """log|L|^2 + |u|^2 - 2 log p(y | u) at the conditional modes (lme4's Laplace deviance)."""
        s = self.pirls(theta, beta)
        return s["logdet"] + s["u"] @ s["u"] + float(self.fam.minus2ll(self.y, s["eta"], self.wt).sum())

    def agq(self, theta, beta, rule):
        """Adaptive Gauss-Hermite deviance (one scalar random effect), on the scale of the Laplace
        deviance (lme4's glmerAGQ value plus the saturated model's -2 log-likelihood)."""
        s = self.pirls(theta, beta)
        codes, G = self.codes[0], self.G[0]
        zl = s["ZL"][0][:, 0]
        fixed = self.X @ np.asarray(beta, float)
        u0 = s["u"]
        A = 1.0 + np.bincount(codes, s["W"] * zl * zl, minlength=G)
        sd = 1.0 / np.sqrt(A)
        devc0 = u0 * u0 + np.bincount(codes, self.fam.devres(self.y, s["eta"], self.wt), minlength=G)
        mult = np.zeros(G)
        for z, w in rule:
            if z == 0:
                mult += w
                continue
            uk = u0 + z * sd
            with np.errstate(over="ignore"):
                devc = uk * uk + np.bincount(codes, self.fam.devres(self.y, fixed + zl * uk[codes], self.wt), minlength=G)
            mult += w * np.exp(-0.5 * (devc - devc0) + 0.5 * z * z)
        return float(devc0.sum() + np.log(A).sum() - 2.0 * np.log(mult).sum()) + self.sat

    def cond_var(self, kept, theta):
        """Per level, (G, q_l, q_l) conditional covariances of b at the mode, Lambda [A^-1]_gg
        Lambda' (lme4's condVar with sigma = 1), from the factors of a u-only solve."""
        L = len(self.qs)
        chain = [None] * L
        for l in range(L - 1, -1, -1):
            Lc, C = kept[l]
            q = self.qs[l]
            Li = np.linalg.inv(Lc)
            base = np.matmul(np.swapaxes(Li, 1, 2), Li)
            hq = sum(self.qs[l + 1 :])
            if not hq:
                chain[l] = base
                continue
            E = np.matmul(np.swapaxes(Li, 1, 2), C[:, :, :hq])
            Vp = chain[l + 1][self.parents[l]]
            EV = np.matmul(E, Vp)
            full = np.empty((self.G[l], q + hq, q + hq))
            full[:, :q, :q] = base + np.matmul(EV, np.swapaxes(E, 1, 2))
            full[:, :q, q:] = -EV
            full[:, q:, :q] = -np.swapaxes(EV, 1, 2)
            full[:, q:, q:] = Vp
            chain[l] = full
        return [np.einsum("ij,gjk,lk->gil", Lm, chain[l][:, : self.qs[l], : self.qs[l]], Lm) for l, Lm in enumerate(self.lambdas(theta))]


def gh_rule(n):
    """Gauss-Hermite nodes and weights for the standard normal density (lme4's GHrule)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    z = (z - z[::-1]) / 2
    w = (w + w[::-1]) / 2
    w = w / w.sum()
    z[np.abs(z) < 1e-14] = 0.0
    return list(zip(z, w))


# -- optimisation --------------------------------------------------------------------------------


def _bobyqa(f, x0, lower, step, xtol_abs, ftol_abs, maxeval):
    """Minimise f with nlopt's LN_BOBYQA; returns (x, f(x), evaluations, nlopt return code)."""
    import nlopt

    k = len(x0)
    best = {"x": np.array(x0, float), "f": np.inf}
    count = [0]

    def obj(x, grad):
        count[0] += 1
        try:
            v = f(np.array(x))
        except (FloatingPointError, np.linalg.LinAlgError, RuntimeError):
            v = np.inf
        if not np.isfinite(v):
            return 1e300
        if v < best["f"]:
            best["x"], best["f"] = np.array(x), v
        return v

    opt = nlopt.opt(nlopt.LN_BOBYQA, k)
    opt.set_min_objective(obj)
    opt.set_lower_bounds([lo if np.isfinite(lo) else -np.inf for lo in lower])
    opt.set_initial_step(list(step))
    opt.set_xtol_abs(list(xtol_abs))
    opt.set_ftol_abs(ftol_abs)
    opt.set_maxeval(maxeval)
    x0 = np.maximum(np.asarray(x0, float), np.where(np.isfinite(lower), lower, -np.inf))
    code = None
    try:
        opt.optimize(list(x0))
        code = int(opt.last_optimize_result())
    except nlopt.RoundoffLimited:
        code = int(nlopt.ROUNDOFF_LIMITED)
    return best["x"], best["f"], count[0], code


_NLOPT_CODES = {1: "success", 2: "stopval reached", 3: "ftol reached", 4: "xtol reached", 5: "maxeval reached",
                6: "maxtime reached", -4: "roundoff limited"}


def _derivs(f, x, f0, h=HESS_STEP):
    """Gradient and Hessian by central differences with step h (lme4's deriv12 pattern)."""
    k = len(x)
    g = np.zeros(k)
    H = np.zeros((k, k))
    E = np.eye(k) * h
    fp = [f(x + E[i]) for i in range(k)]
    fm = [f(x - E[i]) for i in range(k)]
    for i in range(k):
        g[i] = (fp[i] - fm[i]) / (2 * h)
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h**2
        for j in range(i):
            H[i, j] = H[j, i] = (f(x + E[i] + E[j]) - f(x + E[i] - E[j]) - f(x - E[i] + E[j]) + f(x - E[i] - E[j])) / (4 * h * h)
    return g, H


# -- response ------------------------------------------------------------------------------------


def _response(formula, frame, family, weights, orig_index):
    """(formula for build_design, frame, prior weights column or None, left-out counts, label).

    Reads ``cbind(successes, failures) ~ ...`` (binomial), or a plain outcome with optional
    ``weights`` (binomial proportions). Rows missing a column of the response are left out here
    and counted under the first missing column."""
    if not isinstance(formula, str) or "~" not in formula:
        raise ModelSpecError(f"formula must be a string like 'dropout ~ alliance + (1 | therapist)', got {formula!r}")
    lhs, rhs = formula.split("~", 1)
    lhs = lhs.strip()
    m = re.fullmatch(r"cbind\s*\((.*)\)", lhs, flags=re.S)
    dropped = {}
    if m is None:
        if weights is None:
            return formula, frame, None, dropped, lhs
        if family != "binomial":
            raise OptionError("weights", weights, hint="prior weights are supported for binomial proportions only "
                              "(the number of trials of each row); leave weights out for the Poisson family")
        if not isinstance(weights, str) or weights not in frame.columns:
            raise ColumnError(f"weights={weights!r} is not a column of the data; give the column holding each row's "
                              "number of trials")
        w = pd.to_numeric(frame[weights], errors="coerce")
        bad = w.notna() & ~(w > 0)
        if bad.any() or (frame[weights].notna() & w.isna()).any():
            rows = orig_index[(bad | (frame[weights].notna() & w.isna())).to_numpy()]
            raise ModelSpecError(f"weights column {weights!r} must hold positive numbers of trials; see rows "
                                 f"{_fmt_labels(rows)}")
        miss = w.isna()
        if miss.any():
            dropped[f"missing {weights}"] = int(miss.sum())
            frame = frame.loc[~miss.to_numpy()]
        return formula, frame.assign(**{_RESP + "w": w[~miss]}), _RESP + "w", dropped, lhs
    if family != "binomial":
        raise ModelSpecError(f"cbind(successes, failures) is a binomial response; family={family!r} needs a single "
                             f"count outcome (write it as e.g. 'count ~ x + (1 | g)')")
    if weights is not None:
        raise ModelSpecError("give the trials either through cbind(successes, failures) or through weights, not both")
    parts = [p.strip() for p in _split_top(m.group(1), ",")]
    if len(parts) != 2 or not all(parts):
        raise ModelSpecError(f"{lhs!r}: write cbind(successes, failures), two columns or expressions such as "
                             "cbind(incidence, size - incidence)")
    values = []
    from formulaic import Formula, model_matrix

    missing_any = np.zeros(len(frame), bool)
    for part in parts:
        name = part[1:-1] if part.startswith("`") and part.endswith("`") else part
        if name in frame.columns:
            cols = [name]
        else:
            try:
                cols = sorted(Formula(f"0 + I({part})").required_variables, key=lambda c: part.find(str(c)))
            except Exception as e:  # formulaic's parser errors: name the expression
                raise ModelSpecError(f"cannot read {part!r} in {lhs!r}: {e}") from None
            cols = [str(c) for c in cols]
            unknown = [c for c in cols if c not in frame.columns]
            if unknown or not cols:
                raise ColumnError(f"{part!r} in {lhs!r} uses {_fmt_labels(unknown or [part])}, not among the data's columns")
        for c in cols:
            miss = frame[c].isna().to_numpy() & ~missing_any
            if miss.any():
                dropped[f"missing {c}"] = dropped.get(f"missing {c}", 0) + int(miss.sum())
                missing_any |= miss
        values.append((part, name, cols))
    frame = frame.loc[~missing_any]
    out = []
    for part, name, cols in values:
        if name in frame.columns:
            v = pd.to_numeric(frame[name], errors="coerce")
        else:
            v = pd.DataFrame(model_matrix(f"0 + I({part})", frame, na_action="ignore")).iloc[:, 0]
            v.index = frame.index
        out.append(v.astype(float))
    s, f = out
    bad = ~(np.isfinite(s) & np.isfinite(f) & (s >= 0) & (f >= 0) & (np.abs(s - np.round(s)) < 1e-8) & (np.abs(f - np.round(f)) < 1e-8))
    if bad.any():
        raise ModelSpecError(f"{lhs!r}: successes and failures must be whole numbers >= 0; see rows "
                             f"{_fmt_labels(orig_index[frame.index[bad.to_numpy()]])}")
    trials = s + f
    none = (trials == 0).to_numpy()
    if none.any():
        dropped["no trials (successes + failures = 0)"] = int(none.sum())
        frame, s, trials = frame.loc[~none], s[~none], trials[~none]
    frame = frame.assign(**{_RESP: s / trials, _RESP + "w": trials})
    return _RESP + " ~" + rhs, frame, _RESP + "w", dropped, lhs


# -- the result ------------------------------------------------------------------------------------


@dataclass(repr=False)
class GLMMResult(MixedResult):
    """A fitted generalized linear mixed model (see :func:`alliance_stats.glmm`).

    Attributes
    ----------
    fixed : DataFrame
        term, estimate (log-odds or log-rate), se, z, p, ci_low, ci_high (95% Wald), and the ratio
        scale: ``or``, ``or_low``, ``or_high`` (binomial: odds ratios) or ``rr``, ``rr_low``,
        ``rr_high`` (Poisson: rate ratios).
    random : DataFrame
        Variance components on the link scale: group, term1, term2, variance, sd, corr
        (covariance rows have term2 and corr); no residual row (binomial and Poisson have none).
    llf, aic, bic : float
        Log-likelihood (Laplace or quadrature approximation, including the saturated model's
        constant, so that Laplace and quadrature fits and glm are on one scale; see Notes of
        :func:`glmm`) and information criteria as lme4 (parameters: theta and beta).
    converged, singular : bool
    optsum : dict
        What the optimiser did: optimizer, stages (start, evaluations, nlopt result per stage),
        start, evaluations, theta, beta, deviance, gradient, checks (each check's value,
        tolerance and whether it passed), pirls_tol, hessian_step.
    n_obs, n_groups, n_dropped, dropped, family, link, nagq, formula, theta, vcov, messages
    """

    formula: str
    family: str
    link: str
    nagq: int
    fixed: pd.DataFrame
    random: pd.DataFrame
    llf: float
    aic: float
    bic: float
    converged: bool
    singular: bool
    n_obs: int
    n_groups: dict
    n_dropped: int
    dropped: pd.Series
    theta: np.ndarray
    vcov: pd.DataFrame
    optsum: dict
    messages: list
    dropped_terms: list
    _design: Design = field(default=None)
    _engine: GLMMEngine = field(default=None)
    _mode: dict = field(default=None)
    _index: pd.Index = field(default=None)

    @property
    def deviance(self) -> float:
        """-2 log-likelihood."""
        return -2 * self.llf

    @property
    def params(self) -> pd.Series:
        return self.fixed.set_index("term")["estimate"]

    @property
    def n_params(self) -> int:
        return len(self.fixed) + len(self.theta)

    # -- random effects, prediction ----------------------------------------------------------
    def _modes(self) -> list:
        """The conditional modes b = Lambda u of each level (groups x terms)."""
        eng = self._engine
        return [u @ L.T for u, L in zip(eng.split(self._mode["u"]), eng.lambdas(self.theta))]

    def random_effects(self) -> pd.DataFrame:
        """Conditional modes of the random effects (lme4's ``ranef``) with conditional SDs, long
        format: group (grouping factor), level (the group's ID), term, estimate, cond_sd."""
        if "condvar" not in self._mode:
            self._mode["condvar"] = self._engine.cond_var(self._mode["kept"], self.theta)
        return self._ranef_frame(self._modes(), self._mode["condvar"])

    def predict(self, data: pd.DataFrame | None = None, type: str = "link", include_random: bool = True,
                allow_new_levels: bool = False) -> pd.Series:
        """Predictions on the link scale (``type="link"``: log-odds or log-rate) or the response
        scale (``type="response"``: probability or expected count).

        Without ``data``: the rows used in the fit (the data's own index). With new data, groups
        not seen in the fit are refused by name, as lme4's ``predict(newdata)``; with
        ``allow_new_levels=True`` they get a random effect of zero and a warning counts them.
        ``include_random=False`` gives the prediction for a typical group (all random effects
        zero), as lme4's ``re.form = NA``."""
        if type not in ("link", "response"):
            raise OptionError("type", type, ("link", "response"))
        _bool_options(include_random=include_random, allow_new_levels=allow_new_levels)
        d = self._design
        beta = self.fixed["estimate"].to_numpy()
        if data is None:
            eta = d.X @ beta
            if include_random:
                eta = eta + self._fitted_random(self._modes())
            index = self._index
        else:
            if not isinstance(data, pd.DataFrame):
                raise ModelSpecError(f"data must be a pandas DataFrame, got {data.__class__.__name__}")
            eta = d.fixed_matrix(data) @ beta + d.offset_of(data)
            if include_random:
                eta = eta + random_part(d, self._modes(), data, "predictions for a typical group", allow_new_levels)
            index = data.index
        out = eta if type == "link" else _FAMILY[self.family].mu(eta)
        return pd.Series(out, index=index, name="predicted")

    # -- display ------------------------------------------------------------------------------------
    title = "Generalized linear mixed model"

    @property
    def _ratio(self):
        return "or" if self.family == "binomial" else "rr"

    def _how(self) -> str:
        return "Laplace approximation" if self.nagq == 1 else f"adaptive Gauss-Hermite quadrature ({self.nagq} points)"

    def _headline(self) -> str:
        return f"{self.family} ({self.link} link), {self._how()}: {super()._headline()}"

    def summary(self) -> str:
        """lme4-style text: likelihood, observations and groups, random effects (link scale),
        fixed effects with odds or rate ratios."""
        lines = self._summary_head(
            f"Generalized linear mixed model, {self.family} ({self.link} link), fit by maximum likelihood ({self._how()}) (alliance-stats)",
            f"deviance {self.deviance:.2f}; logLik {self.llf:.2f}; AIC {self.aic:.2f}; BIC {self.bic:.2f}")
        lines += ["", "Random effects (link scale):", self._table_text(self.random), "",
                  f"Fixed effects (Wald z; {'odds' if self.family == 'binomial' else 'rate'} ratios with 95% CI):",
                  self._table_text(self.fixed)]
        lines += [f"Note: {m}" for m in self.messages]
        return "\n".join(lines)

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        """APA-style fixed-effects table: b (log-odds or log-rate), SE, z, p ('< .001'), and the
        odds (rate) ratio with its 95% CI in brackets."""
        digits = 2 if digits is None else int(digits)
        f, r = self.fixed, self._ratio
        return pd.DataFrame({
            "Term": f["term"],
            "b": [fmt_num(v, digits) for v in f["estimate"]],
            "SE": [fmt_num(v, digits) for v in f["se"]],
            "z": [fmt_num(v, digits) for v in f["z"]],
            "p": [apa_p(v) for v in f["p"]],
            r.upper(): [fmt_num(v, digits) for v in f[r]],
            "95% CI": [fmt_ci(a, b, digits) for a, b in zip(f[f"{r}_low"], f[f"{r}_high"])],
        })

    def methods(self) -> str:
        """A methods-and-results paragraph: the model, the data it used, the estimator and the
        fixed effects as odds (rate) ratios."""
        r = self._ratio
        word = "odds ratio" if r == "or" else "rate ratio"
        s = (f"A generalized linear mixed model ({self.family} family, {self.link} link; {self.formula}) was fitted by "
             f"maximum likelihood with the {self._how()} to n = {self.n_obs} observations from {self._groups_text()} "
             "with alliance-stats (equivalent to lme4::glmer)")
        if self.n_dropped:
            s += (f"; {self.n_dropped} rows were left out ("
                  + "; ".join(f"{k}: {v}" for k, v in self.dropped.items()) + ")")
        s += ". Fixed effects were tested with Wald z tests on the Hessian-based standard errors."
        effects = []
        for _, row in self.fixed[self.fixed["term"] != "Intercept"].iterrows():
            effects.append(f"{row['term']}: {word} = {fmt_num(row[r])}, 95% CI {fmt_ci(row[f'{r}_low'], row[f'{r}_high'])}, "
                           f"z = {fmt_num(row['z'])}, p {apa_p(row['p'], eq=True)}")
        if effects:
            s += " " + "; ".join(effects) + "."
        sds = [f"{row['group']} {row['term1']} SD = {fmt_num(row['sd'])}" for _, row in self.random.iterrows()
               if pd.isna(row.get("term2"))]
        if sds:
            s += " Random effects (link scale): " + ", ".join(sds) + "."
        return s + self._fit_caveats()

    def plot(self, *, ax=None, intercept: bool = False):
        """Odds ratios (binomial) or rate ratios (Poisson) with 95% CIs, on a log axis."""
        r = self._ratio
        return self._coef_plot(ax, intercept, (r, f"{r}_low", f"{r}_high"), 1.0, True,
                               ("odds ratio" if r == "or" else "rate ratio") + " (95% CI)")


# -- the function ------------------------------------------------------------------------------------


def glmm(formula: str, data: pd.DataFrame, *, family: str = "binomial", nagq: int = 1, weights: str | None = None) -> GLMMResult:
    """Fit a generalized linear mixed model written in lme4 syntax; the answers are lme4's ``glmer``.

    Parameters
    ----------
    formula : str
        ``outcome ~ fixed + (terms | group)`` as :func:`alliance_stats.lmm` (random intercepts and
        slopes, ``||``, nested ``(1 | therapist/patient)``). The binomial outcome is a 0/1 column
        (e.g. ``dropout``), ``cbind(successes, failures)`` (columns or expressions of columns,
        ``cbind(incidence, size - incidence)``), or a proportion with ``weights``. The Poisson
        outcome is a count (whole numbers >= 0).
    data : DataFrame
        Rows missing any used column are left out and counted (``.n_dropped``, ``.dropped``).
        ``data`` is not modified.
    family : {"binomial", "poisson"}
        With the canonical link (logit, log).
    nagq : int
        1 (default): Laplace approximation. 2..100: adaptive Gauss-Hermite quadrature with that
        many points; only for a single scalar random effect (one ``(1 | g)`` term), as lme4.
    weights : str, optional
        Binomial only: the column holding each row's number of trials when the outcome is a
        proportion of successes (as ``glmer(prop ~ ..., weights = n)``).

    Returns
    -------
    GLMMResult

    Notes
    -----
    Estimation follows lme4's ``glmer`` (see :mod:`alliance_stats.models.lmm.glmm`): PIRLS for the
    conditional modes, stage 1 over theta with beta from PIRLS, stage 2 over (theta, beta) on the
    Laplace or quadrature deviance, both with BOBYQA (nlopt), and standard errors from the
    finite-difference Hessian of that deviance, as lme4's default ``vcov``. Results were checked
    against lme4 1.1-31 (tests/reference/make_glmm_reference.R: cbpp with Laplace and 25-point
    quadrature, grouseticks with three nested levels, a random-slope model, and a simulated
    dropout design).

    For ``nagq`` > 1, lme4's ``logLik`` leaves out the saturated model's log-likelihood
    (``sum log p(y | mu = y)``), so that its values are not comparable with Laplace fits or
    ``glm`` (lme4 says so). Here ``llf`` includes it for every ``nagq``; lme4's value is
    ``llf - optsum["saturated_loglik"]``.

    Grouping factors may be nested, crossed (``(1 | patient) + (1 | observer)``) or partially
    crossed (patients who change therapist); a note in ``.messages`` names each crossed pair, and
    each PIRLS step of a crossed design is solved by the blocked Cholesky factorisation of the LMM's
    :mod:`.crossed` (:mod:`.glmm_crossed`). Checked against glmer on lme4's VerbAgg (respondents
    crossed with items) and a simulated design of patients who change therapist
    (tests/reference/make_glmm_crossed_reference.R).

    Examples
    --------
    >>> import pandas as pd, alliance_stats as als
    >>> d = pd.DataFrame({"g": [f"t{i % 8}" for i in range(160)],
    ...                   "x": [(i % 7) / 3 for i in range(160)],
    ...                   "y": [int((i * 37) % 11 < 4 + (i % 7) // 3) for i in range(160)]})
    >>> m = als.glmm("y ~ x + (1 | g)", d, family="binomial")
    >>> m.fixed["term"].tolist()
    ['Intercept', 'x']
    """
    if family not in FAMILIES:
        raise OptionError("family", family, FAMILIES, hint="binomial for 0/1 or successes/failures outcomes, poisson for counts")
    if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or not 1 <= nagq <= 100:
        raise OptionError("nagq", nagq, hint="an integer from 1 (Laplace approximation) to 100 quadrature points")
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    orig_index = data.index
    frame = data.reset_index(drop=True)
    frame.attrs = {}
    f2, frame, wcol, dropped0, label = _response(formula, frame, family, weights, orig_index)
    d = build_design(f2, frame)
    pos = d.data.index.to_numpy()
    y = d.y
    wt = frame.loc[pos, wcol].to_numpy(float) if wcol is not None else np.ones(len(y))
    rows = orig_index[pos]
    _check_outcome(y, wt, family, label, rows, kind="plain" if wcol is None else "weights" if weights is not None else "cbind")
    dropped = pd.concat([pd.Series(dropped0, dtype="int64"), d.dropped]).rename("rows") if dropped0 else d.dropped
    n_dropped = int(len(data) - len(y))

    levels = [(lv.Z, list(lv.blocks), np.asarray(lv.codes), int(lv.n_groups)) for lv in d.levels]
    for (Z, blocks, codes, G), lv in zip(levels, d.levels):
        if G < 2:
            raise ModelSpecError(f"grouping factor {lv.name!r} has {G} group: a variance needs at least two groups")
        if G >= len(y) and family == "binomial" and np.all(wt == 1):
            raise ModelSpecError(f"grouping factor {lv.name!r} has as many groups ({G}) as rows: with 0/1 outcomes an "
                                 "observation-level random effect cannot be estimated; remove it")
    if nagq > 1 and d.crossed:
        names = _fmt_labels([lv.name for lv in d.levels])
        raise ModelSpecError(f"nagq={nagq}: adaptive Gauss-Hermite quadrature needs a single scalar random effect, and "
                             f"the grouping factors {names} are crossed; lme4's glmer refuses nAGQ > 1 here too. Use "
                             "nagq=1 (Laplace approximation)")
    if nagq > 1 and (len(levels) != 1 or levels[0][0].shape[1] != 1):
        raise ModelSpecError(f"nagq={nagq}: adaptive Gauss-Hermite quadrature needs a single scalar random effect, one "
                             f"(1 | group) term; this model has {sum(Z.shape[1] for Z, *_ in levels)} random-effect "
                             "terms. Use nagq=1 (Laplace approximation), as lme4 does")

    if d.crossed:
        from .glmm_crossed import CrossedGLMMEngine

        eng = CrossedGLMMEngine(d.X, y, wt, levels, family, names=[lv.name for lv in d.levels])
    else:
        eng = GLMMEngine(d.X, y, wt, levels, family)
    nt, p = eng.n_theta, d.X.shape[1]
    rule = gh_rule(nagq) if nagq > 1 else None

    def dev2(x):
        th, be = x[:nt], x[nt:]
        return eng.laplace(th, be) if rule is None else eng.agq(th, be, rule)

    # stage 1: theta, with beta from PIRLS ----------------------------------------------------------
    th0 = eng.start_theta()
    x1, f1, n1, c1 = _bobyqa(lambda t: eng.laplace(t), th0, eng.lower, np.full(nt, 0.2), np.full(nt, 1e-8), 1e-10, 5000)
    try:
        s1 = eng.pirls(x1)
        beta1 = s1["beta"]
        se1 = np.sqrt(np.clip(np.diag(np.linalg.inv(s1["S"])), 1e-12, None))
    except (np.linalg.LinAlgError, FloatingPointError):
        raise ModelSpecError(
            f"the model cannot be fitted: {label!r} is predicted (almost) perfectly by the fixed effects or a grouping "
            "factor (complete or quasi-complete separation), so the estimates run off to infinity; drop or merge the "
            "predictor or the groups that separate the outcome") from None
    # stage 2: (theta, beta) -------------------------------------------------------------------------
    x0 = np.r_[x1, beta1]
    lower = np.r_[eng.lower, np.full(p, -np.inf)]
    step = np.r_[np.maximum(0.1 * np.abs(x1), 0.05), se1]
    x2, f2v, n2, c2 = _bobyqa(dev2, x0, lower, step, np.r_[np.full(nt, 1e-10), 1e-10 * se1], 1e-12, 20000)
    # gradient and Hessian at the optimum; one Newton step when it lowers the deviance
    g, H = _derivs(dev2, x2, f2v)
    polished = False
    try:
        if np.all(np.linalg.eigvalsh(H) > 0):
            xn = x2 - np.linalg.solve(H, g)
            free = np.isfinite(lower)
            xn[free] = np.maximum(xn[free], lower[free])
            fn = dev2(xn)
            if fn < f2v:
                x2, f2v, polished = xn, fn, True
                g, H = _derivs(dev2, x2, f2v)
    except np.linalg.LinAlgError:
        pass
    theta, beta = x2[:nt], x2[nt:]
    mode = eng.pirls(theta, beta)
    dev = float(f2v)

    # standard errors: 2 H^-1 (lme4's vcov with use.hessian=TRUE), RX-based when H is not PD ------
    messages = list(d.crossed)
    vcov = None
    try:
        Hi = np.linalg.inv(H)
        V = (2 * Hi)[nt:, nt:]
        V = (V + V.T) / 2
        if np.all(np.linalg.eigvalsh(V) > 0):
            vcov = V
    except np.linalg.LinAlgError:
        pass
    if vcov is None:
        s = eng.pirls(theta)  # beta from PIRLS at theta (= the optimum's beta when converged)
        vcov = np.linalg.inv(s["S"])
        eng.pirls(theta, beta)
        messages.append("the finite-difference Hessian of the deviance is not positive definite: standard errors "
                        "are from the fixed-effects block at the conditional modes (lme4's use.hessian = FALSE)")
    se = np.sqrt(np.diag(vcov))
    z = beta / se
    pz = 2 * special.ndtr(-np.abs(z))
    crit = stats.norm.ppf(0.975)
    fixed = pd.DataFrame({"term": d.xnames, "estimate": beta, "se": se, "z": z, "p": pz,
                          "ci_low": beta - crit * se, "ci_high": beta + crit * se})
    r = _FAMILY[family].ratio
    fixed[r], fixed[f"{r}_low"], fixed[f"{r}_high"] = np.exp(beta), np.exp(fixed["ci_low"]), np.exp(fixed["ci_high"])

    # variance components --------------------------------------------------------------------------
    rows_r, singular_terms = [], []
    for (Z, blocks, codes, G), inf, L, (ri, ci, dg) in zip(levels, d.level_info, eng.lambdas(theta), eng.tri):
        S = L @ L.T
        names = inf["term_names"]
        for k, v in enumerate(L[ri[dg], ci[dg]]):
            if v < SINGULAR_TOL:
                singular_terms.append(f"{names[ri[dg][k]]} | {inf['name']}")
        rows_r += variance_rows(S, blocks, names, inf["name"])
    random = pd.DataFrame(rows_r, columns=["group", "term1", "term2", "variance", "sd", "corr"])

    # checks -------------------------------------------------------------------------------------------
    active = (np.isfinite(lower)) & (x2 <= lower + 1e-6) & (g > 0)
    gfree = np.where(active, 0.0, g)
    try:
        scgrad = np.linalg.solve(np.linalg.cholesky(H), gfree)
        scaled = float(np.max(np.minimum(np.abs(scgrad), np.abs(gfree)))) if len(g) else 0.0
    except np.linalg.LinAlgError:
        scaled = float(np.max(np.abs(gfree)))
    hess_pd = bool(np.all(np.linalg.eigvalsh(H[~active][:, ~active]) > 0)) if (~active).any() else True
    checks = [
        dict(check="scaled gradient (lme4 check.conv.grad)", value=scaled, tol=GRAD_TOL, passed=scaled < GRAD_TOL),
        dict(check="Hessian positive definite (lme4 check.conv.hess)", value=float(np.linalg.eigvalsh(H).min()), tol=0.0, passed=hess_pd),
        dict(check="stage 2 optimizer stopped on its tolerance", value=float(c2), tol=np.nan, passed=c2 in (1, 3, 4, -4)),
    ]
    converged = all(c["passed"] for c in checks[:1]) and (hess_pd or bool(singular_terms))
    if not converged:
        msg = (f"the model may not have converged (scaled gradient {scaled:.2g}; Hessian "
               f"{'positive definite' if hess_pd else 'not positive definite'}). Try centring or rescaling "
               "predictors, or simplifying the random part.")
        messages.append(msg)
        warnings.warn(msg, ConvergenceWarning, stacklevel=user_stacklevel())
    corrs = random["corr"].to_numpy(float)
    singular = bool(singular_terms) or bool((np.abs(corrs[np.isfinite(corrs)]) > 1 - 1e-6).any())
    if singular:
        what = f"the variance of {_fmt_labels(singular_terms)} is estimated at zero" if singular_terms else "a random-effect correlation is estimated at +/-1"
        msg = (f"singular fit: {what}. Report it as zero, or remove that random term and report the simpler model.")
        messages.append(msg)
        warnings.warn(msg, SingularFitWarning, stacklevel=user_stacklevel())
    if d.dropped_cols:
        messages.append(f"dropped rank-deficient fixed effect(s): {_fmt_labels(d.dropped_cols)}")
    if nagq > 1:
        messages.append(f"log-likelihood includes the saturated model's term; lme4's logLik for nAGQ > 1 leaves it "
                        f"out: {-dev / 2 + eng.sat / 2:.4f}")

    n = len(y)
    llf = -dev / 2
    k = nt + p
    optsum = dict(
        optimizer="nlopt LN_BOBYQA", start=np.r_[th0], evaluations=int(n1 + n2),
        stages=[dict(stage=1, over="theta (beta from PIRLS)", start=th0, evaluations=n1, result=_NLOPT_CODES.get(c1, c1), deviance=float(f1), par=x1),
                dict(stage=2, over="theta, beta", start=x0, evaluations=n2, result=_NLOPT_CODES.get(c2, c2), deviance=float(f2v), par=x2)],
        newton_polish=polished, theta=theta, beta=beta, deviance=dev, gradient=g, hessian=H, checks=pd.DataFrame(checks),
        pirls_tol=PIRLS_TOL, hessian_step=HESS_STEP, pirls_evaluations=eng.evaluations,
        saturated_loglik=-eng.sat / 2,
    )
    return GLMMResult(
        formula=formula, family=family, link=_FAMILY[family].link, nagq=int(nagq), fixed=fixed, random=random,
        llf=float(llf), aic=float(-2 * llf + 2 * k), bic=float(-2 * llf + np.log(n) * k), converged=converged,
        singular=singular, n_obs=n, n_groups={lv.name: lv.n_groups for lv in d.levels[::-1]}, n_dropped=n_dropped,
        dropped=dropped, theta=theta, vcov=pd.DataFrame(vcov, index=d.xnames, columns=d.xnames), optsum=optsum,
        messages=messages, dropped_terms=d.dropped_cols, _design=d, _engine=eng, _mode=mode, _index=rows,
    )


def _check_outcome(y, wt, family, label, rows, kind):
    """The outcome fits the family: 0/1 (binomial, plain), proportions of whole numbers of trials
    (binomial with weights; cbind() is checked where it is read), counts (Poisson)."""
    if family == "binomial":
        if kind == "weights":
            bad = (y < 0) | (y > 1) | (np.abs(y * wt - np.round(y * wt)) > 1e-6)
            if bad.any():
                raise ModelSpecError(f"outcome {label!r} with weights: each value must be a proportion of successes "
                                     f"(0..1, times the weight a whole number); see rows {_fmt_labels(rows[bad])}")
        elif kind == "plain":
            bad = (y != 0) & (y != 1)
            if bad.any():
                raise ModelSpecError(
                    f"outcome {label!r} holds values other than 0 and 1 (e.g. {_fmt_labels(np.unique(y[bad])[:5])} at rows "
                    f"{_fmt_labels(rows[bad])}); for successes out of trials write cbind(successes, failures) ~ ..., "
                    "or give the proportion with weights='trials'; for counts use family='poisson'")
        if np.all(y == 0) or np.all(y == 1):
            raise ModelSpecError(f"outcome {label!r} is {int(y[0])} in every row: there is nothing to model")
    else:
        bad = (y < 0) | (np.abs(y - np.round(y)) > 1e-8)
        if bad.any():
            raise ModelSpecError(f"outcome {label!r} must be a count (whole numbers >= 0) for family='poisson'; see rows "
                                 f"{_fmt_labels(rows[bad])} (values {_fmt_labels(np.unique(y[bad])[:5])})")
        if np.all(y == 0):
            raise ModelSpecError(f"outcome {label!r} is 0 in every row: there is nothing to model")
