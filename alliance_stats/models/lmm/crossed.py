"""Profiled-deviance engine for any combination of grouping factors: crossed, partially crossed
or nested.

The model and the deviance are those of :mod:`.nested` (lme4's: Bates, Maechler, Bolker & Walker
2015, eqs. 34 and 41): ``log|L|^2`` of ``L L' = Lambda'Z'Z Lambda + I``, ``log|R_X|^2`` and the
penalised residual sum of squares ``r^2``. Here the grouping factors need not be nested, so the
system cannot be eliminated group by group along a tree. It is factored as MixedModels.jl does
(Bates, "MixedModels.jl", blocked Cholesky), by blocks of columns:

1. The factor with the most random effects comes first. Its block of ``Z'Z`` is block diagonal
   (one ``q1 x q1`` block per group), so its part of ``L`` is a batch of small Cholesky factors,
   ``A_g = Lambda_1'(Z_1'Z_1)_g Lambda_1 + I``.
2. Everything else, ``R = [Z_2 .. Z_K | X | y]``, is reduced by it at once: the Schur complement is
   ``T'(R'R - sum_g U_g' B_g U_g) T`` with ``U_g`` the rows of ``Z_1'R`` for group g,
   ``B_g = Lambda_1 A_g^{-1} Lambda_1'`` and ``T`` the other factors' relative covariance
   factors. ``U`` is sparse (a student rates a few of the instructors), so the sum is a sparse
   matrix (one column per group and pair of random effects, one row per pair of columns of
   ``R``, made once) times the vector of the ``B_g``: one sparse product per evaluation, whose
   cost is the number of pairs of non-zeros within the groups, not the number of rows.
3. The other factors' block of that complement is dense in general (two instructors share
   students) and gets a dense (LAPACK) Cholesky factor; the fixed effects and the response are
   eliminated last, as in :mod:`.nested`.

All cross products (``Z'Z``, ``Z'X``, ``Z'y``, ``X'X``, ``X'y``, ``y'y``) are computed once, so an
evaluation never touches the rows. Nested designs use :mod:`.nested`, which is faster for
them; this engine gives the same deviance on them (a test checks it at random theta).

The interface (``deviance``, ``solve``, ``lower``, ``start``, ``to_int``/``to_orig``, ``lambdas``,
``tri_index``, ``deviance_vp``, ``vcov_beta``, ``n``, ``n_theta``) is that of
:class:`.nested.NestedEngine`, so the optimizer, the Satterthwaite df and the result are shared.
"""

from __future__ import annotations


import numpy as np
import scipy.sparse as sp
from scipy.linalg.lapack import dpotrf as _potrf, dtrtri as _trtri, dtrtrs as _trtrs

from ...exceptions import ModelSpecError
from .nested import Level, ProfiledDeviance

# the other factors' random effects form one dense block: above this many columns its Cholesky
# factor would take gigabytes and minutes per evaluation
MAX_DENSE = 12_000
# the reduction is a flat (m, m) vector up to this many entries, else a vector of the pairs present
FLAT_MAX = 4_000_000
# factors with at most this many random effects are reduced as dense columns (as X and y)
DENSE_FACTOR = 64
# at most this many pairs of non-zeros in the sparse reduction (about 40 bytes each while built)
MAX_PAIRS = 40_000_000


# dense blocks from this size are factored with one BLAS thread: on a busy machine OpenBLAS's
# threads wait for each other (InstEval's 1,145-column factor: 66-82 ms with one thread, 100-740 ms
# with two, on the project's 2-core machine under load), and an idle one gains less than twofold
ONE_THREAD_FROM = 256
_CONTROLLER = []


def _one_blas_thread():
    from threadpoolctl import ThreadpoolController

    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


class CrossedEngine(ProfiledDeviance):
    """Deviance, solution and conditional covariances for any design (see the module docstring).

    Parameters
    ----------
    X : (n, p) fixed-effects matrix of full column rank
    y : (n,) response
    levels : list of :class:`.nested.Level` (``parent`` is not used), in lme4's order: theta
        holds each level's relative covariance factor in this order.
    reduction : {"auto", "sparse", "dense"}
        How ``sum_g U_g'B_g U_g`` is formed: "sparse" from the pairs of non-zeros for the
        other factors' columns and by dense products for the columns that most groups touch
        (X, y, factors with few groups); "dense" by dense products for all, which is faster when
        most groups of the first factor touch most other columns. "auto" chooses by the number
        of pairs.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, levels: list[Level], reduction: str = "auto"):
        self._setup_common(X, y, levels)
        # the factor eliminated first: the most random effects (groups x columns)
        sizes = [lv.n_groups * lv.q for lv in levels]
        self.first = int(np.argmax(sizes))
        self.rest = [k for k in range(len(levels)) if k != self.first]
        self.offsets = {}
        off = 0
        for k in self.rest:
            self.offsets[k] = off
            off += sizes[k]
        self.mre = off
        if self.mre > MAX_DENSE:
            names = ", ".join(f"{levels[k].name!r} ({levels[k].n_groups} groups x {levels[k].q})" for k in self.rest)
            raise ModelSpecError(
                f"the grouping factors {names} are crossed with {levels[self.first].name!r} and have "
                f"{self.mre} random effects together; this engine factors them as one dense block of "
                f"at most {MAX_DENSE} columns (lme4's sparse factorisation can fit it). If these IDs restart "
                "within a higher level, write the nesting, e.g. (1 | therapist/patient)"
            )
        self.m = self.mre + self.p + 1
        self._setup(reduction)

    # -- cross products, once ------------------------------------------------------------------
    def _expand(self, k):
        """The sparse (n, groups x q) random-effects matrix of level k (scaled columns), with
        lme4's column order: the q columns of group 0, then of group 1, ..."""
        lv = self.levels[k]
        q = lv.q
        Z = lv.Z / lv.scale
        rows = np.repeat(np.arange(self.n), q)
        cols = (lv.codes[:, None] * q + np.arange(q)).ravel()
        return sp.csr_matrix((Z.ravel(), (rows, cols)), shape=(self.n, lv.n_groups * q))

    def _setup(self, reduction, flat_max=None, dense_factor=None):
        """Cross products and the reduction's structure (``flat_max`` and ``dense_factor``
        override FLAT_MAX and DENSE_FACTOR, for tests of every path)."""
        m, mre = self.m, self.mre
        first = self.levels[self.first]
        q1, G1 = first.q, first.n_groups
        self.q1, self.G1 = q1, G1
        Z1 = self._expand(self.first).tocsc()
        XY = np.column_stack([self.X / self.xscale, self.y])
        parts = [self._expand(k) for k in self.rest] + [sp.csr_matrix(XY)]
        R = sp.hstack(parts, format="csc")
        U = (Z1.T @ R).tocsr()  # (G1 q1, m)
        U.sum_duplicates()
        U.sort_indices()
        self.U = U
        RR = (R.T @ R).toarray()
        self.RR = RR
        # first factor's diagonal blocks of Z'Z
        Zs = first.Z / first.scale
        zz = np.empty((G1, q1, q1))
        for a in range(q1):
            for b in range(a, q1):
                v = np.bincount(first.codes, weights=Zs[:, a] * Zs[:, b], minlength=G1)
                zz[:, a, b] = v
                zz[:, b, a] = v
        self.zz = zz
        self._zz00 = np.ascontiguousarray(zz[:, 0, 0])
        # the reduction sum_g U_g' B_g U_g. Columns that most groups touch (X, y and factors with
        # few groups) form a dense part, reduced by matrix products; for the others, a sparse
        # matrix times the vector of the B_g: every pair of non-zeros (k, l) of the same group with
        # column(k) <= column(l) puts U_k U_l in row (column(k), column(l)), column
        # (group, row(k) % q1, row(l) % q1)
        dense_factor = DENSE_FACTOR if dense_factor is None else dense_factor
        small = [k for k in self.rest if self.levels[k].n_groups * self.levels[k].q <= dense_factor]
        ms = min([self.offsets[k] for k in small] + [mre])  # columns from ms on are dense
        self.ms = ms
        Us = U[:, :ms].tocsr()
        Us.sort_indices()
        nnz_row = np.diff(Us.indptr)
        gstart = Us.indptr[::q1]  # (G1 + 1,) start of each group's non-zeros
        s = np.diff(gstart)
        total = int((s.astype(np.int64) ** 2).sum())
        # all dense when U is dense enough that BLAS beats the pair list, or the list is too long
        self._dense = total > MAX_PAIRS or total * 8 > G1 * q1 * m * m if reduction == "auto" else reduction == "dense"
        if self._dense:
            if G1 * q1 * m > 2e8:
                raise ModelSpecError(
                    f"the design is too large for this engine: {G1} {first.name!r} groups whose random "
                    f"effects touch most of {m} other columns"
                )
            self._Ud = U.toarray()
            self.n_pairs = 0
            return
        self._Udn = U[:, ms:].toarray()  # (G1 q1, m - ms)
        self._UsT = Us.T.tocsr()  # (ms, G1 q1)
        row_of = np.repeat(np.arange(Us.shape[0]), nnz_row)
        if q1 == 1:
            # a row's non-zeros are in column order: pair each with itself and those after it
            t = np.arange(Us.nnz, dtype=np.int64) - Us.indptr[row_of]
            lens = nnz_row[row_of] - t
            first_k = np.repeat(np.arange(Us.nnz, dtype=np.int64), lens)
            second_k = first_k + (np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens))
            ci, cj = Us.indices[first_k], Us.indices[second_k]
            col = row_of[first_k]
        else:
            g_of = row_of // q1
            lens = s[g_of]
            first_k = np.repeat(np.arange(Us.nnz, dtype=np.int64), lens)
            within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
            second_k = np.repeat(gstart[g_of].astype(np.int64), lens) + within
            ci, cj = Us.indices[first_k], Us.indices[second_k]
            keep = ci <= cj
            first_k, second_k, ci, cj = first_k[keep], second_k[keep], ci[keep], cj[keep]
            col = g_of[first_k] * (q1 * q1) + (row_of[first_k] % q1) * q1 + (row_of[second_k] % q1)
        self.n_pairs = len(first_k)
        vals = Us.data[first_k] * Us.data[second_k]
        key = ci.astype(np.int64) * m + cj
        if m * m <= (FLAT_MAX if flat_max is None else flat_max):
            self._keys = None  # rows are the flat positions of the (m, m) matrix
            nrow = m * m
        else:
            self._keys, key = np.unique(key, return_inverse=True)
            nrow = len(self._keys)
        # row-major: a product with it reads the short vector of weights at random and writes
        # its (long) result in order, which keeps the memory traffic sequential
        self.P = sp.csr_matrix((vals, (key, col)), shape=(nrow, G1 * q1 * q1))
        self.P.sum_duplicates()

    # -- the factorisation ------------------------------------------------------------------------
    def _first_blocks(self, L1, keep=False):
        """log-determinant of the first factor's blocks A_g = L1'(Z'Z)_g L1 + I and the weights
        B_g = L1 A_g^{-1} L1' (G, q1 * q1); with ``keep`` also A_g (G, q1, q1)."""
        q1 = self.q1
        if q1 == 1 and not keep:
            l2 = L1[0, 0] ** 2
            A = 1.0 + l2 * self._zz00
            return float(np.log(A).sum()), (l2 / A)[:, None], None
        A = np.matmul(np.matmul(L1.T, self.zz), L1) + np.eye(q1)
        Lc = np.linalg.cholesky(A)
        logdet = 2.0 * float(np.log(np.diagonal(Lc, axis1=1, axis2=2)).sum())
        Ai = np.linalg.inv(A)
        B = np.matmul(np.matmul(L1, Ai), L1.T).reshape(len(A), q1 * q1)
        return logdet, B, A

    def _reduced(self, lams, B):
        """T'(R'R - sum_g U_g'B_g U_g)T, a fresh C-ordered (m, m) array whose upper triangle is
        exact (the lower triangle is not used)."""
        m = self.m
        if self._dense:
            Ud = self._Ud
            if self.q1 == 1:
                S = Ud.T @ (Ud * B)
            else:
                G1, q1 = self.G1, self.q1
                BU = np.matmul(B.reshape(G1, q1, q1), Ud.reshape(G1, q1, m)).reshape(G1 * q1, m)
                S = Ud.T @ BU
            np.subtract(self.RR, S, out=S)
        else:
            ms, G1, q1 = self.ms, self.G1, self.q1
            if q1 == 1:
                BU = self._Udn * B
            else:
                BU = np.matmul(B.reshape(G1, q1, q1), self._Udn.reshape(G1, q1, m - ms)).reshape(G1 * q1, m - ms)
            if self._keys is None:
                S = (self.P @ B.ravel()).reshape(m, m)
                S[:ms, ms:] = self._UsT @ BU
                S[ms:, ms:] = self._Udn.T @ BU
                np.subtract(self.RR, S, out=S)
            else:
                S = self.RR.copy()
                S.ravel()[self._keys] -= self.P @ B.ravel()
                S[:ms, ms:] -= self._UsT @ BU
                S[ms:, ms:] -= self._Udn.T @ BU
        if all(self.q[k] == 1 for k in self.rest):
            # scalar relative factors: block (a, b) of the other factors is scaled by l_a l_b
            for i, k in enumerate(self.rest):
                sk = self._span(k)
                lk = lams[k][0, 0]
                S[sk, sk] *= lk * lk
                for k2 in self.rest[i + 1 :]:
                    S[sk, self._span(k2)] *= lk * lams[k2][0, 0]
                S[sk, self.mre :] *= lk
        else:
            # only the upper triangle holds the reduction: mirror it, then T'ST level by level
            il = np.tril_indices(m, -1)
            S[il] = S.T[il]
            for k in self.rest:
                lv = self.levels[k]
                G, q, L = lv.n_groups, lv.q, lams[k]
                sk = self._span(k)
                S[:, sk] = (S[:, sk].reshape(m, G, q) @ L).reshape(m, G * q)
                S[sk, :] = np.matmul(L.T, S[sk, :].reshape(G, q, m)).reshape(G * q, m)
        return S

    def _span(self, k):
        o = self.offsets[k]
        return slice(o, o + self.levels[k].n_groups * self.levels[k].q)

    def _factor(self, theta_int, keep=False):
        """One Cholesky factor of the whole reduced system [other factors | X | y], in place:
        its leading block is the other factors' part of L, and its trailing (p + 1) block is
        [[R_X, c_beta], [0, r]] (as the nested engine's last step)."""
        lams = self.lambdas(theta_int)
        logdet, B, A = self._first_blocks(lams[self.first], keep=keep)
        S = self._reduced(lams, B)
        mre, p, m = self.mre, self.p, self.m
        S.ravel()[: mre * (m + 1) : m + 1] += 1.0  # + I on the random effects' diagonal
        # LAPACK reads the Fortran-ordered transpose: its lower triangle is S's upper triangle,
        # and the factor overwrites it with no copy
        if m >= ONE_THREAD_FROM:
            with _one_blas_thread():
                _, info = _potrf(S.T, lower=1, clean=0, overwrite_a=1)
        else:
            _, info = _potrf(S.T, lower=1, clean=0, overwrite_a=1)
        if 0 < info <= mre + p:
            raise np.linalg.LinAlgError("the reduced system is not positive definite")
        d = np.diagonal(S)
        logdet += 2.0 * float(np.log(d[:mre]).sum())
        RX = np.triu(S[mre : mre + p, mre : mre + p])
        cb = S[mre : mre + p, m - 1].copy()
        r2 = float(d[m - 1] ** 2) if info == 0 else 0.0  # info == m: a perfect fit, r = 0
        out = dict(lams=lams, logdet=logdet, RX=RX, cb=cb, r2=max(r2, 1e-300))
        if keep:
            out.update(A=A, B=B, RA=np.triu(S[:mre, :mre]), W=S[:mre, mre:].copy())
        return out

    # -- the solution ---------------------------------------------------------------------------
    def _t_apply(self, lams, u_rest):
        """T u for the other factors' spherical random effects (mre,)."""
        out = np.empty_like(u_rest)
        for k in self.rest:
            lv = self.levels[k]
            o, G, q = self.offsets[k], lv.n_groups, lv.q
            out[o : o + G * q] = (u_rest[o : o + G * q].reshape(G, q) @ lams[k].T).ravel()
        return out

    def solve(self, theta_int, reml=True, condvar=False):
        """Everything at the optimum: beta, sigma, vcov, BLUPs (and their conditional covariances
        when ``condvar``), as :meth:`.nested.NestedEngine.solve`."""
        f = self._factor(theta_int, keep=True)
        n, p, mre = self.n, self.p, self.mre
        lams = f["lams"]
        beta_s = np.linalg.solve(f["RX"], f["cb"])
        beta = beta_s / self.xscale
        sigma2 = f["r2"] / ((n - p) if reml else n)
        Ri = np.linalg.inv(f["RX"])
        vcov = sigma2 * (Ri @ Ri.T) / np.outer(self.xscale, self.xscale)
        u = [None] * len(self.levels)
        if mre:
            W = f["W"]
            rhs = W[:, p] - W[:, :p] @ beta_s
            u_rest, _ = _trtrs(f["RA"], rhs, lower=0)
            for k in self.rest:
                lv = self.levels[k]
                o = self.offsets[k]
                u[k] = u_rest[o : o + lv.n_groups * lv.q].reshape(lv.n_groups, lv.q)
            t_rest = self._t_apply(lams, u_rest)
        else:
            t_rest = np.empty(0)
        # the first factor: A_g u_g = L1' (Z1'y - Z1'Z_r T u_r - Z1'X beta)_g
        L1 = lams[self.first]
        h = (self.U @ np.r_[-t_rest, -beta_s, 1.0]).reshape(self.G1, self.q1)
        u[self.first] = np.linalg.solve(f["A"], (h @ L1)[:, :, None])[:, :, 0]
        b = [(ui @ Lm.T) / lv.scale for lv, Lm, ui in zip(self.levels, lams, u)]
        out = dict(beta=beta, sigma2=sigma2, vcov=vcov, u=u, b=b, dev=self._dev_from(f, reml), lams=lams)
        if condvar:
            out["condvar"] = self._condvar(f, sigma2)
        return out

    def _condvar(self, f, sigma2):
        """Conditional covariance of b given y (and beta), per group, as lme4's condVar:
        sigma^2 Lambda [(Lambda'Z'Z Lambda + I)^{-1}]_gg Lambda'. With the random effects split
        into the first factor (block diagonal A) and the rest (Schur complement S = R_A'R_A):
        the rest's blocks of the inverse are those of S^{-1} = R_A^{-1}R_A^{-T}, the first's
        are A_g^{-1} + E_g S^{-1} E_g' with E_g = A_g^{-1} L1'(Z1'Z_r)_g T."""
        lams = f["lams"]
        mre, G1, q1 = self.mre, self.G1, self.q1
        V = [None] * len(self.levels)
        Ai = np.linalg.inv(f["A"])
        if mre:
            Rinv, info = _trtri(f["RA"], lower=0)
            Rinv = np.triu(Rinv)
            for k in self.rest:
                lv = self.levels[k]
                o, G, q = self.offsets[k], lv.n_groups, lv.q
                Rk = Rinv[o : o + G * q].reshape(G, q, mre)
                V[k] = np.einsum("gaj,gbj->gab", Rk, Rk)
            # E = blockdiag(A_g^{-1} L1') (Z1'Z_r) T, sparse; E S^{-1} E' blocks = (E Rinv)(E Rinv)'
            L1 = lams[self.first]
            K = np.matmul(Ai, L1.T)  # (G1, q1, q1)
            rows = np.repeat(np.arange(G1 * q1), q1)
            cols = (np.arange(G1)[:, None, None] * q1 + np.zeros((1, q1, 1), int) + np.arange(q1)[None, None, :]).ravel()
            Kmat = sp.csr_matrix((K.ravel(), (rows, cols)), shape=(G1 * q1, G1 * q1))
            T = sp.block_diag([sp.kron(sp.identity(self.levels[k].n_groups), sp.csr_matrix(lams[k])) for k in self.rest], format="csr")
            E = (Kmat @ self.U[:, :mre] @ T).tocsr()
            extra = np.empty((G1, q1, q1))
            chunk = max(1, int(4_000_000 // max(mre, 1)) // q1)
            for g0 in range(0, G1, chunk):
                g1 = min(G1, g0 + chunk)
                H = np.asarray(E[g0 * q1 : g1 * q1] @ Rinv).reshape(g1 - g0, q1, mre)
                extra[g0:g1] = np.einsum("gaj,gbj->gab", H, H)
            V[self.first] = Ai + extra
        else:
            V[self.first] = Ai
        out = []
        for lv, Lm, Vk in zip(self.levels, lams, V):
            out.append(sigma2 * np.matmul(np.matmul(Lm, Vk), Lm.T) / np.outer(lv.scale, lv.scale))
        return out

    def _factor_fast(self, theta_int):
        return self._factor(theta_int)
