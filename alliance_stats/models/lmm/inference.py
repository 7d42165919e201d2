"""Stage 4: inference for the fixed effects (lmerTest's Satterthwaite degrees of freedom; the
Kenward-Roger method is in :mod:`.kenward_roger`)."""

from __future__ import annotations

import numpy as np

from ...exceptions import OptionError

DF_METHODS = ("satterthwaite", "kenward-roger", "z")
DDF_NAMES = ("Satterthwaite", "Kenward-Roger")  # lmerTest's ddf= values


def df_method_option(df_method, ddf, reml):
    """The df method asked for, from ``df_method`` or lmerTest's ``ddf`` (either in any case),
    refusing unknown values, two names that disagree, and Kenward-Roger for ML fits (as
    lmerTest)."""
    if df_method is not None and (not isinstance(df_method, str) or df_method.lower() not in DF_METHODS):
        raise OptionError("df_method", df_method, DF_METHODS)
    if ddf is not None and (not isinstance(ddf, str) or ddf.lower() not in [d.lower() for d in DDF_NAMES]):
        raise OptionError("ddf", ddf, DDF_NAMES, hint="ddf takes lmerTest's names (any case); or use df_method")
    dm = df_method.lower() if df_method is not None else None
    if ddf is not None:
        if dm is not None and dm != ddf.lower():
            raise OptionError(
                "ddf", ddf, (DDF_NAMES[DF_METHODS.index(dm)],) if dm in DF_METHODS[:2] else (),
                hint=f"It disagrees with df_method={df_method!r}; give one of the two",
            )
        dm = ddf.lower()
    dm = dm or "satterthwaite"
    if dm == "kenward-roger" and not reml:
        raise OptionError(
            "df_method", "kenward-roger", ("satterthwaite", "z"),
            hint="Kenward-Roger is defined for REML fits only (lmerTest refuses it for ML fits too): "
            "fit with reml=True, or keep reml=False with Satterthwaite df",
        )
    return dm


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

