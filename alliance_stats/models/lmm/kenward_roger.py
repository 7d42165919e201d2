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
X'V^-3 X, tr V^-2). M, and Z'V^-1 Z, are block diagonal over the connected components of the
grouping structure (groups that share rows, directly or through other groups): for nested
factors these are the top-level groups, each therapist's patients with the therapist. The work
is done on dense blocks of components (small components packed together up to ``CHUNK``
columns): O(sum of block size^3) time, whatever the number of rows, where pbkrtest inverts the
n x n V. The design only has to give, per grouping level, the per-row random-effect columns,
each row's group and the blocks of correlated columns; crossed levels give larger components
(often one), handled the same way up to ``MAX_COMPONENT`` columns.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, sparse

MAX_COMPONENT = 3000  # random effects in one connected component: 10-15 dense squares (~1 GB at 3000)
CHUNK = 200  # small components are packed into dense blocks of about this many columns


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


def _components(levels):
    """Connected component of every group of every level (level-major order, as Z's column
    blocks): groups are joined when a row belongs to both."""
    from scipy.sparse.csgraph import connected_components

    n = len(levels[0].codes)
    goff = np.cumsum([0] + [lv.n_groups for lv in levels])
    rows = np.concatenate([np.arange(n)] * len(levels))
    cols = np.concatenate([np.asarray(lv.codes) + o for lv, o in zip(levels, goff[:-1])])
    N = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, goff[-1]))
    ncomp, lab = connected_components(N.T @ N, directed=False)
    return ncomp, lab, goff


def _chunks(levels):
    """Column index sets (into Z) of dense blocks: each a union of whole components, small ones
    packed together up to ``CHUNK`` columns; and the size of the largest component."""
    ncomp, lab, goff = _components(levels)
    col_comp = np.concatenate([np.repeat(lab[o : o + lv.n_groups], lv.Z.shape[1]) for lv, o in zip(levels, goff[:-1])])
    order = np.argsort(col_comp, kind="stable")
    size = np.bincount(col_comp, minlength=ncomp)
    starts = np.r_[0, np.cumsum(size)]
    out, cur, cur_n = [], [], 0
    for c in range(ncomp):
        cur.append(order[starts[c] : starts[c + 1]])
        cur_n += size[c]
        if cur_n >= CHUNK:
            out.append(np.concatenate(cur))
            cur, cur_n = [], 0
    if cur:
        out.append(np.concatenate(cur))
    return out, int(size.max())


def _e_matrices(levels, offs, Q):
    """E_k (Q x Q, sparse, symmetric) of every covariance parameter: ones at (i, j) and (j, i)
    of every group's block."""
    out = []
    for li, i, j in parameters(levels):
        lv = levels[li]
        q = lv.Z.shape[1]
        base = offs[li] + np.arange(lv.n_groups) * q
        r, c = (base + i, base + j) if i == j else (np.r_[base + i, base + j], np.r_[base + j, base + i])
        out.append(sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(Q, Q)))
    return out


def vcov_adjusted(X, levels, covs, sigma2, vcov=None):
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
    dict with ``vcov_adj`` (Phi_A), ``vcov`` (Phi), ``P`` (list of P_i), ``W`` (2 IE^-1),
    ``condi`` (smallest absolute eigenvalue of IE) and ``params`` (the (level, i, j) of each
    variance parameter, then ``"residual"``).
    """
    X = np.asarray(X, float)
    n, p = X.shape
    s2 = float(sigma2)
    Z, offs = _sparse_z(levels)
    Q = Z.shape[1]
    Lam = _relative_factor(levels, covs, s2)
    K = (Z.T @ Z).tocsr()
    ZX = np.asarray(Z.T @ X)
    XX = X.T @ X
    E = _e_matrices(levels, offs, Q)
    m = len(E) + 1  # the random-effect parameters and the residual variance
    chunks, _ = _chunks(levels)

    # per dense block c (M, V^-1's Z-part block diagonal over blocks), with Y = Lambda'Z'[Z X]
    # and F = M^-1 Y:  R'V^-1 R = (R'R - Y'F) / s2,  R'V^-2 R = (R'R - Y'F - F'F) / s2^2,
    # X'V^-3 X = (X'X - y'f - f'f - f'M^-1 f) / s2^3 (y, f: the X columns), tr V^-2 =
    # (n - Q + ||M^-1||_F^2) / s2^2.  Sums over blocks: the X'.X parts, P, Q and the traces.
    xv1 = np.zeros((p, p))  # sum_c y'f
    xv2 = np.zeros((p, p))  # sum_c f'f
    xv3 = np.zeros((p, p))  # sum_c f'M^-1 f
    trm2 = 0.0
    blocks = []
    for J in chunks:
        Kc = K[J][:, J].toarray()
        Lc = Lam[J][:, J].toarray()
        YQ = Lc.T @ Kc
        YX = Lc.T @ ZX[J]
        M = YQ @ Lc + np.eye(len(J))
        cf = linalg.cho_factor(M, lower=True, check_finite=False)
        Minv = linalg.cho_solve(cf, np.eye(len(J)), check_finite=False)
        FQ, FX = Minv @ YQ, Minv @ YX
        A = (Kc - YQ.T @ FQ) / s2
        A = (A + A.T) / 2
        B = (ZX[J] - YQ.T @ FX) / s2
        A2 = (Kc - YQ.T @ FQ - FQ.T @ FQ) / s2**2
        B2 = (ZX[J] - YQ.T @ FX - FQ.T @ FX) / s2**2
        xv1 += YX.T @ FX
        xv2 += FX.T @ FX
        xv3 += FX.T @ (Minv @ FX)
        trm2 += float(np.sum(Minv * Minv))
        blocks.append((J, A, B, A2, B2))
    C1 = (XX - xv1) / s2  # X'V^-1 X
    C2 = (XX - xv1 - xv2) / s2**2  # X'V^-2 X
    C3 = (XX - xv1 - xv2 - xv3) / s2**3  # X'V^-3 X
    trV2 = (n - Q + trm2) / s2**2

    # P_k = -X'V^-1 G_k V^-1 X = -B'E_k B;  Q_kl = B'E_k A E_l B;  Q_k,res = B'E_k B2;
    # Q_res,res = X'V^-3 X;  tr(V^-1 G_k V^-1 G_l) = tr(E_k A E_l A);  with the residual:
    # tr(E_k A2), tr V^-2
    P = [np.zeros((p, p)) for _ in range(m - 1)] + [-C2]
    Qm = [[np.zeros((p, p)) for _ in range(m)] for _ in range(m)]
    Qm[m - 1][m - 1] = C3
    Kt = np.zeros((m, m))
    Kt[m - 1, m - 1] = trV2
    for J, A, B, A2, B2 in blocks:
        Ec = [e[J][:, J] for e in E]
        EB = [e @ B for e in Ec]
        EA = [(e @ A) for e in Ec]
        for k in range(m - 1):
            P[k] -= B.T @ EB[k]
            AEBk = A @ EB[k]
            for l in range(k, m - 1):
                Qm[l][k] += EB[l].T @ AEBk
                Kt[k, l] += float(np.sum(EA[k] * EA[l].T))
            Qm[k][m - 1] += EB[k].T @ B2
            Kt[k, m - 1] += float(Ec[k].multiply(A2).sum())
    for k in range(m):
        for l in range(k + 1, m):
            if l < m - 1:
                Qm[k][l] = Qm[l][k].T
            else:
                Qm[l][k] = Qm[k][l].T
            Kt[l, k] = Kt[k, l]

    Phi = np.linalg.inv(C1) if vcov is None else np.asarray(vcov, float)
    IE = np.empty((m, m))
    for k in range(m):
        PhiPk = Phi @ P[k]
        for l in range(k, m):
            IE[k, l] = IE[l, k] = Kt[k, l] - 2 * np.sum(Phi * Qm[k][l]) + np.sum(PhiPk * (P[l] @ Phi))
    condi = float(np.min(np.abs(np.linalg.eigvalsh(IE))))
    W = 2 * (np.linalg.inv(IE) if condi > 1e-10 else np.linalg.pinv(IE))
    W = (W + W.T) / 2
    Uk = np.zeros((p, p))
    for k in range(m):
        for l in range(m):
            Uk += W[k, l] * (Qm[k][l] - P[k] @ Phi @ P[l])
    Uk = (Uk + Uk.T) / 2
    PhiA = Phi + 2 * Phi @ Uk @ Phi
    return dict(vcov_adj=PhiA, vcov=Phi, P=P, W=W, condi=condi, params=parameters(levels) + ["residual"])


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
    if q == 1:
        # u_i has rank one, so A1 = A2 = A, g = -1, rho = (1 - A/2) / (1 - 2A), and pbkrtest's
        # expression reduces to 2 / A (Satterthwaite's form with the expected information). Written
        # out, it divides (1 - A2) by (1 - c2 B), both zero at A = 1 (df = 2, e.g. three balanced
        # groups), where rounding would decide the answer.
        return 2.0 / A2
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
    """Refuse (before fitting) a model whose largest connected component of groups has too many
    random effects for the dense algebra, naming the number and what to do."""
    from ...exceptions import OptionError

    _, largest = _chunks(levels)
    if largest > MAX_COMPONENT:
        raise OptionError(
            "df_method", "kenward-roger", ("satterthwaite", "z"),
            hint=f"The grouping factors ({', '.join(lv.name for lv in levels)}) link {largest} random effects into one "
            f"block of rows (crossed factors, or a very large top-level group); the Kenward-Roger adjustment needs "
            f"dense matrices of that size squared and is computed up to {MAX_COMPONENT}. Use df_method='satterthwaite' "
            "(the default), which has no such limit",
        )
