"""The penalised weighted least-squares step of PIRLS for GLMMs with crossed (or partially
crossed) grouping factors.

Each PIRLS step of :class:`.glmm.GLMMEngine` solves

    [ZL'WZL + I   ZL'WX] [u   ]   [ZL'Wz]
    [X'WZL        X'WX ] [beta] = [X'Wz ]       (ZL = Z Lambda, z the working response)

(u alone, at given beta, when beta is fixed). The factorisation is the blocked Cholesky of the
LMM's crossed engine (:mod:`.crossed`; MixedModels.jl's): the grouping factor with the most
random effects first, whose block ``A_g = I + (ZL_1'W ZL_1)_g`` is a batch of small factors;
everything else, ``R = [ZL_2 .. ZL_K | X | z]``, reduced by it at once,
``S = R'WR - U'A^{-1}U`` with ``U = ZL_1'WR`` (sparse: one block row per group), then one dense
Cholesky factor of S (+ I on the other factors' random effects). log|L|^2 is the sum of the
log-determinants of the A_g and of S's random-effects block.

:class:`.crossed.CrossedEngine` itself forms its cross-products once, for the fixed unit weights
of an LMM; here W (and Lambda, which is folded into ZL) change at every step, so the
cross-products are formed each step, as sums of products of each row's few non-zeros
(``np.bincount`` over keys made once).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dpotrf as _potrf
from scipy.linalg.lapack import dtrtrs as _trtrs

from ...exceptions import ModelSpecError
from .crossed import MAX_DENSE
from .glmm import GLMMEngine

_CONTROLLER = []


def _one_blas_thread():
    """One BLAS thread for a PIRLS run: its products and factors are small, and on a busy
    machine OpenBLAS's threads wait for each other (grouseticks' 186-column step: 4 ms with one
    thread, 47 ms with two, on the project's 2-core machine under load)."""
    from threadpoolctl import ThreadpoolController

    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


class CrossedGLMMEngine(GLMMEngine):
    """:class:`.glmm.GLMMEngine` for any design: the same PIRLS, Laplace deviance and
    conditional modes, with the weighted least-squares step of the module docstring. On a nested
    design it gives the nested engine's deviance (a test checks it); nested designs use that
    one."""

    def __init__(self, X, y, wt, levels, family, names=None):
        super().__init__(X, y, wt, levels, family)
        self.parents = None  # the nested elimination's tree: not used here
        sizes = [q * G for q, G in zip(self.qs, self.G)]
        self.first = int(np.argmax(sizes))
        self.rest = [k for k in range(len(levels)) if k != self.first]
        self.roff = np.cumsum([0] + [sizes[k] for k in self.rest])
        self.mre = int(self.roff[-1])
        self.m = self.mre + self.p + 1
        names = names or [str(k) for k in range(len(levels))]
        q1, G1 = self.qs[self.first], self.G[self.first]
        if self.mre > MAX_DENSE or G1 * q1 * self.m > 2e8:
            rest = ", ".join(f"{names[k]!r} ({self.G[k]} groups x {self.qs[k]})" for k in self.rest)
            raise ModelSpecError(
                f"the grouping factors {rest} are crossed with {names[self.first]!r} and have {self.mre} random "
                f"effects together; this engine factors them as one dense block of at most {MAX_DENSE} columns. "
                "If these IDs restart within a higher level, write the nesting, e.g. (1 | therapist/patient)")
        n, p, m, mre = self.n, self.p, self.m, self.mre
        # the cross-products are sums over rows of products of each row's few non-zeros: np.bincount
        # over (row entry, row entry) keys made once. R's rest columns per row (n, r), lme4's order
        ridx = np.hstack([self.roff[i] + self.codes[k][:, None] * self.qs[k] + np.arange(self.qs[k])
                          for i, k in enumerate(self.rest)] or [np.empty((n, 0), np.int64)])
        d = np.arange(p + 1)
        self._k_rr = (ridx[:, :, None] * mre + ridx[:, None, :]).ravel()
        self._k_rd = (ridx[:, :, None] * (p + 1) + d).ravel()
        zidx = self.codes[self.first][:, None] * q1 + np.arange(q1)
        allidx = np.hstack([ridx, np.broadcast_to(mre + d, (n, p + 1))])
        self._k_u = (zidx[:, :, None] * m + allidx[:, None, :]).ravel()
        self.q1, self.G1 = q1, G1

    def pirls(self, theta, beta=None, maxit=200):
        with _one_blas_thread():
            return super().pirls(theta, beta, maxit)

    def _solve(self, ZL, W, z, joint):
        q1, G1, mre, p, m = self.q1, self.G1, self.mre, self.p, self.m
        vr = np.hstack([ZL[k] for k in self.rest]) if self.rest else np.empty((self.n, 0))
        D = np.column_stack([self.X, z])
        Wr = vr * W[:, None]
        RR = np.empty((m, m))
        RR[:mre, :mre] = np.bincount(self._k_rr, (Wr[:, :, None] * vr[:, None, :]).ravel(), mre * mre).reshape(mre, mre)
        RR[:mre, mre:] = np.bincount(self._k_rd, (Wr[:, :, None] * D[:, None, :]).ravel(), mre * (p + 1)).reshape(mre, p + 1)
        RR[mre:, :mre] = RR[:mre, mre:].T
        RR[mre:, mre:] = (D * W[:, None]).T @ D
        z1 = ZL[self.first]
        U = np.bincount(self._k_u, ((z1 * W[:, None])[:, :, None] * np.hstack([vr, D])[:, None, :]).ravel(),
                        G1 * q1 * m).reshape(G1 * q1, m)
        if q1 == 1:
            A = 1.0 + np.bincount(self.codes[self.first], W * z1[:, 0] ** 2, minlength=G1)
            logdet = float(np.log(A).sum())
            AiU = U / A[:, None]
        else:
            A = np.zeros((G1, q1, q1))
            np.add.at(A, self.codes[self.first], (W[:, None, None] * z1[:, :, None]) * z1[:, None, :])
            A += np.eye(q1)
            Lc = np.linalg.cholesky(A)
            logdet = 2.0 * float(np.log(np.diagonal(Lc, axis1=1, axis2=2)).sum())
            AiU = np.linalg.solve(A, U.reshape(G1, q1, m)).reshape(G1 * q1, m)
        S = RR - U.T @ AiU
        S[np.arange(mre), np.arange(mre)] += 1.0
        L, info = _potrf(S, lower=1, clean=1)
        if 0 < info <= mre + p:
            raise np.linalg.LinAlgError("the penalised weighted least-squares system is not positive definite")
        logdet += 2.0 * float(np.log(np.diagonal(L)[:mre]).sum())
        c = L[m - 1, : m - 1]  # the forward-solved right-hand side: L_lead' [u_rest; beta] = c
        if joint:
            sol, _ = _trtrs(L[: m - 1, : m - 1], c, lower=1, trans=1)
            ur, beta = sol[:mre], sol[mre:]
            LX = L[mre : m - 1, mre : m - 1]
            Sb = LX @ LX.T
        else:
            ur, _ = _trtrs(L[:mre, :mre], c[:mre], lower=1, trans=1) if mre else (np.empty(0), 0)
            beta, Sb = None, None
        rhs = U[:, m - 1] - U[:, :mre] @ ur - (U[:, mre : m - 1] @ beta if joint else 0.0)
        u1 = rhs / A if q1 == 1 else np.linalg.solve(A, rhs.reshape(G1, q1, 1))[:, :, 0]
        parts = [None] * len(self.qs)
        parts[self.first] = np.ravel(u1)
        for i, k in enumerate(self.rest):
            parts[k] = ur[self.roff[i] : self.roff[i + 1]]
        u = np.concatenate(parts)
        return u, beta, logdet, Sb, {"A": A, "U": U[:, :mre], "Lr": L[:mre, :mre]}

    def cond_var(self, kept, theta):
        """Per level, (G, q_l, q_l) conditional covariances of b at the mode (lme4's condVar),
        Lambda [(ZL'WZL + I)^-1]_gg Lambda': for the other factors the blocks of S_rr^{-1}, for
        the first A_g^{-1} + E_g S_rr^{-1} E_g' with E_g = A_g^{-1} U_g."""
        A, U, Lr = kept["A"], kept["U"], kept["Lr"]
        q1, G1, mre = self.q1, self.G1, self.mre
        Ai = (1.0 / A)[:, None, None] if q1 == 1 else np.linalg.inv(A)
        V = [None] * len(self.qs)
        if mre:
            Li, _ = _trtrs(Lr, np.eye(mre), lower=1)  # S_rr^{-1} = Li' Li
            for i, k in enumerate(self.rest):
                Lk = Li[:, self.roff[i] : self.roff[i + 1]].T.reshape(self.G[k], self.qs[k], mre)
                V[k] = np.einsum("gaj,gbj->gab", Lk, Lk)
            E = np.matmul(Ai, U.reshape(G1, q1, mre))  # (G1, q1, mre)
            H = E @ Li.T
            V[self.first] = Ai + np.einsum("gaj,gbj->gab", H, H)
        else:
            V[self.first] = Ai
        return [np.einsum("ij,gjk,lk->gil", Lm, Vl, Lm) for Lm, Vl in zip(self.lambdas(theta), V)]
