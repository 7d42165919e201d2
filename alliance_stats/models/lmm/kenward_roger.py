"""Kenward-Roger inference for the fixed effects of a REML fit, as pbkrtest (``vcovAdj``,
``Lb_ddf``) and lmerTest (``summary(fit, ddf = "Kenward-Roger")``, ``contest1D``) compute it.

The marginal covariance of the response is linear in the covariance parameters gamma:

    V = sum_k gamma_k G_k + sigma^2 I,    G_k = Z E_k Z',

one gamma per variance and covariance of each random term (the lower triangle of its covariance
matrix, pbkrtest's parametrisation) and the residual variance last; ``E_k`` is the indicator of
that element (both (i, j) and (j, i) for a covariance), repeated for every group. Kenward & Roger
(1997) adjust the covariance of beta-hat, Phi = (X'V^-1 X)^-1, for the uncertainty in gamma:

    Phi_A = Phi + 2 Phi [ sum_ij W_ij (Q_ij - P_i Phi P_j) ] Phi,
    P_i  = -X'V^-1 G_i V^-1 X,     Q_ij = X'V^-1 G_i V^-1 G_j V^-1 X,
    W    = 2 IE^-1,  IE_ij = tr(V^-1 G_i V^-1 G_j) - 2 tr(Phi Q_ij) + tr(Phi P_i Phi P_j)

(V is linear in gamma, so the second-derivative term R_ij vanishes), and give the denominator
degrees of freedom of a test of L beta from the moments of its Wald statistic (``ddf_Lb``).

Nothing here forms an n x n matrix. With Z sparse (n x Q, every grouping level's columns, one
block of columns per group), Lambda a factor of the random-effects covariance over sigma^2 and
M = Lambda'Z'Z Lambda + I (Q x Q), Woodbury gives V^-1 = sigma^-2 (I - Z Lambda M^-1 Lambda'Z'),
and every quantity above is a product of R = [Z X] with powers of V^-1 (R'V^-1 R, R'V^-2 R,
X'V^-3 X, tr V^-2), each a Q x Q computation. The cost is O(Q^3) and the memory a few dense
Q x Q matrices, whatever the number of rows (pbkrtest inverts the n x n V). The design only has
to give, per grouping level, the per-row random-effect columns, each row's group and the
blocks of correlated columns: nested and crossed levels are handled alike.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, sparse

MAX_RANDOM_EFFECTS = 4000  # Q: about 10 dense Q x Q matrices of 8-byte numbers (1.3 GB at 4000)


def _sparse_z(levels):
    """Z (n x Q, CSR) with one block of columns per group at each level, lme4's layout
    (group-major within a level), and the column offset of each level."""
    rows, cols, vals, offs = [], [], [], []
    off = 0
    for lv in levels:
        n, q = lv.Z.shape
        offs.append(off)
        r = np.repeat(np.arange(n), q)
        c = off + (np.asarray(lv.codes)[:, None] * q + np.arange(q)[None, :]).ravel()
        rows.append(r)
        cols.append(c)
        vals.append(np.asarray(lv.Z, float).ravel())
        off += lv.n_groups * q
    Z = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(levels[0].Z.shape[0], off))
    return Z, offs


def _relative_factor(levels, covs, sigma2):
    """Lambda (Q x Q, sparse block diagonal): T_l T_l' = cov_l / sigma^2 for each group of level l.
    T_l is the symmetric square root, so that singular covariances (a variance at zero, a
    correlation at +/-1) need no special case."""
    blocks = []
    for lv, S in zip(levels, covs):
        w, U = np.linalg.eigh(np.asarray(S, float) / sigma2)
        T = (U * np.sqrt(np.clip(w, 0.0, None))) @ U.T
        blocks.append(sparse.kron(sparse.identity(lv.n_groups, format="csr"), sparse.csr_matrix(T), format="csr"))
    return sparse.block_diag(blocks, format="csr")


def parameters(levels):
    """The covariance parameters in pbkrtest's order: per level, per block of correlated columns,
    the lower triangle column by column; each as (level, i, j) with i >= j (columns within the
    level). The residual variance, which follows them, is not listed."""
    out = []
    for li, lv in enumerate(levels):
        off = 0
        for b in lv.blocks:
            for j in range(b):
                for i in range(j, b):
                    out.append((li, off + i, off + j))
            off += b
    return out


def vcov_adjusted(X, levels, covs, sigma2, vcov):
    """Kenward-Roger's adjusted covariance of beta-hat (pbkrtest's ``vcovAdj``).

    Parameters
    ----------
    X : (n, p) fixed-effects matrix
    levels : grouping levels, each with ``Z`` (n, q) per-row random-effect columns, ``codes``
        (n,) each row's group, ``n_groups`` and ``blocks`` (sizes of the correlated blocks)
    covs : per level, the (q, q) covariance matrix of its random effects
    sigma2 : residual variance
    vcov : (p, p) unadjusted covariance of beta-hat, (X'V^-1 X)^-1 (lme4's ``vcov``), or None
        to compute it here from ``covs`` and ``sigma2``

    Returns
    -------
    dict with ``vcov_adj`` (Phi_A), ``vcov`` (Phi), ``P`` (list of P_i), ``W`` (2 IE^-1), ``condi`` (smallest
    absolute eigenvalue of IE) and ``params`` (the (level, i, j) of each variance parameter,
    then ``"residual"``).
    """
    X = np.asarray(X, float)
    n, p = X.shape
    Z, offs = _sparse_z(levels)
    Q = Z.shape[1]
    Lam = _relative_factor(levels, covs, sigma2)
    ZZ = (Z.T @ Z).toarray()
    ZX = np.asarray(Z.T @ X)
    XX = X.T @ X
    U = np.block([[ZZ, ZX], [ZX.T, XX]])  # R'R, R = [Z X]
    Y = np.asarray(Lam.T @ U[:Q])  # Lambda'Z'R  (Q x (Q + p))
    M = (Lam.T @ sparse.csr_matrix(ZZ) @ Lam).toarray() + np.eye(Q)
    cf = linalg.cho_factor(M, lower=True, check_finite=False)
    Minv = linalg.cho_solve(cf, np.eye(Q), check_finite=False)
    F = Minv @ Y  # M^-1 Lambda'Z'R
    s2 = sigma2
    YF = Y.T @ F
    R1 = (U - YF) / s2  # R'V^-1 R
    R2 = (U - YF - F.T @ F) / s2**2  # R'V^-2 R
    A, B = R1[:Q, :Q], R1[:Q, Q:]
    A2, B2, C2 = R2[:Q, :Q], R2[:Q, Q:], R2[Q:, Q:]
    fx = F[:, Q:]
    C3 = (XX - Y[:, Q:].T @ fx - fx.T @ fx - fx.T @ (Minv @ fx)) / s2**3  # X'V^-3 X
    trV2 = (n - Q + float(np.sum(Minv * Minv))) / s2**2  # tr V^-2

    # each G_k = Z E_k Z' through the index pairs (x, y) of E_k = sum e_x e_y'
    params = parameters(levels)
    pairs = []
    for li, i, j in params:
        lv = levels[li]
        q = lv.Z.shape[1]
        base = offs[li] + np.arange(lv.n_groups) * q
        ii, jj = base + i, base + j
        pairs.append([(ii, ii)] if i == j else [(ii, jj), (jj, ii)])
    m = len(params) + 1  # and the residual

    EB = []  # E_k B (Q x p)
    for pr in pairs:
        e = np.zeros((Q, p))
        for x, y in pr:
            e[x] += B[y]
        EB.append(e)
    AEB = [A @ e for e in EB]

    P = [-(B.T @ e) for e in EB] + [-C2]
    Qm = np.empty((m, m), dtype=object)
    K = np.empty((m, m))
    for k in range(m - 1):
        for l in range(k, m - 1):
            Qm[k, l] = EB[k].T @ AEB[l]
            K[k, l] = sum(float(np.sum(A[np.ix_(y, u)] * A[np.ix_(x, v)])) for x, y in pairs[k] for u, v in pairs[l])
        Qm[k, m - 1] = EB[k].T @ B2
        K[k, m - 1] = sum(float(np.sum(A2[y, x])) for x, y in pairs[k])
    Qm[m - 1, m - 1] = C3
    K[m - 1, m - 1] = trV2
    for k in range(m):
        for l in range(k):
            Qm[k, l] = Qm[l, k].T
            K[k, l] = K[l, k]

    Phi = np.linalg.inv(R1[Q:, Q:]) if vcov is None else np.asarray(vcov, float)
    IE = np.empty((m, m))
    for k in range(m):
        PhiPk = Phi @ P[k]
        for l in range(k, m):
            IE[k, l] = IE[l, k] = K[k, l] - 2 * np.sum(Phi * Qm[k, l]) + np.sum(PhiPk * (P[l] @ Phi))
    ev = np.linalg.eigvalsh(IE)
    condi = float(np.min(np.abs(ev)))
    W = 2 * (np.linalg.inv(IE) if condi > 1e-10 else np.linalg.pinv(IE))
    W = (W + W.T) / 2
    Uk = np.zeros((p, p))
    for k in range(m):
        for l in range(m):
            Uk += W[k, l] * (Qm[k, l] - P[k] @ Phi @ P[l])
    Uk = (Uk + Uk.T) / 2
    PhiA = Phi + 2 * Phi @ Uk @ Phi
    return dict(vcov_adj=PhiA, vcov=Phi, P=P, W=W, condi=condi, params=params + ["residual"])


def _div0(x, y, tol=1e-14):
    """x / y, taken as 1 when both are below ``tol`` (pbkrtest's ``.divZero``)."""
    return 1.0 if abs(x) < tol and abs(y) < tol else x / y


def ddf_L(L, vcov, adj):
    """Kenward-Roger denominator degrees of freedom of the test of ``L beta`` (L: q x p of full
    row rank, or a vector), pbkrtest's ``Lb_ddf`` with ``adj`` from :func:`vcov_adjusted`."""
    L = np.atleast_2d(np.asarray(L, float))
    V0 = np.asarray(vcov, float)
    q = L.shape[0]
    Theta = L.T @ np.linalg.solve(L @ V0 @ L.T, L)
    TV = Theta @ V0
    u = [TV @ Pk @ V0 for Pk in adj["P"]]
    tr = np.array([np.trace(x) for x in u])
    W = adj["W"]
    m = len(u)
    A1 = float(tr @ W @ tr)
    A2 = float(sum(W[i, j] * np.sum(u[i] * u[j].T) for i in range(m) for j in range(m)))
    B = (A1 + 6 * A2) / (2 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    V0_ = 1 + c1 * B
    V1 = 1 - c2 * B
    V2 = 1 - c3 * B
    if abs(V0_) < 1e-10:
        V0_ = 0.0
    rho = (_div0(1 - A2 / q, V1)) ** 2 * V0_ / V2 / q
    return 4 + (q + 2) / (q * rho - 1)


def kenward_roger(X, levels, covs, sigma2, vcov=None):
    """Adjusted covariance (:func:`vcov_adjusted`) plus, per coefficient, the Kenward-Roger SE
    and df as lmerTest's ``summary(fit, ddf = "Kenward-Roger")`` reports them."""
    adj = vcov_adjusted(X, levels, covs, sigma2, vcov)
    p = adj["vcov"].shape[0]
    eye = np.eye(p)
    adj["df"] = np.array([ddf_L(eye[j], adj["vcov"], adj) for j in range(p)])
    adj["se"] = np.sqrt(np.diag(adj["vcov_adj"]))
    return adj


def check_size(levels):
    """Refuse (before fitting) a model whose random effects are too many for the dense Q x Q
    algebra, naming the number and what to do."""
    from ...exceptions import OptionError

    Q = sum(lv.n_groups * lv.Z.shape[1] for lv in levels)
    if Q > MAX_RANDOM_EFFECTS:
        raise OptionError(
            "df_method", "kenward-roger", ("satterthwaite", "z"),
            hint=f"this model has {Q} random effects ({', '.join(f'{lv.name}: {lv.n_groups} x {lv.Z.shape[1]}' for lv in levels)}); "
            f"the Kenward-Roger adjustment needs dense matrices of that size squared and is computed up to "
            f"{MAX_RANDOM_EFFECTS}. With this many groups its df are practically those of Satterthwaite "
            "(the default), which is computed at any size",
        )
