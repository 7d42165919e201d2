"""Alliance and symptoms over sessions without dynamic-panel (Nickell) bias: the ML-SEM dynamic
panel model and the random-intercept cross-lagged panel model, fitted by full-information maximum
likelihood.

References
----------
Allison, Williams & Moral-Benito (2017). Maximum likelihood for cross-lagged panel models with fixed
effects. Socius, 3, 1-17.
Williams, Allison & Moral-Benito (2018). Linear dynamic panel-data estimation using maximum
likelihood and structural equation modeling. The Stata Journal, 18, 293-326.
Hamaker, Kuiper & Grasman (2015). A critique of the cross-lagged panel model. Psychological
Methods, 20, 102-116.
Falkenström, Finkel, Sandell, Rubel & Holmqvist (2017). Dynamic models of individual change in
psychotherapy process research. Journal of Consulting and Clinical Psychology, 85, 537-549.
McArdle & McDonald (1984). Some algebraic properties of the reticular action model for moment
structures. British Journal of Mathematical and Statistical Psychology, 37, 234-251.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .._format import apa_p, fmt_ci, fmt_num, format_frame
from .._result import Result, accounting_frame
from ..exceptions import (ArgumentError, ColumnError, ConvergenceWarning, ModelSpecError, OptionError, SingularFitWarning, _fmt_labels,
                          user_stacklevel)
from ..io import check_session_keys

__all__ = ["dynamic_panel", "DynamicPanelResult", "ri_clpm", "RICLPMResult"]

#: Standard errors ``dynamic_panel`` and ``ri_clpm`` offer.
SE_TYPES = ("observed", "robust")
_LOG2PI = np.log(2 * np.pi)
_Z975 = stats.norm.ppf(0.975)


# ========================================================================================
# A linear structural equation model in RAM form, fitted by FIML
# ========================================================================================
class _Ram:
    """Variables (observed first, then latent), and the free and fixed entries of

    - A (directed paths, ``A[i, j]``: effect of j on i),
    - S (variances and covariances of exogenous variables and residuals),
    - M (means of exogenous variables, intercepts of endogenous ones).

    The model-implied moments are ``B = (I - A)^-1``, ``Sigma = B S B'`` and ``mu = B M``
    restricted to the observed variables (McArdle & McDonald 1984). Entries that share a label
    share one parameter (an equality constraint).
    """

    def __init__(self, observed, latent=()):
        self.names = list(observed) + list(latent)
        self.p = len(observed)
        self.m = len(self.names)
        self.idx = {n: i for i, n in enumerate(self.names)}
        self.labels: list[str] = []
        self.rows: list[dict] = []  # one per matrix entry, lavaan-style (lhs, op, rhs, param)
        self.fixed: list[tuple[int, int, float]] = []

    def _param(self, label):
        if label is None or label not in self.labels:
            self.labels.append(label if label is not None else f".p{len(self.labels) + 1}")
        return self.labels.index(label) if label is not None else len(self.labels) - 1

    def path(self, to, frm, label=None, fixed=None):
        """``to ~ frm`` (a regression) or, with ``fixed``, a fixed loading/path."""
        if fixed is not None:
            self.fixed.append((self.idx[to], self.idx[frm], float(fixed)))
            self.rows.append({"lhs": frm, "op": "=~", "rhs": to, "mat": "F", "i": self.idx[to], "j": self.idx[frm], "k": -1, "fixed": float(fixed)})
            return
        k = self._param(label)
        self.rows.append({"lhs": to, "op": "~", "rhs": frm, "mat": "A", "i": self.idx[to], "j": self.idx[frm], "k": k})

    def cov(self, a, b, label=None):
        k = self._param(label)
        self.rows.append({"lhs": a, "op": "~~", "rhs": b, "mat": "S", "i": self.idx[a], "j": self.idx[b], "k": k})

    def mean(self, a, label=None):
        k = self._param(label)
        self.rows.append({"lhs": a, "op": "~1", "rhs": "", "mat": "M", "i": self.idx[a], "j": 0, "k": k})

    def compile(self):
        t = pd.DataFrame(self.rows)
        self.K = len(self.labels)
        self.table = t
        free = t[t["mat"] != "F"]
        for mat in ("A", "S", "M"):
            sub = free[free["mat"] == mat]
            i, j, k = (sub[c].to_numpy(int) for c in ("i", "j", "k"))
            setattr(self, f"_{mat}i", i)
            setattr(self, f"_{mat}j", j)
            setattr(self, f"_{mat}k", k)
            # entry -> parameter map (summing the gradient over shared entries)
            W = np.zeros((len(sub), self.K))
            W[np.arange(len(sub)), k] = np.where(i == j, 1.0, 2.0) if mat == "S" else 1.0
            setattr(self, f"_{mat}W", W)
            W1 = np.zeros((len(sub), self.K))
            W1[np.arange(len(sub)), k] = 1.0
            setattr(self, f"_{mat}W1", W1)
        self._A0 = np.zeros((self.m, self.m))
        for i, j, v in self.fixed:
            self._A0[i, j] = v
        return self

    def implied(self, theta):
        """B, full covariance and full mean for a stack of parameter vectors (b x K)."""
        nb = theta.shape[0]
        A = np.broadcast_to(self._A0, (nb, self.m, self.m)).copy()
        A[:, self._Ai, self._Aj] = theta[:, self._Ak]
        S = np.zeros((nb, self.m, self.m))
        S[:, self._Si, self._Sj] = theta[:, self._Sk]
        S[:, self._Sj, self._Si] = theta[:, self._Sk]
        M = np.zeros((nb, self.m))
        M[:, self._Mi] = theta[:, self._Mk]
        B = np.linalg.inv(np.eye(self.m) - A)
        return B, B @ S @ np.swapaxes(B, 1, 2), np.einsum("bij,bj->bi", B, M)

    def chain(self, G, g, B, Sf, mu):
        """Gradient in theta of a function whose gradients in the observed covariance matrix
        (G, symmetric) and mean vector (g) are given; all stacked over the first axis."""
        nb, p = g.shape
        Gf = np.zeros((nb, self.m, self.m))
        Gf[:, :p, :p] = G
        gf = np.zeros((nb, self.m))
        gf[:, :p] = g
        Bt = np.swapaxes(B, 1, 2)
        BtG = Bt @ Gf
        Btg = np.einsum("bij,bj->bi", Bt, gf)
        HA = 2.0 * BtG @ Sf + Btg[:, :, None] * mu[:, None, :]
        HS = BtG @ B
        return HA[:, self._Ai, self._Aj] @ self._AW + HS[:, self._Si, self._Sj] @ self._SW + Btg[:, self._Mi] @ self._MW

    def loglik(self, theta, patterns, grad=True):
        """FIML log-likelihood and gradient for a stack of parameter vectors."""
        B, Sf, mu = self.implied(theta)
        ll, G, g = _fiml(Sf[:, : self.p, : self.p], mu[:, : self.p], patterns, grad)
        if not grad:
            return ll, None
        out = np.zeros_like(theta)
        ok = np.isfinite(ll)
        if ok.any():
            out[ok] = self.chain(G[ok], g[ok], B[ok], Sf[ok], mu[ok])
        return ll, out

    def jacobian(self, theta):
        """Derivatives of the observed covariance matrix (p*p x K, row-major) and mean vector
        (p x K) in the parameters."""
        B, Sf, mu = (a[0] for a in self.implied(theta[None]))
        p = self.p
        Bo, So = B[:p], Sf[:p]
        dA = Bo[:, self._Ai].T[:, :, None] * So[:, self._Aj].T[:, None, :]  # entries x p x p
        dA = dA + np.swapaxes(dA, 1, 2)
        dS = Bo[:, self._Si].T[:, :, None] * Bo[:, self._Sj].T[:, None, :]
        dS = np.where((self._Si != self._Sj)[:, None, None], dS + np.swapaxes(dS, 1, 2), dS)
        JS = dA.reshape(len(self._Ai), p * p).T @ self._AW1 + dS.reshape(len(self._Si), p * p).T @ self._SW1
        Jm = (Bo[:, self._Ai] * mu[self._Aj][None, :]) @ self._AW1 + Bo[:, self._Mi] @ self._MW1
        return JS, Jm

    def hessian(self, theta, patterns, expected=False):
        """Observed information (minus the Hessian of the FIML log-likelihood), analytic in the
        moments and chained through the model: J' H_m J plus the curvature of the model's
        moments weighted by the log-likelihood's gradient in them. ``expected=True`` gives the
        expected (Fisher) information instead: positive definite wherever the model is
        identified, for scoring steps far from the optimum."""
        B, Sf, mu = self.implied(theta[None])
        p, K = self.p, self.K
        Sig, m = Sf[0, :p, :p], mu[0, :p]
        HSS, HSm, Hmm = _moment_hessian(Sig, m, patterns, expected)
        JS, Jm = self.jacobian(theta)
        JHJ = JS.T @ HSS @ JS
        cross = JS.T @ HSm @ Jm
        H = JHJ + cross + cross.T + Jm.T @ Hmm @ Jm
        if expected:
            return -H
        # curvature of the moments: Hessian of tr(G Sigma(theta)) + g'mu(theta) at fixed G, g.
        # The moments are linear in the S and M entries given A, so only columns of path
        # parameters are non-zero (central differences of the analytic gradient).
        _, G, g = _fiml(Sig[None], m[None], patterns)
        ka = np.unique(self._Ak)
        if len(ka):
            h = 1e-5 * np.maximum(1.0, np.abs(theta[ka]))
            steps = np.repeat(theta[None], 2 * len(ka), 0)
            steps[np.arange(len(ka)), ka] += h
            steps[len(ka) + np.arange(len(ka)), ka] -= h
            Bs, Ss, ms = self.implied(steps)
            gr = self.chain(np.repeat(G, len(steps), 0), np.repeat(g, len(steps), 0), Bs, Ss, ms)
            C = np.zeros((K, K))
            C[:, ka] = (gr[: len(ka)] - gr[len(ka) :]).T / (2 * h[None, :])
            H2 = C + C.T
            H2[np.ix_(ka, ka)] = (C[np.ix_(ka, ka)] + C[np.ix_(ka, ka)].T) / 2
            H = H + H2
        return -H


def _moment_hessian(Sigma, mu, pats, expected=False):
    """Second derivatives of the FIML log-likelihood in the covariance matrix (row-major vec,
    both triangles), in the covariance matrix and the mean, and in the mean (their
    expectations with ``expected=True``)."""
    p = len(mu)
    VQ, VP, QD, NN = [], [], [], []
    for idx, n, mean, cross in pats.groups:
        npat, k = idx.shape
        Q = np.linalg.inv(Sigma[idx[:, :, None], idx[:, None, :]])
        d = np.zeros_like(mean) if expected else mean - mu[idx]
        P = Q if expected else Q @ (cross + d[:, :, None] * d[:, None, :]) @ Q
        rows = np.arange(npat)[:, None, None]
        Qe = np.zeros((npat, p, p))
        Qe[rows, idx[:, :, None], idx[:, None, :]] = Q
        Pe = np.zeros((npat, p, p))
        Pe[rows, idx[:, :, None], idx[:, None, :]] = P
        Qde = np.zeros((npat, p))
        Qde[np.arange(npat)[:, None], idx] = np.einsum("gij,gj->gi", Q, d)
        VQ.append(Qe.reshape(npat, p * p)), VP.append(Pe.reshape(npat, p * p)), QD.append(Qde), NN.append(n)
    VQ, VP, QD, n = np.vstack(VQ), np.vstack(VP), np.vstack(QD), np.concatenate(NN)
    half = (n / 2)[:, None]
    HSS = VQ.T @ (half * (VQ - VP)) - VP.T @ (half * VQ)
    HSS = HSS.reshape(p, p, p, p).transpose(0, 2, 3, 1).reshape(p * p, p * p)
    HSm = -((n[:, None] * QD).T @ VQ).reshape(p, p, p).reshape(p * p, p)
    Hmm = -(n @ VQ).reshape(p, p)
    return HSS, HSm, Hmm


@dataclass
class _Patterns:
    """Rows grouped by their pattern of observed variables, and patterns grouped by how many
    variables they observe (so that each group is one stack of equally sized matrices)."""

    p: int
    N: int  # rows with at least one observed value
    groups: list  # (idx: npat x k, n: npat, mean: npat x k, cross: npat x k x k)


def _patterns(X: np.ndarray) -> _Patterns:
    """Group the rows of X (NaN = missing) by their pattern of observed variables."""
    seen = ~np.isnan(X)
    keys, inv = np.unique(seen, axis=0, return_inverse=True)
    inv = inv.ravel()
    by_k = {}
    for g, key in enumerate(keys):
        if not key.any():
            continue
        rows = X[inv == g][:, key]
        mean = rows.mean(axis=0)
        dev = rows - mean
        by_k.setdefault(int(key.sum()), []).append((np.flatnonzero(key), len(rows), mean, dev.T @ dev / len(rows)))
    groups = []
    for k in sorted(by_k):
        pats = by_k[k]
        groups.append((np.array([q[0] for q in pats]), np.array([q[1] for q in pats], float),
                       np.array([q[2] for q in pats]), np.array([q[3] for q in pats])))
    N = int(sum(g[1].sum() for g in groups))
    return _Patterns(X.shape[1], N, groups)


def _fiml(Sigma, mu, pats: _Patterns, grad=True):
    """FIML log-likelihood (with its constant) and its gradients in Sigma and mu, for stacks of
    covariance matrices (b x p x p) and mean vectors (b x p). A stack member whose covariance
    matrix is not positive definite for some pattern gets -inf."""
    nb, p = mu.shape
    ll = np.zeros(nb)
    Gf = np.zeros(nb * p * p) if grad else None
    g = np.zeros((nb, p)) if grad else None
    bad = np.zeros(nb, dtype=bool)
    for idx, n, mean, cross in pats.groups:
        k = idx.shape[1]
        So = Sigma[:, idx[:, :, None], idx[:, None, :]]  # b x npat x k x k
        try:
            L = np.linalg.cholesky(So)
        except np.linalg.LinAlgError:
            nonpd = ~(np.linalg.eigvalsh(So).min(axis=-1) > 0)
            bad |= nonpd.any(axis=1)
            So = np.where(nonpd[:, :, None, None], np.eye(k), So)
            L = np.linalg.cholesky(So)
        Sinv = np.linalg.inv(So)
        d = mean[None] - mu[:, idx]  # b x npat x k
        SW = Sinv @ (cross[None] + d[..., :, None] * d[..., None, :])
        logdet = 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(axis=-1)
        ll += -0.5 * ((k * _LOG2PI + logdet + np.trace(SW, axis1=-2, axis2=-1)) * n).sum(axis=1)
        if grad:
            vals = (-0.5 * n[None, :, None, None]) * (Sinv - SW @ Sinv)
            flat = (np.arange(nb)[:, None, None, None] * (p * p) + idx[None, :, :, None] * p + idx[None, :, None, :])
            Gf += np.bincount(flat.ravel(), weights=vals.ravel(), minlength=nb * p * p)
            gv = n[None, :, None] * np.einsum("bgij,bgj->bgi", Sinv, d)
            g += np.bincount((np.arange(nb)[:, None, None] * p + idx[None]).ravel(), weights=gv.ravel(), minlength=nb * p).reshape(nb, p)
    ll[bad] = -np.inf
    return ll, (Gf.reshape(nb, p, p) if grad else None), g


def _saturated(X, pats: _Patterns, max_iter=5000):
    """Unrestricted mean and covariance (the H1 model of the chi-square test): EM with SQUAREM
    acceleration (Varadhan & Roland 2008) to near the optimum, then Newton steps on the exact
    Hessian.

    Returns (mean, cov, loglik, converged)."""
    p = X.shape[1]
    N = pats.N

    def ll_of(mu, S):
        return float(_fiml(S[None], mu[None], pats, grad=False)[0][0])

    if len(pats.groups) == 1 and pats.groups[0][0].shape == (1, p):
        _, _, mean, cross = pats.groups[0]
        ll = ll_of(mean[0], cross[0])
        return mean[0].copy(), cross[0].copy(), ll, bool(np.isfinite(ll))
    # padded pattern statistics: missing entries are zero
    O, nn, S1, S2 = [], [], [], []
    for idx, n, mean, cross in pats.groups:
        for q in range(len(n)):
            o = np.zeros(p, bool)
            o[idx[q]] = True
            s1 = np.zeros(p)
            s1[idx[q]] = n[q] * mean[q]
            s2 = np.zeros((p, p))
            s2[np.ix_(idx[q], idx[q])] = n[q] * (cross[q] + np.outer(mean[q], mean[q]))
            O.append(o), nn.append(n[q]), S1.append(s1), S2.append(s2)
    O, nn, S1, S2 = np.array(O), np.array(nn), np.array(S1), np.array(S2)
    OO = O[:, :, None] & O[:, None, :]
    MO = ~O[:, :, None] & O[:, None, :]
    MM = ~O[:, :, None] & ~O[:, None, :]
    Dm = np.where(MM, np.eye(p)[None], 0.0)

    def em(mu, S):
        St = np.where(OO, S[None], 0.0) + Dm
        Q = np.linalg.inv(St)
        K = np.where(MO, S[None] @ Q, 0.0)  # regression of missing on observed
        J = K + O[:, :, None] * np.eye(p)[None]
        a = np.where(O, 0.0, mu[None]) - np.einsum("gij,j->gi", K, mu)
        Js = np.einsum("gij,gj->gi", J, S1)
        C = np.where(MM, S[None] - K @ S[None], 0.0)
        T1 = (nn[:, None] * a + Js).sum(axis=0)
        T2 = (nn[:, None, None] * (a[:, :, None] * a[:, None, :] + C) + a[:, :, None] * Js[:, None, :] + Js[:, :, None] * a[:, None, :]
              + J @ S2 @ np.swapaxes(J, 1, 2)).sum(axis=0)
        m = T1 / N
        V = T2 / N - np.outer(m, m)
        return m, (V + V.T) / 2

    def pack(m, V):
        return np.concatenate([m, V[np.triu_indices(p)]])

    def unpack(v):
        V = np.zeros((p, p))
        V[np.triu_indices(p)] = v[p:]
        return v[:p], V + np.triu(V, 1).T

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mu = np.nanmean(X, axis=0)
        S = _pairwise_cov(X)
    if np.any(~np.isfinite(mu)) or np.any(~(np.diag(S) > 0)):
        return mu, S, np.nan, False
    # SQUAREM-accelerated EM to near the optimum, then Newton steps on the exact Hessian
    ll_old = ll_of(mu, S)
    ok = False
    try:
        for _ in range(max_iter):
            x0 = pack(mu, S)
            x1 = pack(*em(mu, S))
            x2 = pack(*em(*unpack(x1)))
            r, v = x1 - x0, x2 - 2 * x1 + x0
            alpha = min(-np.sqrt((r @ r) / (v @ v)) if v @ v > 0 else -1.0, -1.0)
            cand = unpack(x0 - 2 * alpha * r + alpha**2 * v)
            ll = ll_of(*cand)
            if not np.isfinite(ll) or ll < ll_old:
                cand = unpack(x2)
            mu, S = em(*cand)  # a stabilising EM step
            ll = ll_of(mu, S)
            if not np.isfinite(ll):
                return mu, S, np.nan, False
            if abs(ll - ll_old) < 1e-5 * max(1.0, abs(ll)):
                ok = True
                break
            ll_old = ll
    except np.linalg.LinAlgError:
        return mu, S, np.nan, False
    if not ok:
        return mu, S, ll, False
    r, c = np.tril_indices(p)
    Dup = np.zeros((p * p, len(r)))  # vech (lower) -> vec (row-major, both triangles)
    Dup[r * p + c, np.arange(len(r))] = 1.0
    Dup[c * p + r, np.arange(len(r))] = 1.0
    wv = np.where(r == c, 1.0, 2.0)
    for _ in range(50):
        ll, G, g = _fiml(S[None], mu[None], pats)
        grad = np.concatenate([g[0], G[0][r, c] * wv])
        if np.max(np.abs(grad)) / N < 1e-11:
            return mu, S, float(ll[0]), True
        HSS, HSm, Hmm = _moment_hessian(S, mu, pats)
        H = -np.block([[Hmm, (Dup.T @ HSm).T], [Dup.T @ HSm, Dup.T @ HSS @ Dup]])
        try:
            step = np.linalg.solve(H, grad)
        except np.linalg.LinAlgError:
            break
        t = 1.0
        while t > 1e-6:
            m2 = mu + t * step[:p]
            V = np.zeros((p, p))
            V[r, c] = S[r, c] + t * step[p:]
            V = V + np.tril(V, -1).T
            l2 = ll_of(m2, V)
            if np.isfinite(l2) and l2 >= float(ll[0]) - 1e-9 * abs(float(ll[0])):
                break
            t /= 2
        if t <= 1e-6:
            break
        mu, S = m2, V
    ll = ll_of(mu, S)
    return mu, S, ll, bool(np.isfinite(ll))


def _pairwise_cov(X):
    """Covariances from the pairs of observed values (ML divisor), shrunk towards zero
    correlation until positive definite."""
    ok = ~np.isnan(X)
    Z = np.where(ok, X - np.nanmean(X, axis=0), 0.0)
    cnt = ok.T.astype(float) @ ok
    with np.errstate(invalid="ignore", divide="ignore"):
        C = np.where(cnt > 2, (Z.T @ Z) / cnt, 0.0)
    d = np.diag(C).copy()
    off = C - np.diag(d)
    shrink = 1.0
    while shrink > 1e-3 and np.linalg.eigvalsh(np.diag(d) + shrink * off).min() <= 1e-6 * d.max():
        shrink *= 0.8
    return np.diag(d) + (shrink if shrink > 1e-3 else 0.0) * off


def _independence_loglik(X):
    """Log-likelihood of the baseline model (each variable its own mean and variance, no
    covariances), as lavaan's baseline for CFI: by FIML it is each variable's own ML fit."""
    ll = 0.0
    for j in range(X.shape[1]):
        v = X[~np.isnan(X[:, j]), j]
        if len(v):
            ll += -0.5 * len(v) * (_LOG2PI + np.log(v.var()) + 1.0)
    return ll


@dataclass
class _Fit:
    theta: np.ndarray
    cov: np.ndarray  # covariance matrix of theta (inverse observed information)
    loglik: float
    converged: bool
    messages: list
    h1: tuple  # (mean, cov, loglik, converged)
    n: int
    p: int
    X: np.ndarray


def _casewise_scores(ram: _Ram, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Each row's gradient of its FIML log-likelihood in the parameters (rows x K)."""
    B, Sf, mu = ram.implied(theta[None])
    p = ram.p
    Sig, m = Sf[0, :p, :p], mu[0, :p]
    JS, Jm = ram.jacobian(theta)
    JS = JS.reshape(p, p, ram.K)
    seen = ~np.isnan(X)
    keys, inv = np.unique(seen, axis=0, return_inverse=True)
    out = np.zeros((len(X), ram.K))
    for g, key in enumerate(keys):
        rows = np.flatnonzero(inv.ravel() == g)
        o = np.flatnonzero(key)
        if not len(o):
            continue
        Q = np.linalg.inv(Sig[np.ix_(o, o)])
        QR = (X[np.ix_(rows, o)] - m[o]) @ Q
        Jo = JS[np.ix_(o, o)]
        const = -0.5 * np.einsum("ab,abk->k", Q, Jo)
        out[rows] = const + 0.5 * np.einsum("na,nb,abk->nk", QR, QR, Jo, optimize=True) + QR @ Jm[o]
    return out


def _fit_ram(ram: _Ram, X: np.ndarray, start: np.ndarray, scale: np.ndarray, robust: bool = False) -> _Fit:
    """Maximise the FIML log-likelihood of ``ram`` for the data ``X`` (rows = patients, columns =
    the observed variables of ``ram``, NaN = missing) from ``start``.

    ``scale`` (one positive number per RAM variable) rescales the problem for the optimiser:
    the fit runs on X / scale, and the parameters and their covariance are mapped back.
    SEs come from the observed information: the Hessian of the log-likelihood, by central
    differences of its analytic gradient."""
    s_obs = scale[: ram.p]
    pats = _patterns(X / s_obs)
    N = pats.N
    # parameter factors: theta_scaled = D * theta
    first = ram.table[ram.table["mat"] != "F"].drop_duplicates("k").set_index("k").sort_index()
    i, j, mat = first["i"].to_numpy(int), first["j"].to_numpy(int), first["mat"].to_numpy()
    D = np.where(mat == "A", scale[j] / scale[i], np.where(mat == "S", 1.0 / (scale[i] * scale[j]), 1.0 / scale[i]))
    messages = []

    def f(th):
        return _objective(ram, pats, th)

    def hess(th):
        return ram.hessian(th, pats) / N

    # the unrestricted (H1) moments by EM; the model fitted to them as if they came from complete
    # data gives start values close to the FIML optimum at the cost of one pattern
    h1 = _saturated(X / s_obs, pats)
    th = start * D
    if h1[3]:
        one = _Patterns(ram.p, N, [(np.arange(ram.p)[None], np.array([float(N)]), h1[0][None], h1[1][None])])
        f1 = lambda t: _objective(ram, one, t)
        t1, H1, _ = _newton(f1, lambda t: ram.hessian(t, one) / N, th, gtol=1e-6,
                            scoring=lambda t: ram.hessian(t, one, expected=True) / N)
        if H1 is not None and np.isfinite(f(t1)[0]):
            th = t1
    th, H, iters = _newton(f, hess, th, scoring=lambda t: ram.hessian(t, pats, expected=True) / N)
    if H is None:  # the start was not admissible: a second try by quasi-Newton from it
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = optimize.minimize(f, start * D, jac=True, method="BFGS", options={"gtol": 1e-6, "maxiter": 5000})
        th, H, iters = _newton(f, hess, res.x)
    if H is None:
        H = np.full((ram.K, ram.K), np.nan)
    val, gr = f(th)
    gmax = float(np.max(np.abs(gr))) if np.isfinite(val) else np.inf
    converged = bool(np.isfinite(val) and gmax < 1e-6)
    if not converged:
        messages.append(f"the optimiser stopped with a gradient of {gmax:.2g} (per patient), not at a clear optimum; when late "
                        "sessions have few patients, max_session= leaves them out (lavaan fails on such data too)")
    info = H * N * np.outer(D, D)  # observed information in the original scale
    try:
        dsc = 1.0 / np.sqrt(np.abs(np.diag(info)) + 1e-300)
        np.linalg.cholesky(info * np.outer(dsc, dsc))
        cov = np.linalg.inv(info)
        if robust:  # Huber-White sandwich: A^-1 B A^-1, B from the rows' scores (lavaan's robust.huber.white)
            Xs = X / s_obs
            sc = _casewise_scores(ram, th, Xs[~np.all(np.isnan(Xs), axis=1)]) * D[None, :]
            cov = cov @ (sc.T @ sc) @ cov
    except np.linalg.LinAlgError:
        cov = np.full((ram.K, ram.K), np.nan)
        messages.append("the information matrix is not positive definite: some parameters are not identified or the "
                        "fit is not at a maximum; no standard errors")
        converged = False
    ll_const = -float(np.sum(~np.isnan(X) * np.log(s_obs)[None, :]))
    h1 = (h1[0] * s_obs, h1[1] * np.outer(s_obs, s_obs), h1[2] + ll_const, h1[3])
    return _Fit(th / D, cov, -val * N + ll_const, converged, messages, h1, N, ram.p, X)


def _objective(ram, pats, th):
    """Minus the FIML log-likelihood per patient, and its gradient."""
    ll, gr = ram.loglik(th[None], pats)
    if not np.isfinite(ll[0]):
        return np.inf, np.zeros(ram.K)
    return -ll[0] / pats.N, -gr[0] / pats.N


def _newton(f, hess, th, gtol=1e-10, max_iter=200, scoring=None):
    """Newton-Raphson with a backtracking line search; where the Hessian is not positive definite
    its eigenvalues are lifted (a modified Newton step). With ``scoring`` (a function giving the
    expected information), Fisher scoring steps come first, until a full step changes the
    objective by less than 1e-4 or the gradient is below 1e-5. Returns (theta, Hessian, iterations); the Hessian is None when
    f is not finite at the start."""
    val, g = f(th)
    if not np.isfinite(val):
        return th, None, 0
    far = scoring is not None
    H = scoring(th) if far else hess(th)
    for it in range(max_iter):
        if far and np.max(np.abs(g)) < 1e-5:  # close: Newton steps on the observed information from here
            far = False
            H = hess(th)
        if np.max(np.abs(g)) < gtol and not far:
            return th, H, it
        w, V = np.linalg.eigh(H)
        floor = 1e-8 * max(1.0, np.abs(w).max())
        step = V @ ((V.T @ g) / np.maximum(np.abs(w), floor))
        t, slope = 1.0, float(g @ step)
        while t > 1e-10:
            new = th - t * step
            v2, g2 = f(new)
            if np.isfinite(v2) and v2 <= val - 1e-4 * t * slope:
                break
            t /= 2
        else:
            if not far:
                return th, H, it
            far = False
            H = hess(th)
            continue
        if far and t == 1.0 and val - v2 < 1e-4:
            far = False
        th, val, g = new, v2, g2
        H = scoring(th) if far else hess(th)
    return th, (hess(th) if far else H), max_iter


# ========================================================================================
# Data: long session table -> one row per patient, one column per variable and session
# ========================================================================================
@dataclass
class _Panel:
    patients: pd.Index
    waves: np.ndarray  # session numbers 1..T
    x: np.ndarray  # patients x T
    y: np.ndarray
    tv: dict  # time-varying covariate -> patients x T
    ti: dict  # time-invariant covariate -> patients
    dropped: dict  # reason -> rows
    n_rows: int  # rows kept
    rows: pd.DataFrame  # kept rows: patient position, session, which scores they hold


def _as_number(data, col):
    v = pd.to_numeric(data[col], errors="coerce")
    bad = data[col].notna() & v.isna()
    if bad.any():
        raise ColumnError(f"column {col!r} holds values that are not numbers at rows {_fmt_labels(data.index[bad].tolist())}; "
                                 "recode them or set them missing")
    v = v.astype(float)
    inf = np.isinf(v)
    if inf.any():
        raise ColumnError(f"column {col!r} holds infinite values at rows {_fmt_labels(data.index[inf].tolist())}")
    return v


def _panel(data, *, x, y, patient, session, covariates, max_session, fn, min_waves, lag) -> _Panel:
    if not isinstance(data, pd.DataFrame):
        raise ArgumentError(f"{fn}() takes a pandas DataFrame with one row per session, got {type(data).__name__}")
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    roles = {"x": x, "y": y, "patient": patient, "session": session, **{f"covariates[{i}]": c for i, c in enumerate(covariates)}}
    unknown = [f"{r}={c!r}" for r, c in roles.items() if c not in data.columns]
    if unknown:
        raise ColumnError(f"{fn}(): {', '.join(unknown)} not in the data; columns: {_fmt_labels(list(data.columns), limit=25)}")
    used = list(roles.values())
    twice = sorted({c for c in used if list(data.columns).count(c) > 1})
    if twice:
        raise ColumnError(f"{fn}(): the data have more than one column named {_fmt_labels(twice)}; rename them first")
    if len(set(used)) < len(used):
        same = sorted({f"{r}={c!r}" for r, c in roles.items() if used.count(c) > 1})
        raise ModelSpecError(f"{fn}(): the same column plays two roles ({', '.join(same)}); x, y, patient, session and each covariate must be different columns")
    if not isinstance(lag, (int, np.integer)) or isinstance(lag, bool) or lag < 1:
        raise ModelSpecError(f"{fn}(): lag must be a positive whole number, got {lag!r}")
    if max_session is not None and (not isinstance(max_session, (int, np.integer)) or isinstance(max_session, bool) or max_session < 1):
        raise ModelSpecError(f"{fn}(): max_session must be a positive whole number or None, got {max_session!r}")
    sess = check_session_keys(data, [patient], session, what="score")
    xs, ys = _as_number(data, x), _as_number(data, y)
    cv = {c: _as_number(data, c) for c in covariates}
    reasons = {}
    keep = pd.Series(True, index=data.index)
    if max_session is not None:
        late = sess > max_session
        if late.any():
            reasons[f"session after max_session={max_session}"] = int(late.sum())
        keep &= ~late
    none = xs.isna() & ys.isna()
    for c in covariates:
        none &= cv[c].isna()
    none &= keep
    if none.any():
        reasons[f"no {x}, {y}" + (" or covariate" if covariates else "") + " score"] = int(none.sum())
    keep &= ~none
    if not keep.any():
        raise ModelSpecError(f"{fn}(): no session has a score of {x!r} or {y!r}")
    T = int(sess[keep].max())
    if T < min_waves:
        raise ModelSpecError(
            f"{fn}() needs at least {min_waves} sessions per patient series (sessions 1..{min_waves}{f' with lag={lag}' if lag > 1 else ''}); "
            f"the data have sessions up to {T}. A panel model with patient effects cannot be fitted to fewer waves."
        )
    pats = pd.Index(pd.unique(data.loc[keep, patient]))
    pi = pats.get_indexer(data.loc[keep, patient])
    si = sess[keep].to_numpy() - 1

    def grid(v):
        out = np.full((len(pats), T), np.nan)
        out[pi, si] = v[keep].to_numpy()
        return out

    tv, ti = {}, {}
    for c in covariates:
        g = grid(cv[c])
        spread = np.nanmax(g, axis=1) - np.nanmin(g, axis=1) if np.isfinite(g).any() else np.zeros(len(pats))
        with np.errstate(invalid="ignore"):
            constant = np.all(np.nan_to_num(spread, nan=0.0) == 0)
        if constant:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ti[c] = np.nanmax(g, axis=1)
        else:
            tv[c] = g
    rows = pd.DataFrame({"p": pi, "s": si + 1, "x": xs[keep].notna().to_numpy(), "y": ys[keep].notna().to_numpy(),
                         "tv": np.column_stack([cv[c][keep].notna().to_numpy() for c in tv]).any(axis=1) if tv else False})
    return _Panel(pats, np.arange(1, T + 1), grid(xs), grid(ys), tv, ti, reasons, int(keep.sum()), rows)


# ========================================================================================
# Model builders
# ========================================================================================
def _exog_block(ram, exog, latents, no_latent_cov=()):
    """Free means, variances and covariances of the exogenous observed variables; latent
    variances and covariances with each other and with the exogenous variables (except
    ``no_latent_cov``)."""
    for a_i, a in enumerate(exog):
        ram.mean(a)
        for b in exog[: a_i + 1]:
            ram.cov(a, b)
    for l_i, lat in enumerate(latents):
        for l2 in latents[: l_i + 1]:
            ram.cov(lat, l2)
        for e in exog:
            if e not in no_latent_cov:
                ram.cov(lat, e)


def _dpm_model(P: _Panel, x, y, lag, reverse, error_inv):
    T, L = len(P.waves), lag
    tvn, tin = list(P.tv), list(P.ti)
    last_x = T if reverse else T - L
    yv = [f"{y}_{t}" for t in range(1, T + 1)]
    xv = [f"{x}_{t}" for t in range(1, last_x + 1)]
    cvv = {c: [f"{c}_{t}" for t in range(1, T - L + 1)] for c in tvn}
    observed = yv + xv + [v for c in tvn for v in cvv[c]] + tin
    latents = [f"alpha_{y}", f"alpha_{x}"] if reverse else ["alpha"]
    ram = _Ram(observed, latents)
    cols = [P.y[:, t] for t in range(T)] + [P.x[:, t] for t in range(last_x)]
    cols += [P.tv[c][:, t] for c in tvn for t in range(T - L)] + [P.ti[c] for c in tin]
    X = np.column_stack(cols)
    exog = yv[:L] + (xv[:L] if reverse else xv) + [v for c in tvn for v in cvv[c]] + tin
    _exog_block(ram, exog, latents, no_latent_cov=tin)
    eqs = [(y, yv, latents[0], {"x": (x, xv), "y": (y, yv)})]
    if reverse:
        eqs.append((x, xv, latents[1], {"y": (y, yv), "x": (x, xv)}))
    for dv, dvv, lat, _ in eqs:
        for t in range(L + 1, T + 1):
            v = dvv[t - 1]
            ram.mean(v)
            if dv == y:
                ram.path(v, xv[t - L - 1], label="x->y")
                ram.path(v, yv[t - L - 1], label="y->y")
            else:
                ram.path(v, yv[t - L - 1], label="y->x")
                ram.path(v, xv[t - L - 1], label="x->x")
            for c in tvn:
                ram.path(v, cvv[c][t - L - 1], label=f"{c}->{'y' if dv == y else 'x'}")
            for c in tin:
                ram.path(v, c, label=f"{c}->{'y' if dv == y else 'x'}")
            ram.path(v, lat, fixed=1.0)
            ram.cov(v, v, label=(f"error variance {'y' if dv == y else 'x'}" if error_inv else None))
    if reverse:
        for t in range(L + 1, T + 1):
            ram.cov(yv[t - 1], xv[t - 1])
    else:
        # x is predetermined: the error of y at session t may correlate with x at later sessions
        for t in range(L + 1, T + 1):
            for s in range(t + 1, last_x + 1):
                ram.cov(yv[t - 1], xv[s - 1])
    ram.compile()
    # scales and start values
    def sd(a):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(np.sqrt(np.nanmean(np.nanvar(a, axis=0)))) if np.isfinite(a).any() else 1.0

    fam = {y: sd(P.y), x: sd(P.x), **{c: sd(P.tv[c]) for c in tvn}, **{c: sd(P.ti[c][:, None]) for c in tin}}
    fam = {k: (v if np.isfinite(v) and v > 0 else 1.0) for k, v in fam.items()}
    scale = np.array([fam[y]] * T + [fam[x]] * last_x + [fam[c] for c in tvn for _ in range(T - L)] + [fam[c] for c in tin]
                     + ([fam[y], fam[x]] if reverse else [fam[y]]))
    return ram, X, scale


def _riclpm_model(P: _Panel, x, y, constrain):
    T = len(P.waves)
    xv = [f"{x}_{t}" for t in range(1, T + 1)]
    yv = [f"{y}_{t}" for t in range(1, T + 1)]
    wx = [f"w_{x}_{t}" for t in range(1, T + 1)]
    wy = [f"w_{y}_{t}" for t in range(1, T + 1)]
    rx, ry = f"RI_{x}", f"RI_{y}"
    ram = _Ram(xv + yv, [rx, ry] + wx + wy)
    X = np.column_stack([P.x, P.y])
    for t in range(T):
        ram.path(xv[t], rx, fixed=1.0)
        ram.path(yv[t], ry, fixed=1.0)
        ram.path(xv[t], wx[t], fixed=1.0)
        ram.path(yv[t], wy[t], fixed=1.0)
    for t in range(T):
        ram.mean(xv[t])
        ram.mean(yv[t])
    ram.cov(rx, rx)
    ram.cov(ry, ry)
    ram.cov(rx, ry)
    for t in range(1, T):
        s = "" if constrain else f"[{t + 1}]"
        ram.path(wx[t], wx[t - 1], label="x->x" + s)
        ram.path(wx[t], wy[t - 1], label="y->x" + s)
        ram.path(wy[t], wx[t - 1], label="x->y" + s)
        ram.path(wy[t], wy[t - 1], label="y->y" + s)
    for t in range(T):
        ram.cov(wx[t], wx[t])
        ram.cov(wy[t], wy[t])
        ram.cov(wx[t], wy[t])
    ram.compile()
    fx = float(np.sqrt(np.nanmean(np.nanvar(P.x, axis=0))))
    fy = float(np.sqrt(np.nanmean(np.nanvar(P.y, axis=0))))
    fx, fy = (fx if np.isfinite(fx) and fx > 0 else 1.0), (fy if np.isfinite(fy) and fy > 0 else 1.0)
    scale = np.array([fx] * T + [fy] * T + [fx, fy] + [fx] * T + [fy] * T)
    return ram, X, scale


def _start(ram: _Ram, X: np.ndarray, share_between=0.4):
    """Start values: exogenous observed moments from the data (pairwise, shrunk towards zero
    correlation until positive definite), regressions at 0, and the variance of each endogenous
    variable split between the latent variables it loads on (a patient effect that loads on
    several sessions gets ``share_between``) and its residual."""
    mu = np.nanmean(X, axis=0)
    var = np.nanvar(X, axis=0)
    var = np.where(np.isfinite(var) & (var > 0), var, 1.0)
    mu = np.where(np.isfinite(mu), mu, 0.0)
    Xc = X - mu
    t = ram.table
    free = t[t["mat"] != "F"]
    endo = set(free.loc[free["mat"] == "A", "i"]) | {i for i, _, _ in ram.fixed}
    indicators = {}
    for i, j, _ in ram.fixed:
        indicators.setdefault(j, []).append(i)
    exo = [i for i in range(ram.p) if i not in endo]
    C = np.diag(var[exo]).astype(float)
    for a in range(len(exo)):
        for b in range(a):
            ok = ~np.isnan(Xc[:, exo[a]]) & ~np.isnan(Xc[:, exo[b]])
            C[a, b] = C[b, a] = float(np.mean(Xc[ok, exo[a]] * Xc[ok, exo[b]])) if ok.sum() > 2 else 0.0
    shrink = 1.0
    while len(exo) and np.linalg.eigvalsh(np.diag(var[exo]) + shrink * (C - np.diag(np.diag(C)))).min() <= 1e-8 * var[exo].max():
        shrink *= 0.8
    pos = {v: a for a, v in enumerate(exo)}
    th = np.zeros(ram.K)
    done = set()
    for r in free.itertuples():
        if r.k in done:
            continue
        done.add(r.k)
        i, j = r.i, r.j
        if r.mat == "M":
            th[r.k] = mu[i] if i < ram.p else 0.0
        elif r.mat == "S" and i == j:
            if i >= ram.p:  # latent
                ind = indicators.get(i, [])
                v = float(np.mean(var[[q for q in ind if q < ram.p] or [0]]))
                th[r.k] = v * (share_between if len(ind) > 1 else 1 - share_between)
            else:
                th[r.k] = var[i] * (1 - share_between if i in endo else 1.0)
        elif r.mat == "S" and i in pos and j in pos:
            th[r.k] = shrink * C[pos[i], pos[j]]
    return th


# ========================================================================================
# Fitting, accounting and results
# ========================================================================================
def _check_coverage(ram, X, fn, max_session):
    counts = (~np.isnan(X)).sum(axis=0)
    thin = [ram.names[j] for j in range(ram.p) if counts[j] < 3]
    if thin:
        hint = "pass max_session= to leave out the late sessions that few patients reach" if max_session is None else "lower max_session"
        raise ModelSpecError(
            f"{fn}(): fewer than 3 patients have a score for {_fmt_labels(thin)} (variable_session); the model cannot "
            f"estimate their (co)variances: {hint}"
        )


def _check_size(build, P: _Panel, fn, min_waves):
    """The dynamic panel model leaves the covariance matrix of its exogenous variables (x at every
    session, the first outcomes, the covariates) free: each of them must be observed in more
    patients than there are such variables, or the matrix (and the fit) breaks down. Refuse, and
    name the max_session that would fit."""

    def ok(q):
        ram, X, _ = build(q)
        t = ram.table
        endo = set(t.loc[t["mat"] == "A", "i"]) | {i for i, _, _ in ram.fixed}
        exo = [j for j in range(ram.p) if j not in endo]
        counts = (~np.isnan(X[:, exo])).sum(axis=0)
        return bool(np.all(counts > len(exo))), len(exo), [ram.names[j] for j, c in zip(exo, counts) if c <= len(exo)]

    good, q, thin = ok(P)
    if good:
        return
    fit_T = next((T for T in range(len(P.waves) - 1, min_waves - 1, -1) if ok(_truncate(P, T))[0]), None)
    hint = f"pass max_session={fit_T} (or fewer)" if fit_T else "use data from more patients"
    raise ModelSpecError(
        f"{fn}(): sessions 1-{len(P.waves)} make {q} exogenous variables whose covariances the model leaves free, but "
        f"{_fmt_labels(thin)} are observed in no more than {q} patients, too few to estimate them; {hint}"
    )


def _truncate(P: _Panel, T: int) -> _Panel:
    return _Panel(P.patients, P.waves[:T], P.x[:, :T], P.y[:, :T], {c: v[:, :T] for c, v in P.tv.items()}, P.ti, P.dropped,
                  P.n_rows, P.rows)


def _row_accounting(P: _Panel, last_x: int, last_cov: int, reasons: dict, x, y):
    r = P.rows
    used = r["y"] | (r["x"] & (r["s"] <= last_x)) | (r["tv"] & (r["s"] <= last_cov))
    out = dict(P.dropped)
    n_unused = int((~used).sum())
    if n_unused:
        k = len(P.waves) - last_x
        out[f"{x} without {y} at the last {'session' if k == 1 else f'{k} sessions'} (not in the model)"] = n_unused
    out.update(reasons)
    return pd.Series(out, dtype="int64"), int(used.sum())


def _fit_statistics(fit: _Fit, K: int) -> pd.Series:
    p, N = fit.p, fit.n
    moments = p * (p + 3) / 2
    df = moments - K
    mu1, S1, ll1, ok1 = fit.h1
    ll0 = _independence_loglik(fit.X)
    out = {"chi2": np.nan, "df": df, "p": np.nan, "cfi": np.nan, "tli": np.nan, "rmsea": np.nan, "srmr": np.nan}
    if ok1 and np.isfinite(ll1):
        chi2 = max(2 * (ll1 - fit.loglik), 0.0)
        chi2_b = 2 * (ll1 - ll0)
        df_b = moments - 2 * p
        d, d_b = max(chi2 - df, 0.0), max(chi2_b - df_b, 0.0)
        den = max(d, d_b)
        out["chi2"] = chi2
        out["p"] = float(stats.chi2.sf(chi2, df)) if df > 0 else np.nan
        out["cfi"] = 1.0 - d / den if den > 0 else 1.0
        out["tli"] = ((chi2_b / df_b) - (chi2 / df)) / ((chi2_b / df_b) - 1.0) if df > 0 and df_b > 0 else np.nan
        out["rmsea"] = float(np.sqrt(d / (df * N))) if df > 0 else np.nan
        out["srmr"] = np.nan
    out.update({"loglik": fit.loglik, "aic": -2 * fit.loglik + 2 * K, "bic": -2 * fit.loglik + np.log(N) * K, "npar": K, "n": N})
    return pd.Series(out, dtype=float)


def _srmr(ram: _Ram, fit: _Fit) -> float:
    """Bentler's standardized root mean square residual of covariances and means, against the
    unrestricted (H1) moments, as lavaan's ``srmr``."""
    mu1, S1, ll1, ok1 = fit.h1
    if not ok1:
        return np.nan
    _, Sf, mu = ram.implied(fit.theta[None])
    p = ram.p
    sd = np.sqrt(np.diag(S1))
    rc = (S1 - Sf[0, :p, :p]) / np.outer(sd, sd)
    rm = (mu1 - mu[0, :p]) / sd
    res = np.concatenate([rm, rc[np.tril_indices(p)]])
    return float(np.sqrt(np.mean(res**2)))


def _param_table(ram: _Ram, fit: _Fit, names: dict) -> pd.DataFrame:
    t = ram.table.copy()
    se_all = np.sqrt(np.diag(fit.cov))
    free = t["k"] >= 0
    est = np.where(free, fit.theta[t["k"].clip(lower=0)], t.get("fixed", pd.Series(np.nan, index=t.index)).fillna(1.0))
    se = np.where(free, se_all[t["k"].clip(lower=0)], np.nan)
    lab = [ram.labels[k] if k >= 0 and not ram.labels[k].startswith(".p") else "" for k in t["k"]]
    out = pd.DataFrame({"lhs": t["lhs"].map(lambda v: names.get(v, v)), "op": t["op"], "rhs": t["rhs"].map(lambda v: names.get(v, v)),
                        "label": lab, "estimate": est, "se": se})
    # regressions are written "outcome ~ predictor" and fixed loadings "latent =~ indicator"
    out["z"] = out["estimate"] / out["se"]
    out["p"] = 2 * stats.norm.sf(np.abs(out["z"]))
    out["ci_low"] = out["estimate"] - _Z975 * out["se"]
    out["ci_high"] = out["estimate"] + _Z975 * out["se"]
    return out


def _effect_row(ram: _Ram, fit: _Fit, label: str, path: str, text: str) -> dict:
    k = ram.labels.index(label)
    est, se = float(fit.theta[k]), float(np.sqrt(fit.cov[k, k]))
    z = est / se if se > 0 else np.nan
    return {"path": path, "estimate": est, "se": se, "z": z, "p": float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else np.nan,
            "ci_low": est - _Z975 * se, "ci_high": est + _Z975 * se, "label": text}


def _improper(ram: _Ram, fit: _Fit, names: dict) -> list:
    """Messages for variances estimated below zero and latent covariance matrices that are not
    positive definite (improper solutions)."""
    out = []
    t = ram.table
    var = t[(t["mat"] == "S") & (t["i"] == t["j"])]
    neg = [names.get(v, v) for v, k in zip(var["lhs"], var["k"]) if fit.theta[k] < 0]
    if neg:
        out.append(f"the variance of {_fmt_labels(neg)} is estimated below zero (an improper solution): the model does not fit these data")
    lat = [j for j in range(ram.p, ram.m) if ram.names[j].startswith("alpha")]
    if len(lat) > 1 and not neg:
        S = ram.implied(fit.theta[None])[1][0][np.ix_(lat, lat)]
        if np.linalg.eigvalsh(S).min() <= 0:
            sd = np.sqrt(np.abs(np.diag(S)))
            r = S[0, 1] / (sd[0] * sd[1])
            out.append(f"the patient effects {ram.names[lat[0]]} and {ram.names[lat[1]]} correlate r = {r:.2f}, beyond +/-1 "
                       "(an improper solution): the joint model does not fit these data; fit each direction on its own "
                       "(reverse=False, with x and y swapped)")
    return out


def _finish(ram, fit, fn):
    msgs = list(fit.messages)
    for m in msgs:
        warnings.warn(f"{fn}(): {m}", ConvergenceWarning, stacklevel=user_stacklevel())
    return msgs


@dataclass(repr=False)
class _PanelResult(Result):
    """What the dynamic panel model and the RI-CLPM show alike: the effects table, the fit
    indices, the rows used and left out, the path diagram."""

    effects: pd.DataFrame
    parameters: pd.DataFrame
    fit: pd.Series
    x: str
    y: str
    n_patients: int
    n_rows: int
    dropped: pd.Series
    sessions: list
    converged: bool
    messages: list = field(default_factory=list)
    se_type: str = "observed"

    _diagram = ""  # the path diagram's kind: "dpm" or "riclpm"

    def _se_words(self) -> str:
        return ("standard errors are robust (Huber-White sandwich)" if self.se_type == "robust"
                else "standard errors come from the observed information matrix")

    @property
    def n_dropped(self) -> int:
        """Rows of the data left out of the model (see ``dropped`` for the reasons)."""
        return int(self.dropped.sum())

    def _fit_text(self, digits=3):
        f = self.fit
        if not np.isfinite(f["chi2"]):
            return f"logLik = {f['loglik']:.{digits}f} (chi-square test not available: the unrestricted model could not be estimated)"
        return (f"chi2({f['df']:.0f}) = {f['chi2']:.{digits}f}, p {apa_p(f['p'], eq=True)}, CFI = {f['cfi']:.{digits}f}, "
                f"RMSEA = {f['rmsea']:.{digits}f}, SRMR = {f['srmr']:.{digits}f}, logLik = {f['loglik']:.{digits}f}")

    def _model_words(self) -> str:
        return ""

    def _left_words(self) -> str:
        if not self.n_dropped:
            return ""
        return "; " + "; ".join(f"{v} left out: {k}" for k, v in self.dropped.items())

    def _headline(self) -> str:
        return (f"{self._model_words()}; n = {self.n_patients} patients, {self.n_rows} session rows, sessions "
                f"{self.sessions[0]}-{self.sessions[-1]} (FIML)")

    def to_frame(self) -> pd.DataFrame:
        """The effects table, one row per path (and session when not constrained) (a copy)."""
        return self.effects.copy()

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        """APA-style table of the effects (b, SE, z, p, 95% CI)."""
        d = 2 if digits is None else int(digits)
        e = self.effects
        out = {"Path": e["label"]}
        if "session" in e:
            out["Session"] = [f"{v:.0f}" for v in e["session"]]
        out.update({
            "b": [fmt_num(v, d) for v in e["estimate"]], "SE": [fmt_num(v, d) for v in e["se"]], "z": [fmt_num(v, d) for v in e["z"]],
            "p": [apa_p(v) for v in e["p"]], "95% CI": [fmt_ci(a, b, d) for a, b in zip(e["ci_low"], e["ci_high"])],
        })
        return pd.DataFrame(out)

    def _tables(self) -> list:
        f = self.fit
        fit = pd.DataFrame([{"chi2": f["chi2"], "df": f["df"], "p": f["p"], "CFI": f["cfi"], "TLI": f["tli"], "RMSEA": f["rmsea"],
                             "SRMR": f["srmr"], "logLik": f["loglik"], "AIC": f["aic"], "BIC": f["bic"]}])
        return [("Model fit", format_frame(fit, kinds={"CFI": "num", "TLI": "num", "RMSEA": "num", "SRMR": "num"}, digits=3, na="NA"))]

    def accounting(self) -> pd.DataFrame:
        """Session rows in the model and rows left out, by reason."""
        return accounting_frame("rows", self.n_rows, list(self.dropped.items()))

    def plot(self, *, ax=None):
        """Path diagram of the lagged effects with their estimates (significant at .05 in bold);
        for an RI-CLPM with ``constrain=False`` the mean over sessions is shown."""
        return _path_diagram(self, ax, kind=self._diagram)


@dataclass(repr=False)
class DynamicPanelResult(_PanelResult):
    """The ML-SEM dynamic panel model (see :func:`alliance_stats.dynamic_panel`).

    Attributes
    ----------
    effects : DataFrame
        One row per path: ``path`` (``x->y``, ``y->y`` and, with ``reverse=True``, ``y->x``,
        ``x->x``; then one row per covariate, e.g. ``age->y``), ``estimate``, ``se``, ``z``,
        ``p``, ``ci_low``, ``ci_high`` (Wald, 95%) and ``label`` (the path in words).
    parameters : DataFrame
        Every parameter of the structural equation model, lavaan-style (``lhs, op, rhs, label,
        estimate, se, z, p, ci_low, ci_high``); variables are named ``{column}_{session}``.
    fit : Series
        ``chi2, df, p, cfi, tli, rmsea, srmr, loglik, aic, bic, npar, n``.
    covariates : dict
        Each covariate and how it entered: ``"time-varying"`` (lagged, strictly exogenous) or
        ``"time-invariant"``.
    """

    lag: int = 1
    reverse: bool = False
    covariates: dict = field(default_factory=dict)
    error_inv: bool = False

    title = "Dynamic panel model (ML-SEM; Allison, Williams & Moral-Benito 2017)"
    _diagram = "dpm"

    @property
    def estimator(self) -> str:
        return "ML-SEM dynamic panel model (FIML)"

    def _model_words(self) -> str:
        return (f"{self.y} at session t on {self.x} and {self.y} at t-{self.lag}"
                + (f", and {self.x} at t on both at t-{self.lag}" if self.reverse else f"; {self.x} predetermined"))

    def methods(self) -> str:
        """A methods paragraph describing the model and its fit, ready to edit into a paper."""
        f = self.fit
        cov = ""
        if self.covariates:
            cov = " Covariates: " + ", ".join(f"{c} ({r})" for c, r in self.covariates.items()) + "."
        both = (f" Both directions were estimated jointly: {self.x} at session t was regressed on {self.y} and {self.x} at "
                f"session t-{self.lag} with a patient effect of its own, the two patient effects correlated."
                if self.reverse else
                f" {self.x} was treated as predetermined: it could correlate with the errors of {self.y} at earlier sessions, so "
                f"that {self.y} may feed back into later {self.x}.")
        e = self.effects.set_index("path")
        xy = e.loc["x->y"]
        fit = (f" The model fitted with chi2({f['df']:.0f}) = {f['chi2']:.2f}, p {apa_p(f['p'], eq=True)}, CFI = {f['cfi']:.3f}, "
               f"RMSEA = {f['rmsea']:.3f}, SRMR = {f['srmr']:.3f}." if np.isfinite(f["chi2"]) else "")
        return (
            f"The session-to-session relation between {self.x} and {self.y} was estimated with the maximum-likelihood "
            f"structural equation (ML-SEM) dynamic panel model of Allison, Williams and Moral-Benito (2017), which, unlike a "
            f"random-intercept multilevel model with a lagged outcome, is free of dynamic-panel (Nickell) bias (Falkenström et "
            f"al., 2017). {self.y} at session t was regressed on {self.x} and {self.y} at session t-{self.lag}, with a latent "
            f"patient effect (loadings fixed at 1) allowed to correlate with all exogenous variables (fixed effects), "
            f"coefficients equal across sessions, intercepts and error variances "
            f"{'equal' if self.error_inv else 'free'} across sessions.{both}{cov} The model was fitted to {self.n_patients} "
            f"patients (n = {self.n_rows} session rows{self._left_words()}) over sessions {self.sessions[0]}-{self.sessions[-1]} by "
            f"full-information maximum likelihood, which "
            f"uses every observed session under the assumption that sessions are missing at random; "
            f"{self._se_words()}.{fit} Each point of {self.x} at session t-{self.lag} went with a change of "
            f"{xy['estimate']:.2f} points in {self.y} at session t (95% CI {fmt_ci(xy['ci_low'], xy['ci_high'])}, "
            f"p {apa_p(xy['p'], eq=True)}). Estimates were computed with alliance-stats, whose results equal lavaan's "
            f"(Rosseel, 2012; estimator = \"ML\", missing = \"fiml\")."
        )

@dataclass(repr=False)
class RICLPMResult(_PanelResult):
    """The random-intercept cross-lagged panel model (see :func:`alliance_stats.ri_clpm`).

    Attributes
    ----------
    effects : DataFrame
        ``path`` (``x->y``, ``y->x``, ``x->x``, ``y->y``: effects among the within-patient
        deviations from one session to the next), ``estimate``, ``se``, ``z``, ``p``,
        ``ci_low``, ``ci_high``, ``label``; with ``constrain=False`` one row per path and
        session (``session`` = the later session).
    between : DataFrame
        The random intercepts: their variances, covariance and correlation (``estimate, se,
        z, p, ci_low, ci_high``; the correlation's SE by the delta method).
    parameters, fit
        As for :class:`DynamicPanelResult`.
    """

    between: pd.DataFrame = None
    constrain: bool = True

    title = "Random-intercept cross-lagged panel model (Hamaker, Kuiper & Grasman 2015)"
    _diagram = "riclpm"

    def _model_words(self) -> str:
        return f"{self.x} and {self.y}, within-patient lagged effects {'equal over' if self.constrain else 'free across'} sessions"

    @property
    def estimator(self) -> str:
        return "RI-CLPM (FIML)"

    @property
    def between_r(self) -> float:
        """Correlation of the patients' random intercepts (their stable, trait-like levels)."""
        return float(self.between.set_index("term").loc["correlation", "estimate"])

    def _tables(self) -> list:
        between = self.between.drop(columns=[c for c in ("label",) if c in self.between])
        return [("Between patients (random intercepts)", format_frame(between, na="NA")), *super()._tables()]

    def methods(self) -> str:
        """A methods paragraph describing the model and its fit, ready to edit into a paper."""
        f = self.fit
        e = self.effects
        fit = (f" The model fitted with chi2({f['df']:.0f}) = {f['chi2']:.2f}, p {apa_p(f['p'], eq=True)}, CFI = {f['cfi']:.3f}, "
               f"RMSEA = {f['rmsea']:.3f}, SRMR = {f['srmr']:.3f}." if np.isfinite(f["chi2"]) else "")
        res = ""
        if self.constrain:
            r = e.set_index("path")
            res = (f" Within patients, each point of {self.x} above the patient's usual level went with a change of "
                   f"{r.loc['x->y', 'estimate']:.2f} in {self.y} at the next session (95% CI {fmt_ci(r.loc['x->y', 'ci_low'], r.loc['x->y', 'ci_high'])}), and "
                   f"each point of {self.y} with a change of {r.loc['y->x', 'estimate']:.2f} in {self.x} "
                   f"(95% CI {fmt_ci(r.loc['y->x', 'ci_low'], r.loc['y->x', 'ci_high'])}).")
        return (
            f"The reciprocal session-to-session relation between {self.x} and {self.y} was estimated with the random-"
            f"intercept cross-lagged panel model (RI-CLPM; Hamaker, Kuiper & Grasman, 2015), which separates stable "
            f"between-patient differences (random intercepts with loadings fixed at 1) from within-patient fluctuations, "
            f"among which the autoregressive and cross-lagged effects were estimated"
            f"{', constrained to be equal across sessions' if self.constrain else ', free across sessions'}. "
            f"Means were free at every session, as were the (co)variances of the within-patient residuals. The model was "
            f"fitted to {self.n_patients} patients (n = {self.n_rows} session rows{self._left_words()}) over sessions "
            f"{self.sessions[0]}-{self.sessions[-1]} by full-information "
            f"maximum likelihood (sessions missing at random); {self._se_words()}.{fit}{res} The random intercepts correlated r = {self.between_r:.2f}. Estimates were computed with "
            f"alliance-stats, whose results equal lavaan's (Rosseel, 2012; estimator = \"ML\", missing = \"fiml\")."
        )


def _path_diagram(res, ax, kind):
    from matplotlib import pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from ..plots import ACCENT, INK, MUTED

    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 3.4))
    e = res.effects
    est = e.groupby("path", sort=False).agg(estimate=("estimate", "mean"), p=("p", "max"))
    pos = {("x", 0): (0.12, 0.78), ("y", 0): (0.12, 0.22), ("x", 1): (0.62, 0.78), ("y", 1): (0.62, 0.22)}
    names = {"x": res.x, "y": res.y}
    modeled = {("x", 1): kind == "riclpm" or getattr(res, "reverse", False)}
    pre = "within " if kind == "riclpm" else ""
    for (v, t), (cx, cy) in pos.items():
        grey = not modeled.get((v, t), True)
        ax.add_patch(FancyBboxPatch((cx - 0.11, cy - 0.07), 0.22, 0.14, boxstyle="round,pad=0.01", fc="white",
                                    ec=MUTED if grey else INK, lw=1.2, ls="--" if grey else "-", transform=ax.transAxes))
        ax.text(cx, cy, f"{pre}{names[v]}\nsession {'t-1' if t == 0 else 't'}", ha="center", va="center", fontsize=8,
                color=MUTED if grey else INK, transform=ax.transAxes)

    def arrow(a, b, path, off):
        if path not in est.index:
            return
        (x0, y0), (x1, y1) = pos[a], pos[b]
        r = est.loc[path]
        sig = r["p"] < 0.05
        ax.add_patch(FancyArrowPatch((x0 + 0.11, y0 + off[0]), (x1 - 0.11, y1 + off[1]), transform=ax.transAxes,
                                     arrowstyle="-|>", mutation_scale=12, color=ACCENT if sig else MUTED, lw=1.8 if sig else 1.0))
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2 + off[2]
        ax.text(mx, my, f"{r['estimate']:.2f}", ha="center", va="center", fontsize=9, fontweight="bold" if sig else "normal",
                color=INK, transform=ax.transAxes, bbox=dict(fc="white", ec="none", pad=0.5))

    arrow(("x", 0), ("x", 1), "x->x", (0, 0, 0.05))
    arrow(("y", 0), ("y", 1), "y->y", (0, 0, -0.05))
    arrow(("x", 0), ("y", 1), "x->y", (-0.03, 0.03, 0.12))
    arrow(("y", 0), ("x", 1), "y->x", (0.03, -0.03, -0.12))
    if kind == "dpm":
        ax.add_patch(plt.Circle((0.9, 0.22), 0.075, transform=ax.transAxes, fc="white", ec=INK, lw=1.2))
        ax.text(0.9, 0.22, "patient\neffect", ha="center", va="center", fontsize=7, transform=ax.transAxes)
        ax.add_patch(FancyArrowPatch((0.825, 0.22), (0.73, 0.22), transform=ax.transAxes, arrowstyle="-|>", mutation_scale=10, color=INK))
        ax.text(0.78, 0.27, "1", fontsize=8, ha="center", transform=ax.transAxes)
        if getattr(res, "reverse", False):
            ax.add_patch(plt.Circle((0.9, 0.78), 0.075, transform=ax.transAxes, fc="white", ec=INK, lw=1.2))
            ax.text(0.9, 0.78, "patient\neffect", ha="center", va="center", fontsize=7, transform=ax.transAxes)
            ax.add_patch(FancyArrowPatch((0.825, 0.78), (0.73, 0.78), transform=ax.transAxes, arrowstyle="-|>", mutation_scale=10, color=INK))
        ax.set_title("Dynamic panel model (ML-SEM)", fontsize=10)
    else:
        ax.text(0.9, 0.5, f"random\nintercepts\nr = {res.between_r:.2f}", ha="center", va="center", fontsize=8, transform=ax.transAxes)
        ax.set_title("RI-CLPM: within-patient lagged effects" + ("" if res.constrain else " (mean over sessions)"), fontsize=10)
    ax.set_axis_off()
    return ax


# ========================================================================================
# Public functions
# ========================================================================================
def dynamic_panel(
    data: pd.DataFrame,
    *,
    x: str,
    y: str,
    patient: str = "patient",
    session: str = "session",
    lag: int = 1,
    reverse: bool = False,
    covariates=(),
    error_inv: bool = False,
    max_session: int | None = None,
    se: str = "observed",
) -> DynamicPanelResult:
    """The ML-SEM dynamic panel model of Allison, Williams & Moral-Benito (2017): the lagged effect
    of ``x`` on ``y`` with patient fixed effects, free of dynamic-panel (Nickell) bias.

    For sessions t = lag + 1 ... T (T = the last session in the data, or ``max_session``),

        y_t = mu_t + b_xy * x_{t-lag} + b_yy * y_{t-lag} + covariates + alpha + e_t,

    where ``alpha`` is a latent patient effect (loadings fixed at 1) that may correlate with every
    ``x``, the first ``lag`` values of ``y`` and the time-varying covariates (the *fixed-effects*
    assumption), ``mu_t`` are free intercepts per session and the error variances are free per
    session (equal with ``error_inv=True``). ``x`` is *predetermined*: ``x`` at session s may
    correlate with the errors of ``y`` at sessions before s, so ``y`` can feed back into later
    ``x`` (e.g. symptoms into the next alliance) without biasing b_xy. This is Stata's
    ``xtdpdml`` and R's ``dpm()`` (their defaults), fitted by full-information maximum likelihood
    (FIML) to one row per patient and one column per variable and session.

    With ``reverse=True`` both directions are estimated jointly: ``x`` at session t is also
    regressed on ``y`` and ``x`` at t - lag with a patient effect of its own (the two patient
    effects and the two equations' errors at the same session correlated), giving ``y->x`` and
    ``x->x`` as well. This is more efficient, but it assumes that ``x`` follows that equation
    (e.g. no measurement error of its own dynamics); two one-direction fits (``x`` and ``y``
    swapped, each predetermined) assume less.

    Parameters
    ----------
    data : DataFrame
        One row per session (long format). Missing sessions and missing scores are allowed (FIML).
    x, y : str
        The lagged predictor (e.g. the alliance) and the outcome (e.g. symptoms).
    patient, session : str
        ID columns; ``session`` holds session numbers 1, 2, ... (they index the waves, so a missed
        session is a missing wave).
    lag : int
        Sessions between predictor and outcome (also the lag of the outcome's own effect).
    reverse : bool
        Also estimate the effect of ``y`` on the next ``x`` (see above).
    covariates : str or list of str
        Columns constant within every patient enter as time-invariant predictors of ``y``
        (uncorrelated with ``alpha``, as ``| z`` in dpm); columns that change across sessions
        enter lagged like ``x`` but strictly exogenous (``lag(z)`` in dpm).
    error_inv : bool
        Equal error variances across sessions (dpm's ``error.inv``, xtdpdml's ``errorinv``).
    max_session : int, optional
        Use sessions 1..``max_session`` only (late sessions that few patients reach cannot
        support their own variances); the rows left out are counted in ``dropped``.
    se : {"observed", "robust"}
        Standard errors from the observed information matrix (normal theory, as lavaan's and
        dpm's defaults), or ``"robust"``: the Huber-White sandwich (lavaan's
        ``se = "robust.huber.white"``, the SEs of ``estimator = "MLR"``). Use ``"robust"`` when
        scores are far from normal (item means with a ceiling, sum scores of few items): when
        the outcome feeds back into ``x`` the normal-theory SEs are then too small.

    Returns
    -------
    DynamicPanelResult
        ``.effects`` (rows ``x->y``, ``y->y`` and with ``reverse=True`` ``y->x``, ``x->x``),
        ``.parameters``, ``.fit`` (chi2, df, CFI, TLI, RMSEA, SRMR, logLik, AIC, BIC, n),
        ``.dropped``, ``.summary()``, ``.to_apa()``, ``.methods()``, ``.plot()``.

    Notes
    -----
    Results equal lavaan's ``sem(..., estimator = "ML", missing = "fiml", fixed.x = FALSE,
    information = "observed")`` with the same model (``tests/reference/make_dynamics_reference.R``;
    the wages example of Allison et al. 2017 reproduces dpm's published chi-square). SEs come from
    the observed information (analytic Hessian); the chi-square test compares with the
    unrestricted model estimated by EM, and CFI/TLI with the independence model, as lavaan does.

    Examples
    --------
    >>> import alliance_stats as als
    >>> s = als.simulate_study(n_therapists=10, patients_per_therapist=10, min_sessions=6, max_sessions=6,
    ...                        feedback=-0.05, seed=3)
    >>> d = s.sessions.join(als.score(s.sessions, "WAI-SR", items="wai{}")).join(als.score(s.sessions, "PHQ-9", items="phq{}"))
    >>> res = als.dynamic_panel(d, x="wai_sr_total", y="phq9_total")
    >>> res.effects["path"].tolist()
    ['x->y', 'y->y']
    """
    fn = "dynamic_panel"
    if se not in SE_TYPES:
        raise OptionError("se", se, SE_TYPES)
    if not isinstance(reverse, (bool, np.bool_)):
        raise ModelSpecError(f"{fn}(): reverse must be True or False, got {reverse!r}")
    P = _panel(data, x=x, y=y, patient=patient, session=session, covariates=covariates, max_session=max_session,
               fn=fn, min_waves=lag + 2, lag=lag)
    T = len(P.waves)
    ram, X, scale = _dpm_model(P, x, y, lag, bool(reverse), bool(error_inv))
    _check_coverage(ram, X, fn, max_session)
    _check_size(lambda q: _dpm_model(q, x, y, lag, bool(reverse), bool(error_inv)), P, fn, lag + 2)
    names = {}
    keep = ~np.all(np.isnan(X), axis=1)
    with _one_thread():
        fit = _fit_ram(ram, X[keep], _start(ram, X[keep]), scale, robust=se == "robust")
    dropped, n_rows = _row_accounting(P, T if reverse else T - lag, T - lag, {}, x, y)
    stats_ = _fit_statistics(fit, ram.K)
    stats_["srmr"] = _srmr(ram, fit)
    msgs = _finish(ram, fit, fn)
    imp = _improper(ram, fit, names)
    for m in imp:
        warnings.warn(f"{fn}(): {m}", SingularFitWarning, stacklevel=user_stacklevel())
    rows = [_effect_row(ram, fit, "x->y", "x->y", f"{x}(t-{lag}) -> {y}(t)"), _effect_row(ram, fit, "y->y", "y->y", f"{y}(t-{lag}) -> {y}(t)")]
    if reverse:
        rows += [_effect_row(ram, fit, "y->x", "y->x", f"{y}(t-{lag}) -> {x}(t)"), _effect_row(ram, fit, "x->x", "x->x", f"{x}(t-{lag}) -> {x}(t)")]
    cov_roles = {c: "time-varying" for c in P.tv} | {c: "time-invariant" for c in P.ti}
    for c in covariates if not isinstance(covariates, str) else [covariates]:
        for to in (("y", "x") if reverse else ("y",)):
            lab = f"{c}->{to}"
            when = f"(t-{lag})" if c in P.tv else ""
            rows.append(_effect_row(ram, fit, lab, lab, f"{c}{when} -> {y if to == 'y' else x}(t)"))
    return DynamicPanelResult(
        effects=pd.DataFrame(rows), parameters=_param_table(ram, fit, names), fit=stats_, x=x, y=y,
        n_patients=int(keep.sum()), n_rows=n_rows, dropped=dropped, sessions=list(range(1, T + 1)), converged=fit.converged,
        messages=msgs + imp, lag=lag, reverse=bool(reverse), covariates=cov_roles, error_inv=bool(error_inv), se_type=se,
    )


def ri_clpm(
    data: pd.DataFrame,
    *,
    x: str,
    y: str,
    patient: str = "patient",
    session: str = "session",
    constrain: bool = True,
    max_session: int | None = None,
    se: str = "observed",
) -> RICLPMResult:
    """The random-intercept cross-lagged panel model (RI-CLPM; Hamaker, Kuiper & Grasman 2015).

    Each score is split into a session mean, a patient's random intercept (their stable,
    trait-like level; loadings fixed at 1) and a within-patient deviation::

        x_it = mu_x,t + RI_x,i + wx_it,     y_it = mu_y,t + RI_y,i + wy_it
        wx_it = a_xx wx_i,t-1 + a_xy wy_i,t-1 + u_it
        wy_it = a_yx wx_i,t-1 + a_yy wy_i,t-1 + v_it

    The random intercepts correlate (the between-patient association); the deviations at the
    first session and the residuals u, v at each later session have free variances and a free
    covariance. With ``constrain=True`` the four lagged effects are equal across sessions; with
    ``False`` they are free per session. Fitted by full-information maximum likelihood (FIML) to
    one row per patient and one column per variable and session (sessions 1..T).

    Parameters
    ----------
    data : DataFrame
        One row per session (long format).
    x, y : str
        The two repeated measures (e.g. the alliance and symptoms).
    patient, session : str
        ID columns; session numbers index the waves.
    constrain : bool
        Lagged effects equal over sessions (default) or free.
    max_session : int, optional
        Use sessions 1..``max_session`` only; rows left out are counted.
    se : {"observed", "robust"}
        Standard errors from the observed information matrix (normal theory, as lavaan's and
        dpm's defaults), or ``"robust"``: the Huber-White sandwich (lavaan's
        ``se = "robust.huber.white"``, the SEs of ``estimator = "MLR"``). Use ``"robust"`` when
        scores are far from normal (item means with a ceiling, sum scores of few items): when
        the outcome feeds back into ``x`` the normal-theory SEs are then too small.

    Returns
    -------
    RICLPMResult
        ``.effects`` (rows ``x->y``, ``y->x``, ``x->x``, ``y->y``; per session with
        ``constrain=False``), ``.between`` (random-intercept variances, covariance and
        correlation), ``.parameters``, ``.fit`` (chi2, df, CFI, TLI, RMSEA, SRMR, logLik ...),
        ``.dropped``, ``.summary()``, ``.to_apa()``, ``.methods()``, ``.plot()``.

    Notes
    -----
    Results equal lavaan's with the model syntax of Hamaker et al. (2015) and ``missing =
    "fiml"`` (``tests/reference/make_dynamics_reference.R``).

    Examples
    --------
    >>> import alliance_stats as als
    >>> s = als.simulate_study(n_therapists=10, patients_per_therapist=10, min_sessions=6, max_sessions=6, seed=3)
    >>> d = s.sessions.join(als.score(s.sessions, "WAI-SR", items="wai{}")).join(als.score(s.sessions, "PHQ-9", items="phq{}"))
    >>> res = als.ri_clpm(d, x="wai_sr_total", y="phq9_total")
    >>> res.effects["path"].tolist()
    ['x->y', 'y->x', 'x->x', 'y->y']
    """
    fn = "ri_clpm"
    if se not in SE_TYPES:
        raise OptionError("se", se, SE_TYPES)
    if not isinstance(constrain, (bool, np.bool_)):
        raise ModelSpecError(f"{fn}(): constrain must be True or False, got {constrain!r}")
    P = _panel(data, x=x, y=y, patient=patient, session=session, covariates=(), max_session=max_session, fn=fn, min_waves=3, lag=1)
    T = len(P.waves)
    ram, X, scale = _riclpm_model(P, x, y, bool(constrain))
    _check_coverage(ram, X, fn, max_session)
    keep = ~np.all(np.isnan(X), axis=1)
    with _one_thread():
        fit = _fit_ram(ram, X[keep], _start(ram, X[keep]), scale, robust=se == "robust")
    dropped, n_rows = _row_accounting(P, T, T, {}, x, y)
    stats_ = _fit_statistics(fit, ram.K)
    stats_["srmr"] = _srmr(ram, fit)
    msgs = _finish(ram, fit, fn)
    imp = _improper(ram, fit, {})
    for m in imp:
        warnings.warn(f"{fn}(): {m}", SingularFitWarning, stacklevel=user_stacklevel())
    words = {"x->y": f"{x}(t-1) -> {y}(t)", "y->x": f"{y}(t-1) -> {x}(t)", "x->x": f"{x}(t-1) -> {x}(t)", "y->y": f"{y}(t-1) -> {y}(t)"}
    rows = []
    for path in ("x->y", "y->x", "x->x", "y->y"):
        if constrain:
            rows.append(_effect_row(ram, fit, path, path, words[path]))
        else:
            for t in range(2, T + 1):
                rows.append({**_effect_row(ram, fit, f"{path}[{t}]", path, words[path]), "session": t})
    rx, ry = f"RI_{x}", f"RI_{y}"
    t = ram.table
    k = {name: int(t[(t["op"] == "~~") & (t["lhs"] == a) & (t["rhs"] == b)]["k"].iloc[0])
         for name, a, b in (("vx", rx, rx), ("vy", ry, ry), ("c", rx, ry))}
    th, V = fit.theta, fit.cov
    vx, vy, c = th[k["vx"]], th[k["vy"]], th[k["c"]]
    r = c / np.sqrt(vx * vy) if vx > 0 and vy > 0 else np.nan
    idx = [k["vx"], k["vy"], k["c"]]
    grad = np.array([-r / (2 * vx), -r / (2 * vy), 1 / np.sqrt(vx * vy)]) if np.isfinite(r) else np.full(3, np.nan)
    se_r = float(np.sqrt(grad @ V[np.ix_(idx, idx)] @ grad))
    if np.isfinite(r) and abs(r) > 1:
        m = (f"the random intercepts correlate r = {r:.2f}, beyond +/-1 (an improper solution): the stable between-patient "
             "parts are not separable from the within-patient dynamics in these data")
        imp.append(m)
        warnings.warn(f"{fn}(): {m}", SingularFitWarning, stacklevel=user_stacklevel())
    brows = []
    for term, est, s_e in ((f"variance {rx}", vx, np.sqrt(V[k["vx"], k["vx"]])), (f"variance {ry}", vy, np.sqrt(V[k["vy"], k["vy"]])),
                          ("covariance", c, np.sqrt(V[k["c"], k["c"]])), ("correlation", r, se_r)):
        z = est / s_e if s_e > 0 else np.nan
        brows.append({"term": term, "estimate": est, "se": s_e, "z": z, "p": float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else np.nan,
                      "ci_low": est - _Z975 * s_e, "ci_high": est + _Z975 * s_e})
    return RICLPMResult(
        effects=pd.DataFrame(rows), parameters=_param_table(ram, fit, {}), fit=stats_, x=x, y=y, n_patients=int(keep.sum()),
        n_rows=n_rows, dropped=dropped, sessions=list(range(1, T + 1)), converged=fit.converged, messages=msgs + imp,
        between=pd.DataFrame(brows), constrain=bool(constrain), se_type=se,
    )


class _one_thread:
    """Run the small dense linear algebra of a fit on one BLAS thread: on a busy machine
    multi-threaded BLAS on 20 x 20 matrices is many times slower, never faster."""

    def __enter__(self):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            self._lim = None
            return self
        self._lim = threadpool_limits(limits=1, user_api="blas")
        return self

    def __exit__(self, *exc):
        if self._lim is not None:
            self._lim.restore_original_limits()
        return False
