"""Profiled-deviance engine for linear mixed models with nested random effects.

The model is lme4's (Bates, Maechler, Bolker & Walker 2015, section 3):

    y = X beta + Z b + e,   b = Lambda_theta u,   u ~ N(0, sigma^2 I),   e ~ N(0, sigma^2 I)

with ``Lambda_theta`` block diagonal: one lower-triangular factor per grouping level (itself
block diagonal when a level has several uncorrelated terms, ``(1|g) + (0+x|g)``), repeated for
every group of that level.  Because the grouping factors are nested (every group of level l
lies in one group of level l+1), the penalised least-squares system

    [Lambda'Z'Z Lambda + I   Lambda'Z'X] [u   ]   [Lambda'Z'y]
    [X'Z Lambda              X'X       ] [beta] = [X'y       ]

can be eliminated level by level, innermost first: each group's block is factored on its own and
its Schur complement is added to its parent's block.  Everything is computed from per-group
cross-products of ``[Z | X | y]`` accumulated once, so one deviance evaluation costs
O(groups x (q + p)^3), not O(rows), in batched numpy.

The profiled deviances (lme4's eqs. 34 and 41) are

    ML:    log|L|^2 + n (1 + log(2 pi r^2 / n))
    REML:  log|L|^2 + log|R_X|^2 + (n - p)(1 + log(2 pi r^2 / (n - p)))

where ``L L' = Lambda'Z'Z Lambda + I``, ``R_X`` the Cholesky factor of the fixed-effects Schur
complement and ``r^2`` the penalised residual sum of squares.  This module knows nothing of
formulas or data frames; :mod:`.design` builds its input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg.lapack import dpotrf as _potrf, dtrtrs as _trtrs


@dataclass
class Level:
    """One grouping level: its random-effect columns and its groups.

    ``blocks`` lists the sizes of the correlated blocks (``[2]`` for ``(1 + x | g)``,
    ``[1, 1]`` for ``(1 | g) + (0 + x | g)``).  ``codes`` gives each row's group (0..n_groups-1)
    and ``parent`` each group's group at the next (coarser) level.
    """

    name: str
    Z: np.ndarray  # (n, q)
    blocks: list
    codes: np.ndarray  # (n,)
    n_groups: int
    parent: np.ndarray | None = None  # (n_groups,) codes at the next level
    scale: np.ndarray = field(default=None)  # (q,) column scale used internally

    @property
    def q(self) -> int:
        return self.Z.shape[1]


def _tri_index(blocks):
    """(row, col) of every theta element of a level, lme4's order (column-major lower triangle
    of each block)."""
    rows, cols, diag = [], [], []
    off = 0
    for b in blocks:
        for j in range(b):
            for i in range(j, b):
                rows.append(off + i)
                cols.append(off + j)
                diag.append(i == j)
        off += b
    return np.array(rows, int), np.array(cols, int), np.array(diag, bool)


class ProfiledDeviance:
    """What the nested and the crossed engine share: the data and their column scales, lme4's
    theta parametrisation (lower-triangular relative factors per term, column-major), and the
    profiled deviance from a factorisation. A subclass provides ``_factor_fast(theta_int)``
    (``logdet``, ``RX``, ``r2``) and the rest of the interface the optimizer uses (``solve``)."""

    def _setup_common(self, X: np.ndarray, y: np.ndarray, levels: list[Level]):
        self.X = np.asarray(X, float)
        self.y = np.asarray(y, float)
        self.levels = levels
        self.n, self.p = self.X.shape
        self.q = [lv.q for lv in levels]
        # column scales: random-effect columns to unit root-mean-square (theta well scaled)
        for lv in levels:
            rms = np.sqrt(np.mean(lv.Z**2, axis=0))
            lv.scale = np.where(rms > 0, rms, 1.0)
        self.xscale = np.sqrt(np.mean(self.X**2, axis=0))
        self.xscale[self.xscale == 0] = 1.0
        self._logxs2 = 2.0 * float(np.log(self.xscale).sum())
        self.tri_index = [_tri_index(lv.blocks) for lv in levels]
        self.n_theta = int(sum(len(t[0]) for t in self.tri_index))
        self.lower = np.concatenate([np.where(t[2], 0.0, -np.inf) for t in self.tri_index])
        # theta_orig = theta_int / scale of the theta element's row
        self.theta_rowscale = np.concatenate([lv.scale[t[0]] for lv, t in zip(levels, self.tri_index)])

    # -- theta <-> Lambda -------------------------------------------------------------------
    def lambdas(self, theta_int):
        out, k = [], 0
        for lv, (r, c, _) in zip(self.levels, self.tri_index):
            L = np.zeros((lv.q, lv.q))
            L[r, c] = theta_int[k : k + len(r)]
            k += len(r)
            out.append(L)
        return out

    def to_int(self, theta):
        return np.asarray(theta, float) * self.theta_rowscale

    def to_orig(self, theta_int):
        return np.asarray(theta_int, float) / self.theta_rowscale

    def start(self):
        """lme4's default start: identity relative factors (internal scale)."""
        return np.concatenate([np.where(t[2], 1.0, 0.0) for t in self.tri_index])

    # -- the profiled deviance --------------------------------------------------------------
    def deviance(self, theta_int, reml=True) -> float:
        """Profiled deviance (REML criterion when ``reml``) at internal-scale theta."""
        try:
            f = self._factor_fast(theta_int)
        except np.linalg.LinAlgError:
            return np.inf
        if not math.isfinite(f["logdet"]):
            return np.inf
        return self._dev_from(f, reml)

    def _dev_from(self, f, reml):
        n, p = self.n, self.p
        if reml:
            # log|R_X|^2 for the unscaled X: scaled columns X/s give R_X(scaled) = R_X / s
            ldrx = 2.0 * float(np.log(np.abs(f["RX"].diagonal())).sum()) + self._logxs2
            return f["logdet"] + ldrx + (n - p) * (1.0 + math.log(2.0 * math.pi * f["r2"] / (n - p)))
        return f["logdet"] + n * (1.0 + math.log(2.0 * math.pi * f["r2"] / n))

    def varpar_terms(self, theta, reml=True) -> dict:
        """What the deviance and the fixed effects' covariance need as functions of
        (original-scale theta, sigma), from one factorisation at theta: ``ld`` (log|L|^2, plus
        log|R_X|^2 for REML), ``r2`` (penalised residual sum of squares) and ``cov``
        ((R_X'R_X)^{-1} for the unscaled X). sigma enters both in closed form
        (:meth:`deviance_vp_from`, ``sigma^2 cov``)."""
        f = self._factor_fast(self.to_int(theta))
        ld = f["logdet"]
        if reml:
            ld += 2.0 * np.log(np.abs(np.diag(f["RX"]))).sum() + self._logxs2
        Ri = np.linalg.inv(np.triu(f["RX"]))
        return dict(ld=ld, r2=f["r2"], cov=(Ri @ Ri.T) / np.outer(self.xscale, self.xscale))

    def deviance_vp_from(self, terms, sigma, reml=True) -> float:
        """:meth:`deviance_vp` from :meth:`varpar_terms` at theta."""
        s2 = sigma**2
        return terms["ld"] + terms["r2"] / s2 + (self.n - self.p if reml else self.n) * np.log(2 * np.pi * s2)

    def deviance_vp(self, theta, sigma, reml=True) -> float:
        """Deviance as a function of (original-scale theta, sigma) with beta profiled: the
        function whose Hessian gives the asymptotic covariance of the variance parameters
        (as lmerTest's ``devfun_vp``)."""
        return self.deviance_vp_from(self.varpar_terms(theta, reml), sigma, reml)

    def vcov_beta(self, theta, sigma):
        """sigma^2 (R_X'R_X)^{-1} for the unscaled X at original-scale theta."""
        return sigma**2 * self.varpar_terms(theta, False)["cov"]


class NestedEngine(ProfiledDeviance):
    """Deviance, solution and conditional covariances for a nested design.

    Parameters
    ----------
    X : (n, p) fixed-effects matrix of full column rank
    y : (n,) response
    levels : list of :class:`Level`, innermost (finest) first; ``levels[l].parent`` maps groups
        of level l to groups of level l+1, and groups of each level are numbered so that their
        parents are non-decreasing.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, levels: list[Level]):
        self._setup_common(X, y, levels)
        self.qtot = int(sum(self.q))
        self._stats()

    # -- sufficient statistics -------------------------------------------------------------
    def _stats(self):
        inner = self.levels[0]
        order = np.argsort(inner.codes, kind="stable")
        W = np.hstack([lv.Z / lv.scale for lv in self.levels] + [self.X / self.xscale, self.y[:, None]])[order]
        codes = inner.codes[order]
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        m = W.shape[1]
        # per-group cross products of the columns, upper triangle only, summed along contiguous
        # rows (columns of the transposed data), in chunks of at most 4M products (32 MB)
        Wt = np.ascontiguousarray(W.T)
        iu, ju = np.triu_indices(m)
        M = np.empty((len(starts), m, m))
        step = max(1, 4_000_000 // max(len(W), 1))
        for k in range(0, len(iu), step):
            i, j = iu[k : k + step], ju[k : k + step]
            R = np.add.reduceat(Wt[i] * Wt[j], starts, axis=1).T
            M[:, i, j] = R
            M[:, j, i] = R
        self.M = M
        self.m = m
        self.rows_per_group = np.diff(np.r_[starts, len(codes)])
        # group starts at each coarser level, in terms of the previous level's groups
        self._parent_starts = []
        for lv in self.levels[:-1]:
            par = lv.parent
            self._parent_starts.append(np.flatnonzero(np.r_[True, par[1:] != par[:-1]]))
        # the innermost level's elimination, rewritten as a weighted sum of fixed outer products:
        # the Schur complement of group g is R'R_g - U_g' B_g U_g with U_g = Z'R_g and
        # B_g = Lambda (Lambda'Z'Z_g Lambda + I)^{-1} Lambda', so sum_g U_g'B_g U_g is
        # sum_g sum_ab B_g[a, b] u_ga u_gb' with the outer products u_ga u_gb' computed once
        q0 = self.q[0]
        U = M[:, :q0, q0:]
        r0 = U.shape[2]
        self._zz0 = M[:, :q0, :q0].copy()
        self._outer0 = np.einsum("gai,gbj->gabij", U, U).reshape(len(M), q0 * q0, r0 * r0)
        if q0 == 2:  # symmetric B: its distinct elements B00, B01, B11 and their outer products
            self._zz2m = np.column_stack([self._zz0[:, 0, 0], self._zz0[:, 0, 1], self._zz0[:, 1, 1], np.ones(len(M))])
            o = self._outer0
            self._outer2 = np.ascontiguousarray(np.stack([o[:, 0], o[:, 1] + o[:, 2], o[:, 3]], axis=1))
            self._outer2f = self._outer2.reshape(-1, r0 * r0)
        self._slope_only = len(self.levels) == 1 and q0 == 2
        RR = M[:, q0:, q0:]
        self._rr0 = RR.sum(axis=0) if len(self.levels) == 1 else np.add.reduceat(RR, self._parent_starts[0], axis=0)
        # random intercepts at every level (the usual model): theta holds the levels' scalar
        # relative factors in order, and the elimination needs only these contiguous pieces
        self._scalar = all(q == 1 for q in self.q)
        if self._scalar:
            self._zz00 = np.ascontiguousarray(self._zz0[:, 0, 0])
            self._outer00 = np.ascontiguousarray(self._outer0[:, 0, :])

    # -- the factorisation ------------------------------------------------------------------
    def _factor(self, theta_int, keep=False):
        lams = self.lambdas(theta_int)
        T = np.eye(self.m)
        off = 0
        for L in lams:
            k = L.shape[0]
            T[off : off + k, off : off + k] = L
            off += k
        cur = np.matmul(np.matmul(T.T, self.M), T)
        logdet = 0.0
        kept = []
        for li, lv in enumerate(self.levels):
            q = lv.q
            A = cur[:, :q, :q] + np.eye(q)
            Lc = np.linalg.cholesky(A)
            logdet += 2.0 * np.log(np.diagonal(Lc, axis1=1, axis2=2)).sum()
            if q == 1:
                C = cur[:, :1, 1:] / Lc
            else:
                C = np.linalg.solve(Lc, cur[:, :q, q:])
            S = cur[:, q:, q:] - np.matmul(np.swapaxes(C, 1, 2), C)
            if keep:
                kept.append((Lc, C))
            if li + 1 < len(self.levels):
                cur = np.add.reduceat(S, self._parent_starts[li], axis=0)
            else:
                cur = S.sum(axis=0)
        F = cur  # (p+1, p+1): fixed-effects and response Schur complement (scaled X)
        p = self.p
        RX = np.linalg.cholesky(F[:p, :p]).T  # upper
        cb = np.linalg.solve(RX.T, F[:p, p])
        r2 = float(F[p, p] - cb @ cb)
        return dict(logdet=logdet, RX=RX, cb=cb, r2=max(r2, 1e-300), lams=lams, kept=kept)

    def _factor_fast(self, theta_int):
        """The quantities of :meth:`_factor` needed for the deviance (log-determinant, R_X,
        c_beta, r^2), with the innermost level eliminated as one weighted sum of precomputed
        outer products: O(groups x q^2 x (q + p)^2) multiply-adds in a single contraction,
        and 2 x 2 blocks inverted in closed form."""
        if self._scalar:
            return self._factor_scalar(theta_int)
        if self._slope_only:  # one level, (1 + x | g) or (1 + x || g): theta is L0's elements
            t = np.asarray(theta_int, float).tolist()  # Python floats: the scalar arithmetic costs less
            return self._factor_q2(*t) if len(t) == 3 else self._factor_q2(t[0], 0.0, t[1])
        lams = self.lambdas(theta_int)
        L0 = lams[0]
        q0 = L0.shape[0]
        zz = self._zz0
        if q0 == 1:
            l2 = L0[0, 0] ** 2
            A = 1.0 + l2 * zz[:, 0, 0]
            logdet = float(np.log(A).sum())
            B = (l2 / A)[:, None]
        elif q0 == 2:
            logdet, B = self._q2_blocks(L0[0, 0], L0[1, 0], L0[1, 1])
            outer = self._outer2
        else:
            A = np.matmul(np.matmul(L0.T, zz), L0) + np.eye(q0)
            sign, ld = np.linalg.slogdet(A)
            logdet = float(ld.sum())
            B = np.matmul(np.matmul(L0, np.linalg.inv(A)), L0.T).reshape(len(zz), q0 * q0)
        if q0 != 2:
            outer = self._outer0
        r0 = self._rr0.shape[-1]
        if len(self.levels) == 1:
            F = self._rr0 - (B.reshape(-1) @ outer.reshape(-1, r0 * r0)).reshape(r0, r0)
        else:
            corr = outer[:, 0, :] * B if q0 == 1 else np.einsum("gk,gkj->gj", B, outer)
            cur = self._rr0 - np.add.reduceat(corr, self._parent_starts[0], axis=0).reshape(-1, r0, r0)
            if all(Lm.shape[0] == 1 for Lm in lams[1:]):  # coarser random intercepts: a diagonal scaling
                dv = np.ones(r0)
                dv[: len(lams) - 1] = [Lm[0, 0] for Lm in lams[1:]]
                cur = cur * np.outer(dv, dv)
            else:
                T = np.eye(r0)
                off = 0
                for Lm in lams[1:]:
                    k = Lm.shape[0]
                    T[off : off + k, off : off + k] = Lm
                    off += k
                cur = np.matmul(np.matmul(T.T, cur), T)
            for li in range(1, len(self.levels)):
                q = self.q[li]
                last = li + 1 == len(self.levels)
                if q == 1:  # a random intercept (the usual therapist level): scalar blocks
                    a = cur[:, 0, 0] + 1.0
                    logdet += float(np.log(a).sum())
                    u = cur[:, 0, 1:]
                    if last:
                        cur = cur[:, 1:, 1:].sum(axis=0) - (u / a[:, None]).T @ u
                    else:
                        S = cur[:, 1:, 1:] - u[:, :, None] * (u / a[:, None])[:, None, :]
                        cur = np.add.reduceat(S, self._parent_starts[li], axis=0)
                    continue
                Lc = np.linalg.cholesky(cur[:, :q, :q] + np.eye(q))
                logdet += 2.0 * np.log(np.diagonal(Lc, axis1=1, axis2=2)).sum()
                C = np.linalg.solve(Lc, cur[:, :q, q:])
                S = cur[:, q:, q:] - np.matmul(np.swapaxes(C, 1, 2), C)
                cur = np.add.reduceat(S, self._parent_starts[li], axis=0) if li + 1 < len(self.levels) else S.sum(axis=0)
            F = cur
        p = self.p
        RX, info = _potrf(F[:p, :p], lower=0)  # LAPACK directly: numpy's wrappers cost more than the work at p < 10
        if info != 0:
            raise np.linalg.LinAlgError("the fixed-effects block is not positive definite")
        # potrf leaves the input below the diagonal: only the upper triangle and the diagonal
        # are read from here on (trtrs, the log-determinant); vcov_beta takes triu before inverting
        cb, _ = _trtrs(RX, F[:p, p], lower=0, trans=1)
        r2 = float(F[p, p] - cb @ cb)
        return dict(logdet=logdet, RX=RX, cb=cb, r2=max(r2, 1e-300))

    def _q2_blocks(self, l11, l21, l22):
        """2 x 2 blocks of the innermost level in closed form over all groups at once (L0 lower
        triangular): the columns of Y are a, b, d of A = L0'Z'Z_g L0 + I = [[a, b], [b, d]], and
        those of the result the distinct elements B00, B01, B11 of B = L0 A^{-1} L0'; with
        sum log|A_g|."""
        Y = self._zz2m @ np.array([[l11 * l11, 0.0, 0.0], [2.0 * l11 * l21, l22 * l11, 0.0],
                                   [l21 * l21, l22 * l21, l22 * l22], [1.0, 0.0, 1.0]])
        det = Y[:, 0] * Y[:, 2] - Y[:, 1] * Y[:, 1]
        B = Y @ np.array([[0.0, 0.0, l22 * l22], [0.0, -l11 * l22, -2.0 * l21 * l22], [l11 * l11, l11 * l21, l21 * l21]])
        B /= det[:, None]
        return float(np.log(det).sum()), B

    def _factor_q2(self, l11, l21, l22):
        """:meth:`_factor_fast` for a single level with a random intercept and slope."""
        logdet, B = self._q2_blocks(l11, l21, l22)
        F = self._rr0 - (B.reshape(-1) @ self._outer2f).reshape(self._rr0.shape)
        return self._fixed_block(F, logdet)

    def _fixed_block(self, F, logdet):
        p = self.p
        RX, info = _potrf(F[:p, :p], lower=0)
        if info != 0:
            raise np.linalg.LinAlgError("the fixed-effects block is not positive definite")
        cb, _ = _trtrs(RX, F[:p, p], lower=0, trans=1)
        r2 = float(F[p, p] - cb @ cb)
        return dict(logdet=logdet, RX=RX, cb=cb, r2=max(r2, 1e-300))

    def _factor_scalar(self, theta_int):
        """:meth:`_factor_fast` for random intercepts at every level, with scalar relative
        factors l_k: patients' blocks are 1 + l_0^2 Z'Z_g, and at a coarser level the scaling by
        l_k is applied to the row and column being eliminated only (the Schur complement
        commutes with a diagonal scaling of the rows and columns that remain)."""
        l2 = theta_int[0] * theta_int[0]
        A = 1.0 + l2 * self._zz00
        logdet = float(np.log(A).sum())
        w = l2 / A
        r0 = self._rr0.shape[-1]
        if len(self.levels) == 1:
            F = self._rr0 - (w @ self._outer00).reshape(r0, r0)
        else:
            cur = self._rr0 - np.add.reduceat(self._outer00 * w[:, None], self._parent_starts[0], axis=0).reshape(-1, r0, r0)
            last = len(self.levels) - 1
            for li in range(1, last + 1):
                lam = theta_int[li]
                a = lam * lam * cur[:, 0, 0] + 1.0
                logdet += float(np.log(a).sum())
                u = cur[:, 0, 1:] * lam
                if li == last:
                    F = cur[:, 1:, 1:].sum(axis=0) - (u / a[:, None]).T @ u
                else:
                    S = cur[:, 1:, 1:] - u[:, :, None] * (u / a[:, None])[:, None, :]
                    cur = np.add.reduceat(S, self._parent_starts[li], axis=0)
        p = self.p
        RX, info = _potrf(F[:p, :p], lower=0)
        if info != 0:
            raise np.linalg.LinAlgError("the fixed-effects block is not positive definite")
        cb, _ = _trtrs(RX, F[:p, p], lower=0, trans=1)
        r2 = float(F[p, p] - cb @ cb)
        return dict(logdet=logdet, RX=RX, cb=cb, r2=max(r2, 1e-300))

    def solve(self, theta_int, reml=True, condvar=False):
        """Everything at the optimum: beta, sigma, vcov, BLUPs (and their conditional
        covariances when ``condvar``)."""
        f = self._factor(theta_int, keep=True)
        n, p = self.n, self.p
        beta_s = np.linalg.solve(f["RX"], f["cb"])
        beta = beta_s / self.xscale
        sigma2 = f["r2"] / ((n - p) if reml else n)
        Ri = np.linalg.inv(f["RX"])
        vcov = sigma2 * (Ri @ Ri.T) / np.outer(self.xscale, self.xscale)
        # back-substitution, outermost level first
        L = len(self.levels)
        u = [None] * L
        for li in range(L - 1, -1, -1):
            Lc, C = f["kept"][li]
            higher = sum(self.q[li + 1 :])
            rhs = C[:, :, -1] - C[:, :, higher : higher + p] @ beta_s
            if higher:
                chain = self._chain(u, li)  # (G, higher) the ancestors' u
                rhs = rhs - np.einsum("gij,gj->gi", C[:, :, :higher], chain)
            u[li] = np.linalg.solve(np.swapaxes(Lc, 1, 2), rhs[:, :, None])[:, :, 0]
        b = []
        for lv, Lm, ui in zip(self.levels, f["lams"], u):
            b.append((ui @ Lm.T) / lv.scale)  # original column scale
        out = dict(beta=beta, sigma2=sigma2, vcov=vcov, u=u, b=b, dev=self._dev_from(f, reml), lams=f["lams"])
        if condvar:
            out["condvar"] = self._condvar(f, sigma2)
        return out

    def _ancestor(self, li, lj):
        """Map groups of level li to their ancestor groups at level lj >= li."""
        idx = np.arange(self.levels[li].n_groups)
        for k in range(li, lj):
            idx = self.levels[k].parent[idx]
        return idx

    def _chain(self, u, li):
        parts = []
        for lj in range(li + 1, len(self.levels)):
            parts.append(u[lj][self._ancestor(li, lj)])
        return np.concatenate(parts, axis=1)

    def _condvar(self, f, sigma2):
        """Conditional covariance of b given y (and beta), per group, as lme4's condVar:
        sigma^2 Lambda [ (Lambda'Z'Z Lambda + I)^{-1} ]_gg Lambda'."""
        L = len(self.levels)
        chainV = [None] * L
        for li in range(L - 1, -1, -1):
            Lc, C = f["kept"][li]
            q = self.q[li]
            Li = np.linalg.inv(Lc)
            base = np.matmul(np.swapaxes(Li, 1, 2), Li)
            higher = sum(self.q[li + 1 :])
            if not higher:
                chainV[li] = base
                continue
            E = np.matmul(np.swapaxes(Li, 1, 2), C[:, :, :higher])  # (G, q, higher)
            Vp = chainV[li + 1][self.levels[li].parent]  # (G, higher, higher)
            EV = np.matmul(E, Vp)
            Vgg = base + np.matmul(EV, np.swapaxes(E, 1, 2))
            G = Lc.shape[0]
            full = np.empty((G, q + higher, q + higher))
            full[:, :q, :q] = Vgg
            full[:, :q, q:] = -EV
            full[:, q:, :q] = -np.swapaxes(EV, 1, 2)
            full[:, q:, q:] = Vp
            chainV[li] = full
        out = []
        for li, (lv, Lm) in enumerate(zip(self.levels, f["lams"])):
            q = self.q[li]
            V = chainV[li][:, :q, :q]
            Vb = sigma2 * np.matmul(np.matmul(Lm, V), Lm.T) / np.outer(lv.scale, lv.scale)
            out.append(Vb)
        return out
