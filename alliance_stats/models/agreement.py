"""The two sides of the alliance: client and therapist ratings of the same sessions analysed together.

- :func:`response_surface`: polynomial regression of an outcome on client (x) and therapist (y)
  ratings with response-surface analysis (a1-a5, stationary point, principal axes), single-level
  or with a random intercept of patient (multilevel RSA).
- :func:`apim`: the actor-partner interdependence model for distinguishable dyads, fitted as the
  two-intercept model with an unstructured 2 x 2 residual covariance within dyad (nlme's
  ``gls(..., correlation = corSymm(form = ~1 | dyad), weights = varIdent(form = ~1 | role))``).
- :func:`partner_scores`: the partner's value of a column next to each person's own.

References
----------
Edwards, J. R. (2002). Alternatives to difference scores: Polynomial regression analysis and
response surface methodology. In F. Drasgow & N. Schmitt (Eds.), Measuring and analyzing
behavior in organizations (pp. 350-400). Jossey-Bass.
Shanock, L. R., Baran, B. E., Gentry, W. A., Pattison, S. C., & Heggestad, E. D. (2010).
Polynomial regression with response surface analysis. Journal of Business and Psychology, 25,
543-554.
Humberg, S., Nestler, S., & Back, M. D. (2019). Response surface analysis in personality and
social psychology. Social Psychological and Personality Science, 10, 409-419.
Marmarosh, C. L., & Kivlighan, D. M. (2012). Relationships among client and counselor
agreement about the working alliance, session evaluations, and change in client symptoms
using response surface analysis. Journal of Counseling Psychology, 59, 352-367.
Kenny, D. A., Kashy, D. A., & Cook, W. L. (2006). Dyadic data analysis. Guilford.
Kenny, D. A., & Ledermann, T. (2010). Detecting, measuring, and testing dyadic patterns in the
actor-partner interdependence model. Journal of Family Psychology, 24, 359-366.
Kivlighan, D. M., Marmarosh, C. L., & Hilsenroth, M. J. (2014). Client and therapist
therapeutic alliance, session evaluation, and client reliable change: A moderated
actor-partner interdependence model. Journal of Counseling Psychology, 61, 15-23.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from .._format import apa_p, fmt_ci, fmt_num, format_frame
from .._result import Result, accounting_frame
from ..exceptions import AllianceStatsError, ColumnError, IncompleteGroupsWarning, ModelSpecError, OptionError, _fmt_labels, _show
from ..exceptions import user_stacklevel
from ..instruments import get_instrument, instruments
from ..validation import check_number, check_unique_columns, check_whole_number, ids_to_text, need_columns, numeric_column, require_frame
from .lmm import LMMResult, lmm

__all__ = ["response_surface", "ResponseSurfaceResult", "apim", "APIMResult", "partner_scores"]


# ---------------------------------------------------------------------------------- helpers
def _check_columns(data, **roles):
    """Each role's column is in the data, once."""
    need_columns(data, roles)
    check_unique_columns(data, roles.values())


def _numeric(data, col, role):
    return numeric_column(data, col, what=f"{role}={col!r}")


def _complete(frame: pd.DataFrame, order, labels) -> tuple[pd.Series, pd.Series]:
    """Rows with every column of ``order`` present; reasons counted once, under the first
    missing column (in ``order``)."""
    keep = pd.Series(True, index=frame.index)
    reasons = {}
    for c in order:
        miss = keep & frame[c].isna()
        if miss.any():
            reasons[labels[c]] = int(miss.sum())
        keep &= ~miss
    return keep, pd.Series(reasons, dtype=int, name="rows")


def _crit(level, df):
    q = 0.5 + level / 2
    return float(special.stdtrit(df, q)) if np.isfinite(df) else float(special.ndtri(q))


def _pval(stat, df):
    return float(2 * special.stdtr(df, -abs(stat))) if np.isfinite(df) else float(2 * special.ndtr(-abs(stat)))


def _check_level(level):
    return check_number("level", level, 0, 1, lo_open=True, hi_open=True,
                        hint="give the confidence level as a proportion between 0 and 1, e.g. 0.95")


# ------------------------------------------------------------------------- response surface
_B_NAMES = ["b0", "b1", "b2", "b3", "b4", "b5"]
_A_ROWS = {
    "a1": ([0, 1, 1, 0, 0, 0], "slope along the line of congruence (x = y)"),
    "a2": ([0, 0, 0, 1, 1, 1], "curvature along the line of congruence (x = y)"),
    "a3": ([0, 1, -1, 0, 0, 0], "slope along the line of incongruence (x = -y)"),
    "a4": ([0, 0, 0, 1, -1, 1], "curvature along the line of incongruence (x = -y)"),
    "a5": ([0, 0, 0, 1, 0, -1], "b3 - b5: asymmetry of the quadratic terms"),
}
_NONLIN = ["X0", "Y0", "Z0", "p10", "p11", "p20", "p21"]
_NONLIN_DESC = {
    "X0": "stationary point, x (centred units)",
    "Y0": "stationary point, y (centred units)",
    "Z0": "surface height at the stationary point",
    "p10": "first principal axis: intercept (y = p10 + p11 x)",
    "p11": "first principal axis: slope",
    "p20": "second principal axis: intercept (y = p20 + p21 x)",
    "p21": "second principal axis: slope",
}


def _nonlinear(b):
    """Stationary point and principal axes from b0..b5 (Edwards 2002; as RSA::RSA.ST). Works on
    complex input (complex-step derivatives)."""
    b0, b1, b2, b3, b4, b5 = b
    with np.errstate(divide="ignore", invalid="ignore"):
        den = 4 * b3 * b5 - b4**2
        x0 = (b2 * b4 - 2 * b1 * b5) / den
        y0 = (b1 * b4 - 2 * b2 * b3) / den
        z0 = b0 + b1 * x0 + b2 * y0 + b3 * x0**2 + b4 * x0 * y0 + b5 * y0**2
        root = np.sqrt((b3 - b5) ** 2 + b4**2)
        p11 = (b5 - b3 + root) / b4
        p21 = (b5 - b3 - root) / b4
        p10 = y0 - p11 * x0
        p20 = y0 - p21 * x0
    return np.array([x0, y0, z0, p10, p11, p20, p21])


def _all_params(b):
    """b0..b5, a1..a5 and the nonlinear quantities as one vector (real input)."""
    A = np.array([r for r, _ in _A_ROWS.values()], float)
    nl = np.real(_nonlinear(np.asarray(b, float)))
    nl = np.where(np.isfinite(nl), nl, np.nan)
    return np.r_[b, A @ b, nl]


def _nonlinear_gradient(b):
    """Exact gradients of the nonlinear quantities by complex-step differentiation."""
    h = 1e-30
    G = np.empty((len(_NONLIN), 6))
    for j in range(6):
        bc = np.asarray(b, complex).copy()
        bc[j] += 1j * h
        G[:, j] = np.imag(_nonlinear(bc)) / h
    return G


def _key_range(col):
    """(midpoint, low, high, instrument) of a score column named after a registered key
    ('{prefix}_{scale}', e.g. 'wai_sr_total'), or None."""
    hits = []
    for name in instruments()["name"]:
        inst = get_instrument(name)
        if inst.kind == "qsort":
            continue
        for scale, items in inst.scales.items():
            if f"{inst.prefix}_{scale}" == col:
                k = len(items) if inst.scoring == "sum" else 1
                lo, hi = inst.scale[0] * k * inst.multiplier, inst.scale[1] * k * inst.multiplier
                hits.append(((lo + hi) / 2, lo, hi, inst.name, inst.scoring, len(items)))
    if not hits:
        return None
    if len({h[:3] for h in hits}) > 1:
        raise ModelSpecError(
            f"column {col!r} matches the score names of several instrument keys with different ranges "
            f"({', '.join(h[3] for h in hits)}); pass scale_midpoint= to say which scale it is on"
        )
    return hits[0]


def _midpoint(frame, x, y, scale_midpoint):
    if scale_midpoint is not None:
        if isinstance(scale_midpoint, bool) or not isinstance(scale_midpoint, (int, float, np.integer, np.floating)) or not np.isfinite(scale_midpoint):
            raise OptionError("scale_midpoint", scale_midpoint, hint="give the middle of the response scale as a number, e.g. 3 for a 1-5 mean score")
        return float(scale_midpoint), "given as scale_midpoint"
    keys = {c: _key_range(c) for c in (x, y)}
    unknown = [c for c, k in keys.items() if k is None]
    if unknown:
        raise ModelSpecError(
            f"center='midpoint' needs the midpoint of the response scale, and {_fmt_labels(unknown)} "
            f"{'is not a score column' if len(unknown) == 1 else 'are not score columns'} of a known instrument key "
            "(known scores are named like 'wai_sr_total', as als.score() writes them). Pass scale_midpoint= "
            "(e.g. 3 for WAI-SR mean scores on 1-5, 4 for 1-7), or center='mean' or center=None"
        )
    mids = {c: k[0] for c, k in keys.items()}
    if len(set(mids.values())) > 1:
        raise ModelSpecError(
            "x and y are on different scales ("
            + "; ".join(f"{c!r}: {keys[c][3]}, midpoint {_show(mids[c])}" for c in (x, y))
            + "); a response surface needs client and therapist ratings on one scale (commensurate measures). "
            "Rescale one of them (e.g. use mean scores for both) or pass scale_midpoint="
        )
    for c, (mid, lo, hi, name, scoring, n_items) in keys.items():
        v = frame[c].dropna()
        out = v[(v < lo - 1e-9) | (v > hi + 1e-9)]
        if len(out):
            raise ModelSpecError(
                f"column {c!r} is named as the {name} score ({scoring} of {n_items} items, range {_show(lo)}-{_show(hi)}) "
                f"but holds values outside that range at row(s) {_fmt_labels(out.index.tolist())}; it was probably "
                "scored another way. Pass scale_midpoint= for the scale it is on"
            )
    first = keys[x]
    return float(first[0]), f"midpoint of the {first[3]} scale ({first[4]} score, {_show(first[1])}-{_show(first[2])})"


@dataclass(repr=False)
class ResponseSurfaceResult(Result):
    """Polynomial regression with response-surface analysis (see :func:`alliance_stats.response_surface`).

    Attributes
    ----------
    table : DataFrame
        One row per parameter: ``parameter, kind, description, estimate, se, df, statistic, p,
        ci_low, ci_high, boot_ci_low, boot_ci_high``. ``kind`` is ``coefficient`` (b0-b5),
        ``surface`` (a1-a5), ``stationary point`` (X0, Y0, Z0) or ``principal axis`` (p10, p11,
        p20, p21). ``ci_low``/``ci_high`` are delta-method intervals (t for b and a, normal for
        the nonlinear quantities), ``boot_ci_*`` percentile bootstrap intervals.
    center : float
        The value subtracted from x and y before fitting (X0, Y0, p10 and p20 are in these
        centred units; add ``center`` for the raw scale).
    n_obs, n_dropped : int
    dropped : Series
        Rows left out, by reason.
    vcov : DataFrame
        Covariance of the coefficients b0-b5 (the lmm's for the multilevel version).
    model : LMMResult or None
        The mixed model of the multilevel version.
    shape : str
        Dome, bowl or saddle, from the signs of the eigenvalues of the quadratic part.
    """

    table: pd.DataFrame
    x: str
    y: str
    outcome: str
    patient: str | None
    center: float
    center_method: str
    n_obs: int
    n_dropped: int
    dropped: pd.Series
    level: float
    n_boot: int
    n_boot_failed: int
    seed: int | None
    sigma: float
    r2: float | None
    shape: str
    eigenvalues: np.ndarray
    vcov: pd.DataFrame = field(default=None)
    model: LMMResult | None = None
    n_groups: int | None = None
    data: pd.DataFrame = field(default=None)
    notes: list = field(default_factory=list)

    @property
    def coefficients(self) -> np.ndarray:
        return self.table.set_index("parameter").loc[_B_NAMES, "estimate"].to_numpy(float)

    def predict(self, x, y) -> np.ndarray:
        """The fitted surface at raw (uncentred) values of x and y (population level)."""
        b = self.coefficients
        xc = np.asarray(x, float) - self.center
        yc = np.asarray(y, float) - self.center
        return b[0] + b[1] * xc + b[2] * yc + b[3] * xc**2 + b[4] * xc * yc + b[5] * yc**2

    # -- text ----------------------------------------------------------------------------------
    title = "Response surface analysis"

    def _headline(self) -> str:
        kind = f"multilevel (random intercept of {self.patient}, REML)" if self.patient else "OLS"
        n = f"n = {self.n_obs} rows" + (f" from {self.n_groups} {self.patient} groups" if self.patient else "")
        fit = f"residual SD {fmt_num(self.sigma)}" + (f", R^2 = {fmt_num(self.r2, leading_zero=False)}" if self.r2 is not None else "")
        return (f"{kind}: {self.outcome} on {self.x} (x) and {self.y} (y); {n}; centred on {_show(round(self.center, 6))} "
                f"({self.center_method}); {fit}; surface shape: {self.shape}")

    def to_frame(self) -> pd.DataFrame:
        """One row per parameter: coefficients, surface parameters, stationary point, principal
        axes (a copy of ``table``)."""
        return self.table.copy()

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        """APA-style table of the surface parameters, stationary point and principal axes
        (estimate, SE, t or z, p, CIs)."""
        digits = 2 if digits is None else int(digits)
        lv = int(round(self.level * 100))
        t = self.table
        out = pd.DataFrame({
            "Parameter": t["parameter"],
            "Meaning": t["description"],
            "Estimate": [fmt_num(v, digits) for v in t["estimate"]],
            "SE": [fmt_num(v, digits) for v in t["se"]],
            "t / z": [fmt_num(v, digits) for v in t["statistic"]],
            "p": [apa_p(v) for v in t["p"]],
            f"{lv}% CI": [fmt_ci(a, b, digits) for a, b in zip(t["ci_low"], t["ci_high"])],
        })
        if self.n_boot:
            out[f"{lv}% bootstrap CI"] = [fmt_ci(a, b, digits) for a, b in zip(t["boot_ci_low"], t["boot_ci_high"])]
        return out

    def _notes(self) -> list:
        lv = int(round(self.level * 100))
        boot = (f"; percentile bootstrap {lv}% CIs from {self.n_boot} resamples" + (f" of {self.patient}s" if self.patient else "")
                + f" (seed {self.seed})" if self.n_boot else "")
        return [f"delta-method {lv}% CIs (t for b and a, normal for the nonlinear quantities){boot}", *self.notes]

    def accounting(self) -> pd.DataFrame:
        """Rows used and rows left out, by reason."""
        return accounting_frame("rows", self.n_obs, list(self.dropped.items()))

    def methods(self) -> str:
        """A methods-section paragraph describing the analysis as run."""
        lv = int(round(self.level * 100))
        if self.patient:
            model = (f"a linear mixed model with a random intercept of {self.patient} (REML; {self.n_obs} observations "
                     f"from {self.n_groups} {self.patient}s), fitted with alliance-stats (equivalent to lme4::lmer), "
                     "with Satterthwaite degrees of freedom for the surface parameters")
        else:
            model = f"ordinary least squares ({self.n_obs} observations)"
        s = (f"To study agreement between the two ratings, {self.outcome} was regressed on {self.x} (x) and {self.y} (y) "
             "with a second-order polynomial, z = b0 + b1x + b2y + b3x^2 + b4xy + b5y^2 (Edwards, 2002), estimated by "
             f"{model}. Both predictors were centred on {_show(round(self.center, 6))} ({self.center_method}). "
             "From the coefficients we derived the response-surface parameters a1 = b1 + b2 and a2 = b3 + b4 + b5 "
             "(slope and curvature along the line of congruence, x = y), a3 = b1 - b2 and a4 = b3 - b4 + b5 (along the "
             "line of incongruence, x = -y) and a5 = b3 - b5 (Shanock et al., 2010; Humberg et al., 2019), the "
             "stationary point and the first and second principal axes (Edwards, 2002). "
             f"{lv}% confidence intervals come from the delta method on the coefficient covariance matrix")
        if self.n_boot:
            s += (f" and from a percentile bootstrap with {self.n_boot} resamples of "
                  + (f"{self.patient}s (cluster bootstrap)" if self.patient else "rows") + f" (seed {self.seed})")
        s += "."
        if self.n_dropped:
            s += f" {self.n_dropped} rows with missing values were left out (" + "; ".join(f"{k}: {v}" for k, v in self.dropped.items()) + ")."
        return s

    # -- figures -------------------------------------------------------------------------------
    def _grid(self, n=60):
        d = self.data
        lo = float(min(d[self.x].min(), d[self.y].min()))
        hi = float(max(d[self.x].max(), d[self.y].max()))
        pad = 0.05 * (hi - lo if hi > lo else 1.0)
        g = np.linspace(lo - pad, hi + pad, n)
        X, Y = np.meshgrid(g, g)
        return g, X, Y, self.predict(X, Y)

    def plot(self, *, ax=None, kind: str = "contour"):
        """The fitted surface over the observed range of the ratings (raw units).

        ``kind="contour"``: filled contours with the observed pairs, the line of congruence
        (x = y, solid), the line of incongruence through the centre (dashed) and the first
        principal axis (dotted, when defined). ``kind="surface"``: a 3-D surface with the two
        lines drawn on it (pass a 3-D Axes, ``fig.add_subplot(projection="3d")``, or none).
        Returns the Axes.
        """
        import matplotlib.pyplot as plt

        if kind not in ("contour", "surface"):
            raise OptionError("kind", kind, ("contour", "surface"))
        g, X, Y, Z = self._grid()
        c = self.center
        if kind == "contour":
            if ax is None:
                _, ax = plt.subplots(figsize=(5, 4.3))
            elif getattr(ax, "name", "") == "3d":
                raise OptionError("kind", kind, ("contour", "surface"), hint="a 3-D Axes was given: use kind='surface' with it, or pass a 2-D Axes")
            cs = ax.contourf(X, Y, Z, levels=14, cmap="viridis")
            ax.contour(X, Y, Z, levels=14, colors="white", linewidths=0.4, alpha=0.6)
            ax.figure.colorbar(cs, ax=ax, label=self.outcome)
            ax.scatter(self.data[self.x], self.data[self.y], s=8, color="black", alpha=0.35, lw=0)
            ax.plot(g, g, color="white", lw=1.5, label="line of congruence (x = y)")
            ax.plot(g, 2 * c - g, color="white", lw=1.2, ls="--", label="line of incongruence (x = -y)")
            row = self.table.set_index("parameter")
            p10, p11 = row.loc["p10", "estimate"], row.loc["p11", "estimate"]
            if np.isfinite(p10) and np.isfinite(p11):
                ax.plot(g, c + p10 + p11 * (g - c), color="#E69F00", lw=1.2, ls=":", label="first principal axis")
            ax.set_xlim(g[0], g[-1])
            ax.set_ylim(g[0], g[-1])
            ax.set_aspect("equal", adjustable="box")
            ax.set_xlabel(self.x)
            ax.set_ylabel(self.y)
            ax.legend(loc="upper left", fontsize="x-small", framealpha=0.7)
            return ax
        if ax is None:
            fig = plt.figure(figsize=(5.5, 4.5))
            ax = fig.add_subplot(projection="3d")
        elif getattr(ax, "name", "") != "3d":
            raise OptionError("kind", kind, ("contour", "surface"),
                              hint="kind='surface' draws on a 3-D Axes: pass fig.add_subplot(projection='3d') or ax=None")
        ax.plot_surface(X, Y, Z, cmap="viridis", alpha=0.85, linewidth=0, antialiased=True)
        ax.plot(g, g, self.predict(g, g), color="black", lw=1.5, label="line of congruence")
        ax.plot(g, 2 * c - g, self.predict(g, 2 * c - g), color="black", lw=1.2, ls="--", label="line of incongruence")
        ax.set_xlabel(self.x)
        ax.set_ylabel(self.y)
        ax.set_zlabel(self.outcome)
        return ax


def _rsa_design(xc, yc):
    return np.column_stack([np.ones_like(xc), xc, yc, xc**2, xc * yc, yc**2])


def _ols(X, z):
    q, r = np.linalg.qr(X)
    b = np.linalg.solve(r, q.T @ z)
    res = z - X @ b
    n, k = X.shape
    s2 = float(res @ res) / (n - k)
    rinv = np.linalg.inv(r)
    return b, s2 * (rinv @ rinv.T), s2, res


def _ml_formula():
    # the grouping factor is called 'patient' (the argument's name) so that lmm's messages make sense to the user
    return "z ~ x + y + x2 + xy + y2 + (1 | patient)"


def _ml_frame(xc, yc, z, cluster):
    return pd.DataFrame({"z": z, "x": xc, "y": yc, "x2": xc**2, "xy": xc * yc, "y2": yc**2, "patient": cluster})


def response_surface(
    data: pd.DataFrame,
    *,
    x: str,
    y: str,
    outcome: str,
    patient: str | None = None,
    center="midpoint",
    scale_midpoint: float | None = None,
    n_boot: int = 1000,
    seed: int | None = 1,
    level: float = 0.95,
) -> ResponseSurfaceResult:
    """Polynomial regression with response-surface analysis of client-therapist agreement.

    Fits ``z = b0 + b1 x + b2 y + b3 x^2 + b4 xy + b5 y^2`` of ``outcome`` (z) on the client's
    (``x``) and the therapist's (``y``) rating of the same session or treatment, and derives the
    surface parameters (Shanock et al. 2010; Humberg et al. 2019)

    - a1 = b1 + b2, a2 = b3 + b4 + b5: slope and curvature along the line of congruence (x = y:
      does the outcome rise when both rate the alliance higher, and is it curved?);
    - a3 = b1 - b2, a4 = b3 - b4 + b5: slope and curvature along the line of incongruence
      (x = -y: does it matter who rates higher, and does disagreement itself go with a lower
      (a4 < 0) outcome?);
    - a5 = b3 - b5;

    and the stationary point (X0, Y0, Z0) and the first and second principal axes
    (``y = p10 + p11 x``, ``y = p20 + p21 x``) by Edwards' (2002) formulas, as the RSA package
    defines them.

    Parameters
    ----------
    data : DataFrame
        One row per rated unit (pair, or session in the multilevel case) with both ratings and
        the outcome. Not modified.
    x, y : str
        Columns of the client's and the therapist's rating, on one scale.
    outcome : str
        The outcome column.
    patient : str, optional
        Grouping column: fit the multilevel version (random intercept of patient, REML with
        :func:`alliance_stats.lmm`; Kivlighan et al. 2017) for repeated sessions.
    center : {"midpoint", "mean", None} or number
        What is subtracted from both ratings (one value, so x = y still means agreement):
        the scale midpoint (default; from the instrument key when the columns are known
        scores such as ``wai_sr_total``, else from ``scale_midpoint``), the mean of all x and y
        values analysed, nothing, or the number given.
    scale_midpoint : float, optional
        The midpoint of the rating scale for ``center="midpoint"`` (e.g. 3 for a 1-5 mean score).
    n_boot : int
        Bootstrap resamples for the percentile CIs (rows; whole patients in the multilevel
        case, each resample a refit of the mixed model, about 0.04 s each for 350 sessions, so
        some 40 s for the default 1000); 0 for none. Resamples that cannot be fitted are
        counted (``n_boot_failed``) and left out.
    seed : int or None
        Seed of the bootstrap's random generator.
    level : float
        Confidence level.

    Returns
    -------
    ResponseSurfaceResult

    Notes
    -----
    The a's are linear in the coefficients: their SEs come from the coefficient covariance, with
    t tests on the residual df (OLS) or Satterthwaite df (multilevel; as lmerTest's
    ``contest1D``). The stationary point and the principal axes are nonlinear: their SEs come
    from the delta method with exact gradients, with normal (z) intervals, as the RSA package
    reports them; their percentile bootstrap intervals are usually the better guide. Checked
    against R's ``lm`` and ``lme4::lmer`` with the same formulas: see
    ``tests/reference/make_agreement_reference.R``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, alliance_stats as als
    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"client": rng.uniform(1, 5, 80), "therapist": rng.uniform(1, 5, 80)})
    >>> d["outcome"] = d["client"] + d["therapist"] - (d["client"] - d["therapist"]) ** 2 + rng.normal(0, 1, 80)
    >>> res = als.response_surface(d, x="client", y="therapist", outcome="outcome", scale_midpoint=3, n_boot=0)
    >>> res.table.set_index("parameter").loc[["a1", "a4"], "estimate"].round(1).tolist()  # true values 2 and -4
    [1.9, -4.2]
    """
    require_frame(data, "data of response_surface()")
    _check_columns(data, x=x, y=y, outcome=outcome, **({"patient": patient} if patient is not None else {}))
    if len({x, y, outcome} | ({patient} if patient else set())) < 3 + bool(patient):
        raise ModelSpecError(f"x={x!r}, y={y!r}, outcome={outcome!r}{f', patient={patient!r}' if patient else ''} must be different columns")
    level = _check_level(level)
    n_boot = check_whole_number("n_boot", n_boot, lo=0)
    if isinstance(center, str):
        if center not in ("midpoint", "mean"):
            raise OptionError("center", center, ("midpoint", "mean", None, "a number"))
    elif center is not None and (isinstance(center, bool) or not isinstance(center, (int, float, np.integer, np.floating)) or not np.isfinite(center)):
        raise OptionError("center", center, ("midpoint", "mean", None, "a number"))
    if scale_midpoint is not None and center != "midpoint":
        raise OptionError("scale_midpoint", scale_midpoint, hint=f"scale_midpoint is used only with center='midpoint' (center={center!r} was given)")
    frame = pd.DataFrame({x: _numeric(data, x, "x"), y: _numeric(data, y, "y"), outcome: _numeric(data, outcome, "outcome")}, index=data.index)
    if patient:
        frame[patient] = data[patient]
    order = [outcome, x, y] + ([patient] if patient else [])
    keep, dropped = _complete(frame, order, {outcome: f"missing {outcome}", x: f"missing {x}", y: f"missing {y}", patient: f"missing {patient}"})
    used = frame[keep]
    n = len(used)
    if n < 7:
        raise ModelSpecError(f"response_surface() needs more than 6 complete rows (6 coefficients); {n} have {outcome}, {x} and {y}"
                             + (f" and a {patient}" if patient else ""))
    if center == "midpoint":
        c, how = _midpoint(used, x, y, scale_midpoint)
    elif center == "mean":
        c, how = float(np.mean(np.r_[used[x].to_numpy(), used[y].to_numpy()])), "mean of all x and y values analysed"
    elif center is None:
        c, how = 0.0, "not centred"
    else:
        c, how = float(center), "value given"
    xc = used[x].to_numpy() - c
    yc = used[y].to_numpy() - c
    z = used[outcome].to_numpy()
    X = _rsa_design(xc, yc)
    if np.linalg.matrix_rank(X) < 6:
        raise ModelSpecError(
            f"the polynomial terms of {x!r} and {y!r} are collinear in the {n} rows analysed (for instance x always equals y, "
            "or a rating takes fewer than three values); the surface cannot be estimated"
        )
    A = np.array([r for r, _ in _A_ROWS.values()], float)
    notes = []
    model = None
    n_groups = None
    r2 = None
    if patient:
        codes = pd.factorize(used[patient])[0]
        n_groups = int(codes.max() + 1)
        if n_groups == n:
            raise ModelSpecError(
                f"patient={patient!r} has as many groups ({n_groups}) as complete rows: a random intercept of {patient} cannot "
                "be told apart from the residual; fit the single-level surface (patient=None) or give the repeated sessions"
            )
        model = lmm(_ml_formula(), _ml_frame(xc, yc, z, codes), reml=True)
        if model.dropped_terms:
            raise ModelSpecError(f"the polynomial term(s) {_fmt_labels(model.dropped_terms)} could not be estimated (collinear)")
        b = model.fixed["estimate"].to_numpy(float)
        V = model.vcov.to_numpy(float)
        sigma = model.sigma
        a_rows = []
        for (name, (l, desc)) in _A_ROWS.items():
            ct = model.contrast(np.asarray(l, float))
            a_rows.append((ct["estimate"], ct["se"], ct["df"]))
        fixed = model.fixed
        b_rows = list(zip(fixed["estimate"], fixed["se"], fixed["df"]))
        notes += list(model.messages)
    else:
        b, V, s2, res = _ols(X, z)
        sigma = float(np.sqrt(s2))
        r2 = float(1 - (res @ res) / ((z - z.mean()) @ (z - z.mean())))
        dfr = n - 6
        b_rows = [(b[i], np.sqrt(V[i, i]), dfr) for i in range(6)]
        a_rows = [(float(l @ b), float(np.sqrt(l @ V @ l)), dfr) for l in A]
    nl = np.real(_nonlinear(b.astype(complex)))
    G = _nonlinear_gradient(b)
    nl_se = np.sqrt(np.einsum("ij,jk,ik->i", G, V, G))
    undefined = ~np.isfinite(nl)
    # exactly degenerate surfaces, up to rounding (an exact fit gives 4 b3 b5 - b4^2 = 1e-16)
    if abs(4 * b[3] * b[5] - b[4] ** 2) <= 1e-9 * (abs(4 * b[3] * b[5]) + b[4] ** 2):
        undefined[[0, 1, 2, 3, 5]] = True
    if abs(b[4]) <= 1e-9 * (abs(b[3]) + abs(b[5])):
        undefined[3:] = True
    if undefined[:3].any():
        notes.append("no stationary point: 4 b3 b5 - b4^2 = 0 (the quadratic part is degenerate)")
    if undefined[3:].any() and not undefined[:3].any():
        notes.append("principal axes undefined: b4 = 0 (the axes run parallel to the x and y axes)")
    nl = np.where(undefined, np.nan, nl)
    nl_se = np.where(undefined | ~np.isfinite(nl_se), np.nan, nl_se)

    rows = []
    descs = [
        "intercept (surface height at x = y = centre)", f"x: {x}", f"y: {y}", f"x^2", f"x * y", f"y^2",
    ]
    for name, desc, (est, se, df) in zip(_B_NAMES, descs, b_rows):
        rows.append(("coefficient", name, desc, est, se, df))
    for (name, (_, desc)), (est, se, df) in zip(_A_ROWS.items(), a_rows):
        rows.append(("surface", name, desc, est, se, df))
    for name, est, se in zip(_NONLIN, nl, nl_se):
        rows.append(("stationary point" if name in ("X0", "Y0", "Z0") else "principal axis", name, _NONLIN_DESC[name], est, se, np.inf))
    tab = pd.DataFrame(rows, columns=["kind", "parameter", "description", "estimate", "se", "df"])
    tab = tab[["parameter", "kind", "description", "estimate", "se", "df"]]
    est, se, df = (tab[c].to_numpy(float) for c in ("estimate", "se", "df"))
    with np.errstate(invalid="ignore", divide="ignore"):
        st = est / se
    crit = np.array([_crit(level, d) for d in df])
    tab["statistic"] = st
    tab["p"] = [_pval(s, d) if np.isfinite(s) else np.nan for s, d in zip(st, df)]
    tab["ci_low"] = est - crit * se
    tab["ci_high"] = est + crit * se

    # bootstrap ---------------------------------------------------------------------------------
    n_failed = 0
    if n_boot:
        rng = np.random.default_rng(seed)
        draws = np.full((n_boot, len(tab)), np.nan)
        if patient:
            groups = [np.flatnonzero(codes == g) for g in range(n_groups)]
            for i in range(n_boot):
                pick = rng.integers(0, n_groups, n_groups)
                idx = np.concatenate([groups[g] for g in pick])
                cl = np.concatenate([np.full(len(groups[g]), k) for k, g in enumerate(pick)])
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        m = lmm(_ml_formula(), _ml_frame(xc[idx], yc[idx], z[idx], cl), reml=True, df_method="z")
                    if m.dropped_terms:
                        raise ModelSpecError("collinear resample")
                    draws[i] = _all_params(m.fixed["estimate"].to_numpy(float))
                except AllianceStatsError:
                    n_failed += 1
        else:
            for i in range(n_boot):
                idx = rng.integers(0, n, n)
                bb, _, rank, _ = np.linalg.lstsq(X[idx], z[idx], rcond=None)
                if rank < 6:
                    n_failed += 1
                    continue
                draws[i] = _all_params(bb)
        if n_failed:
            notes.append(f"{n_failed} of {n_boot} bootstrap resamples could not be fitted (collinear) and were left out")
        q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo_hi = np.nanpercentile(draws, q, axis=0)
        ok = np.isfinite(draws).sum(axis=0)
        undefined_share = 1 - ok / max(n_boot - n_failed, 1)
        lo_hi[:, ok < 2] = np.nan
        tab["boot_ci_low"], tab["boot_ci_high"] = lo_hi[0], lo_hi[1]
        bad = [p for p, s in zip(tab["parameter"], undefined_share) if s > 0]
        if bad:
            notes.append(f"{_fmt_labels(bad)} undefined in some bootstrap resamples (left out of their intervals)")
    else:
        tab["boot_ci_low"] = np.nan
        tab["boot_ci_high"] = np.nan

    Bq = np.array([[b[3], b[4] / 2], [b[4] / 2, b[5]]])
    ev = np.linalg.eigvalsh(Bq)[::-1]
    if np.all(ev < 0):
        shape = "dome (the stationary point is a maximum)"
    elif np.all(ev > 0):
        shape = "bowl (the stationary point is a minimum)"
    elif np.all(ev != 0):
        shape = "saddle"
    else:
        shape = "ridge or trough (one eigenvalue is zero)"
    return ResponseSurfaceResult(
        table=tab.reset_index(drop=True), x=x, y=y, outcome=outcome, patient=patient, center=c, center_method=how,
        n_obs=n, n_dropped=int(dropped.sum()), dropped=dropped, level=level, n_boot=int(n_boot), n_boot_failed=n_failed,
        seed=seed, sigma=float(sigma), r2=r2, shape=shape, eigenvalues=ev, vcov=pd.DataFrame(V, index=_B_NAMES, columns=_B_NAMES),
        model=model, n_groups=n_groups,
        data=used.copy(), notes=notes,
    )


# ------------------------------------------------------------------------------------ APIM
def _roles_of(data, role, roles):
    present = pd.unique(data[role].dropna())
    if roles is None:
        try:
            found = sorted(present)
        except TypeError:
            found = sorted(present, key=str)
    else:
        found = list(roles)
        if len(found) != 2 or len(set(found)) != 2:
            raise OptionError("roles", roles, hint="give the two roles in the order to report them, e.g. roles=('client', 'therapist')")
        extra = [r for r in present if r not in found]
        if extra:
            raise ModelSpecError(f"role column {role!r} holds role(s) {_fmt_labels(extra)} besides roles={tuple(found)!r}; keep only the two roles' rows")
    if len(found) != 2:
        raise ModelSpecError(
            f"role column {role!r} holds {len(found)} role(s) ({_fmt_labels(found)}); a model of distinguishable dyads needs "
            "exactly two (e.g. 'client' and 'therapist'). Keep the rows of the two roles, e.g. "
            f"data[data[{role!r}].isin(['client', 'therapist'])]"
        )
    return found


def _dyad_key(data, dyad):
    cols = [dyad] if isinstance(dyad, str) else list(dyad)
    if not cols:
        raise OptionError("dyad", dyad, hint="name the column(s) that identify a dyad")
    return cols


def _dyad_ids(data, keys) -> pd.DataFrame:
    """The dyad key column(s) as IDs by the package's ID rule (1, 1.0 and "1 " are one dyad)."""
    return pd.DataFrame({k: ids_to_text(data[k])[0] for k in keys}, index=data.index)


def _check_unique(data, cols, role):
    dup = data.duplicated(cols + [role], keep=False) & data[role].notna()
    if dup.any():
        keys = data.loc[dup, cols].drop_duplicates()
        shown = [tuple(r) if len(cols) > 1 else r[0] for r in keys.itertuples(index=False)]
        raise ModelSpecError(
            f"dyad(s) {_fmt_labels(shown)} have more than one row for the same role in {role!r} (rows "
            f"{_fmt_labels(data.index[dup].tolist())}); the model needs one row per person. For repeated sessions, "
            "aggregate per person first or make the session part of the dyad key"
        )


def partner_scores(data: pd.DataFrame, *, dyad, role: str, columns, suffix: str = "_partner") -> pd.DataFrame:
    """Put the partner's value of each of ``columns`` next to each person's own (pairing by dyad).

    ``data`` is long: one row per person, with the dyad key (a column, or several, e.g.
    ``["patient", "session"]`` for session ratings), the role (e.g. ``rater`` with values
    ``client``/``therapist``) and the scores. For each column ``c`` the copy returned has
    ``c + suffix``: the value of ``c`` in the row of the other role of the same dyad (missing
    when the dyad has no row of the other role). Every row is returned, in its order; the dyads
    without both roles are counted and named by an :class:`~alliance_stats.IncompleteGroupsWarning`
    (its ``groups`` lists them).

    The dyad key follows the package's ID rule (:func:`alliance_stats.validation.id_text`):
    dyad ``1``, ``1.0`` and ``"1 "`` are the same dyad.

    Examples
    --------
    >>> import pandas as pd, alliance_stats as als
    >>> d = pd.DataFrame({"dyad": [1, 1, 2, 2], "rater": ["client", "therapist", "client", "therapist"],
    ...                   "wai": [4.0, 3.5, 2.0, None]})
    >>> als.partner_scores(d, dyad="dyad", role="rater", columns="wai")["wai_partner"].tolist()
    [3.5, 4.0, nan, 2.0]
    """
    require_frame(data, "data of partner_scores()")
    keys = _dyad_key(data, dyad)
    cols = [columns] if isinstance(columns, str) else list(columns)
    if not cols:
        raise OptionError("columns", columns, hint="name at least one column to pair")
    _check_columns(data, role=role, **{f"dyad[{i}]" if len(keys) > 1 else "dyad": k for i, k in enumerate(keys)})
    _check_columns(data, **{f"columns[{i}]": c for i, c in enumerate(cols)})
    clash = [f"{c}{suffix}" for c in cols if f"{c}{suffix}" in data.columns]
    if clash:
        raise ColumnError(f"the data already has column(s) {_fmt_labels(clash)}; rename them or pass another suffix=")
    roles = _roles_of(data, role, None)
    key = _dyad_ids(data, keys)
    _check_unique(key.assign(**{role: data[role]}), keys, role)
    out = data.copy()
    other = {roles[0]: roles[1], roles[1]: roles[0]}
    src = key.assign(**{role: data[role]}, **{f"{c}{suffix}": data[c] for c in cols}).dropna(subset=[role])
    src[role] = src[role].map(other)
    left = key.assign(**{role: data[role]}).reset_index(drop=True)
    merged = left.merge(src, on=keys + [role], how="left", validate="many_to_one")
    for c in cols:
        out[f"{c}{suffix}"] = merged[f"{c}{suffix}"].to_numpy()
    has = key.assign(**{role: data[role]}).dropna(subset=[role]).groupby(keys, dropna=False, sort=False)[role].nunique()
    single = [k for k, n in has.items() if n < 2]
    if single:
        new = [f"{c}{suffix}" for c in cols]
        warnings.warn(IncompleteGroupsWarning(
            f"partner_scores(): {len(single)} of {len(has)} dyad(s) have no row of the other role ({_fmt_labels(single)}); "
            f"{_fmt_labels(new)} {'is' if len(new) == 1 else 'are'} missing in their rows",
            function="partner_scores", reason="the dyad has no row of the other role", groups=single, columns=new,
        ), stacklevel=user_stacklevel())
    return out


class _DyadLik:
    """Gaussian (RE)ML of the two-intercept APIM with an unstructured 2 x 2 residual covariance
    within dyad: V = sigma^2 [[1, rho r], [rho r, r^2]] for a complete dyad (role 0 first),
    sigma^2 or sigma^2 r^2 for a dyad with one member left. sigma^2 is profiled out."""

    def __init__(self, y, X, role, pair0, pair1, single0, single1, reml):
        self.y, self.X, self.reml = y, X, reml
        self.p0, self.p1, self.s0, self.s1 = pair0, pair1, single0, single1
        self.N, self.p = X.shape

    def _whiten(self, r, rho):
        y, X = self.y, self.X
        c = np.sqrt(1 - rho**2)
        ys = [y[self.p0], (y[self.p1] / r - rho * y[self.p0]) / c, y[self.s0], y[self.s1] / r]
        Xs = [X[self.p0], (X[self.p1] / r - rho * X[self.p0]) / c, X[self.s0], X[self.s1] / r]
        logdet = len(self.p0) * (2 * np.log(r) + np.log(1 - rho**2)) + len(self.s1) * 2 * np.log(r)
        return np.concatenate(ys), np.vstack(Xs), logdet

    def solve(self, r, rho):
        ys, Xs, logdet = self._whiten(r, rho)
        q, R = np.linalg.qr(Xs)
        beta = np.linalg.solve(R, q.T @ ys)
        res = ys - Xs @ beta
        rss = float(res @ res)
        logdet_x = 2 * float(np.sum(np.log(np.abs(np.diag(R)))))
        Rinv = np.linalg.inv(R)
        return dict(beta=beta, rss=rss, logdet=logdet, logdet_x=logdet_x, xtx_inv=Rinv @ Rinv.T)

    def profiled(self, r, rho):
        """-2 (RE)ML log-likelihood with sigma^2 profiled out, and sigma^2."""
        s = self.solve(r, rho)
        m = self.N - self.p if self.reml else self.N
        s2 = s["rss"] / m
        dev = m * np.log(2 * np.pi * s2) + s["logdet"] + m + (s["logdet_x"] if self.reml else 0.0)
        return dev, s2, s

    def full(self, log_r, rho, log_sigma):
        """(RE)ML log-likelihood at given sigma (for the Hessian of the variance parameters)."""
        r = np.exp(log_r)
        s = self.solve(r, rho)
        s2 = np.exp(2 * log_sigma)
        m = self.N - self.p if self.reml else self.N
        dev = m * np.log(2 * np.pi * s2) + s["logdet"] + s["rss"] / s2 + (s["logdet_x"] if self.reml else 0.0)
        return -0.5 * dev

    def fit(self, rho_fixed=None):
        if rho_fixed is None:
            f = lambda t: self.profiled(np.exp(t[0]), np.tanh(t[1]))[0]
            start = self._start()
            best = None
            for meth in ("BFGS", "Nelder-Mead"):
                opt = optimize.minimize(f, start, method=meth, options={"gtol": 1e-10} if meth == "BFGS" else {"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
                if best is None or opt.fun < best.fun:
                    best = opt
                start = best.x
            opt = optimize.minimize(f, best.x, method="BFGS", options={"gtol": 1e-11})
            t = opt.x if opt.fun <= best.fun else best.x
            r, rho = float(np.exp(t[0])), float(np.tanh(t[1]))
        else:
            f = lambda t: self.profiled(np.exp(t), rho_fixed)[0]
            opt = optimize.minimize_scalar(f, bounds=(-12, 12), method="bounded", options={"xatol": 1e-12})
            r, rho = float(np.exp(opt.x)), float(rho_fixed)
        dev, s2, s = self.profiled(r, rho)
        return dict(r=r, rho=rho, sigma=float(np.sqrt(s2)), dev=float(dev), llf=float(-dev / 2), **s)

    def _start(self):
        b = np.linalg.lstsq(self.X, self.y, rcond=None)[0]
        e = self.y - self.X @ b
        s0 = np.std(np.r_[e[self.p0], e[self.s0]]) or 1.0
        s1 = np.std(np.r_[e[self.p1], e[self.s1]]) or 1.0
        rho = np.corrcoef(e[self.p0], e[self.p1])[0, 1] if len(self.p0) > 2 else 0.0
        return np.array([np.log(s1 / s0), np.arctanh(np.clip(rho, -0.9, 0.9))])


def _hessian(f, x, h=1e-3):
    """Central-difference Hessian with one Richardson step (error O(h^4))."""
    x = np.asarray(x, float)
    k = len(x)

    def H(step):
        out = np.empty((k, k))
        f0 = f(x)
        for i in range(k):
            ei = np.zeros(k)
            ei[i] = step
            out[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / step**2
            for j in range(i):
                ej = np.zeros(k)
                ej[j] = step
                out[i, j] = out[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * step**2)
        return out

    return (4 * H(h / 2) - H(h)) / 3


@dataclass(repr=False)
class APIMResult(Result):
    """The actor-partner interdependence model for distinguishable dyads (see :func:`alliance_stats.apim`).

    Attributes
    ----------
    effects : DataFrame
        ``role, effect, term, estimate, se, df, t, p, ci_low, ci_high``: intercept, actor and
        partner effect of each role (``term`` as nlme names the coefficient), and with
        ``k_ratio=True`` the ratio k = partner / actor per role (delta-method SE, normal CI).
    variance : DataFrame
        ``parameter, estimate, ci_low, ci_high``: residual SD of each role, their ratio and the
        residual correlation within dyad (intervals as nlme's ``intervals()``).
    tests : DataFrame
        ``test, statistic, df1, df2, p``: equal actor effects across roles, equal partner
        effects, both at once (F tests as nlme's ``anova(fit, L = ...)``), and the
        likelihood-ratio test of no residual correlation.
    vcov : DataFrame
        Covariance of the fixed effects.
    """

    effects: pd.DataFrame
    variance: pd.DataFrame
    tests: pd.DataFrame
    vcov: pd.DataFrame
    roles: list
    actor: str
    partner: str
    outcome: str
    dyad: str
    role: str
    method: str
    llf: float
    n_obs: int
    n_dyads: int
    n_complete_dyads: int
    n_single_dyads: int
    single_dyads: list
    n_dropped: int
    dropped: pd.Series
    level: float
    apvar: np.ndarray = field(default=None)
    notes: list = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        """The effects table (alias of ``effects``)."""
        return self.effects

    @property
    def aic(self) -> float:
        return -2 * self.llf + 2 * (len(self.vcov) + 3)

    title = "Actor-partner interdependence model"

    def _headline(self) -> str:
        single = f", {self.n_single_dyads} with one member" if self.n_single_dyads else ""
        return (f"distinguishable dyads ({self.method}): {self.outcome} on actor {self.actor} and partner {self.partner}, roles "
                f"{self.roles[0]!r} and {self.roles[1]!r}; n = {self.n_obs} persons in {self.n_dyads} dyads{single}; "
                f"logLik {self.llf:.3f}")

    def to_frame(self) -> pd.DataFrame:
        """The effects table (a copy)."""
        return self.effects.copy()

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        """APA-style table of the actor and partner effects per role."""
        digits = 2 if digits is None else int(digits)
        lv = int(round(self.level * 100))
        e = self.effects
        return pd.DataFrame({
            "Role": e["role"], "Effect": e["effect"],
            "b": [fmt_num(v, digits) for v in e["estimate"]], "SE": [fmt_num(v, digits) for v in e["se"]],
            "t": [fmt_num(v, digits) for v in e["t"]], "p": [apa_p(v) for v in e["p"]],
            f"{lv}% CI": [fmt_ci(a, b, digits) for a, b in zip(e["ci_low"], e["ci_high"])],
        })

    def _tables(self) -> list:
        return [("Residual (co)variance", format_frame(self.variance, kinds={"estimate": "num", "ci_low": "num", "ci_high": "num"})),
                ("Tests", format_frame(self.tests))]

    def _notes(self) -> list:
        return list(self.notes)

    def accounting(self) -> pd.DataFrame:
        """Rows (persons) used and rows left out, by reason."""
        return accounting_frame("rows", self.n_obs, list(self.dropped.items()))

    def methods(self) -> str:
        """A methods-section paragraph describing the analysis as run."""
        r0, r1 = self.roles
        s = (f"We estimated the actor-partner interdependence model for distinguishable dyads (Kenny, Kashy & Cook, 2006) "
             f"with {self.outcome} as the outcome, each person's own {self.actor} as the actor predictor and the partner's "
             f"{self.partner} as the partner predictor: a two-intercept model with a separate intercept, actor and partner "
             f"effect for {r0}s and {r1}s and an unstructured residual covariance within dyad (separate residual variances "
             f"for the two roles and their correlation), estimated by {'restricted maximum likelihood' if self.method == 'REML' else 'maximum likelihood'} "
             "with alliance-stats (equivalent to nlme::gls with corSymm and varIdent). "
             f"The analysis used {self.n_obs} persons in {self.n_dyads} dyads"
             + (f", {self.n_single_dyads} of them with one member only" if self.n_single_dyads else "") + ". "
             f"Equality of the actor and of the partner effects across roles was tested with F tests on {int(self.tests['df2'].iloc[0])} "
             "denominator df, and the residual correlation with a likelihood-ratio test.")
        if (self.effects["effect"] == "k (partner/actor)").any():
            s += " The ratio k of the partner to the actor effect (Kenny & Ledermann, 2010) is reported with a delta-method CI."
        if self.n_dropped:
            s += f" {self.n_dropped} rows were left out (" + "; ".join(f"{k}: {v}" for k, v in self.dropped.items()) + ")."
        return s

    def plot(self, *, ax=None, kind: str = "paths"):
        """``kind="paths"``: the APIM path diagram (actor and partner paths of both roles with
        their estimates; solid when p < .05) ; ``kind="effects"``: actor and partner effects per
        role with CIs. Returns the Axes."""
        import matplotlib.pyplot as plt

        if kind not in ("paths", "effects"):
            raise OptionError("kind", kind, ("paths", "effects"))
        e = self.effects[self.effects["effect"].isin(["actor", "partner"])]
        if kind == "effects":
            if ax is None:
                _, ax = plt.subplots(figsize=(5, 2.6))
            yv = np.arange(len(e))[::-1]
            colors = ["#0072B2" if r == self.roles[0] else "#D55E00" for r in e["role"]]
            for yy, (_, r), col in zip(yv, e.iterrows(), colors):
                ax.errorbar(r["estimate"], yy, xerr=[[r["estimate"] - r["ci_low"]], [r["ci_high"] - r["estimate"]]], fmt="o", color=col, capsize=3)
            ax.axvline(0, color="0.6", lw=0.8, ls="--")
            ax.set_yticks(yv)
            ax.set_yticklabels([f"{r} {ef}" for r, ef in zip(e["role"], e["effect"])])
            ax.set_xlabel(f"effect on {self.outcome} ({int(round(self.level * 100))}% CI)")
            return ax
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.6))
        ax.set_xlim(0, 11)
        ax.set_ylim(0, 6)
        ax.axis("off")
        pos = {("x", 0): (1.5, 4.6), ("x", 1): (1.5, 1.4), ("y", 0): (8.5, 4.6), ("y", 1): (8.5, 1.4)}
        for (kind_, i), (px, py) in pos.items():
            label = f"{self.roles[i]}\n{self.actor if kind_ == 'x' else self.outcome}"
            ax.text(px, py, label, ha="center", va="center", fontsize=8,
                    bbox=dict(boxstyle="round,pad=0.4", fc="white", ec="#222222"))
        get = e.set_index(["role", "effect"])
        for i, rl in enumerate(self.roles):
            for ef, src in (("actor", i), ("partner", 1 - i)):
                r = get.loc[(rl, ef)]
                (x0, y0), (x1, y1) = pos[("x", src)], pos[("y", i)]
                sig = r["p"] < 0.05
                ax.annotate("", xy=(x1 - 1.1, y1), xytext=(x0 + 1.1, y0),
                            arrowprops=dict(arrowstyle="-|>", color="#222222" if sig else "0.55", lw=1.4 if sig else 1.0, ls="-" if sig else "--"))
                t = 0.5 if ef == "actor" else 0.2
                mx, my = x0 + 1.1 + t * (x1 - x0 - 2.2), y0 + t * (y1 - y0)
                ax.text(mx, my + (0.15 if ef == "actor" else 0), f"{r['estimate']:.2f}{'*' if sig else ''}", ha="center",
                        va="bottom" if ef == "actor" else "center", fontsize=8, bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none"))
        rho = self.variance.set_index("parameter").loc["residual correlation", "estimate"]
        ax.annotate("", xy=(9.75, 1.4), xytext=(9.75, 4.6), arrowprops=dict(arrowstyle="<|-|>", connectionstyle="arc3,rad=-0.4", color="0.4"))
        ax.text(9.95, 3.0, f"r = {rho:.2f}", fontsize=8, ha="left", va="center")
        ax.set_title("APIM: actor (horizontal) and partner (diagonal) effects; * p < .05", fontsize=9)
        return ax


def apim(
    data: pd.DataFrame,
    *,
    actor: str,
    partner: str,
    outcome: str,
    dyad: str,
    role: str,
    roles=None,
    method: str = "REML",
    k_ratio: bool = False,
    level: float = 0.95,
) -> APIMResult:
    """The actor-partner interdependence model (APIM) for distinguishable dyads.

    Fits the two-intercept model (Kenny, Kashy & Cook 2006)
    ``outcome ~ 0 + role + role:actor + role:partner`` with an unstructured 2 x 2 residual
    covariance within dyad (a residual variance per role and their correlation), the model of
    nlme's ``gls(outcome ~ 0 + role + role:actor + role:partner, correlation = corSymm(form =
    ~1 | dyad), weights = varIdent(form = ~1 | role))``, by writing its Gaussian (RE)ML
    likelihood directly. For the client-therapist dyad: does each one's own alliance rating
    (actor effect) and the other's rating (partner effect) go with their outcome, and do the
    effects differ between clients and therapists (Kivlighan, Marmarosh & Hilsenroth 2014)?

    Parameters
    ----------
    data : DataFrame
        Long format, one row per person: dyad, role, own score (actor), the partner's score
        (partner; build it with :func:`partner_scores`), outcome. Not modified.
    actor, partner, outcome, dyad, role : str
        Column names.
    roles : pair, optional
        The two roles in the order to report them (the first is nlme's reference level);
        default sorted.
    method : {"REML", "ML"}
    k_ratio : bool
        Add k = partner / actor per role (Kenny & Ledermann 2010) with a delta-method CI;
        k near 1 suggests a couple (dyad-level) pattern, near 0 an actor-only pattern, near -1 a
        contrast pattern. Unstable when the actor effect is near 0.
    level : float
        Confidence level.

    Returns
    -------
    APIMResult

    Notes
    -----
    Rows missing the outcome, actor or partner score are left out and counted (a partner score
    is missing when the dyad has no row of the other role); a dyad with one member left then
    contributes that member's row with its role's variance, as ``gls(..., na.action = na.omit)``
    does. SEs of the fixed effects are nlme's (for ML fits scaled by N / (N - p), as gls does),
    t and F tests on N - p df; intervals of the variance parameters come from the Hessian of the
    log-likelihood in nlme's parametrization (log SD, log SD ratio, log((1 + r) / (1 - r))).
    Checked against nlme::gls: see ``tests/reference/make_agreement_reference.R``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, alliance_stats as als
    >>> rng = np.random.default_rng(3)
    >>> n = 60
    >>> a_c, a_t = rng.normal(4, 0.6, n), rng.normal(3.8, 0.5, n)
    >>> long = pd.DataFrame({"dyad": np.r_[np.arange(n), np.arange(n)], "rater": ["client"] * n + ["therapist"] * n,
    ...                      "wai": np.r_[a_c, a_t],
    ...                      "outcome": np.r_[2 * a_c + a_t, a_t + 0.5 * a_c] + rng.normal(0, 0.5, 2 * n)})
    >>> long = als.partner_scores(long, dyad="dyad", role="rater", columns="wai")
    >>> res = als.apim(long, actor="wai", partner="wai_partner", outcome="outcome", dyad="dyad", role="rater")
    >>> res.effects[["role", "effect"]].values.tolist()[2:4]
    [['client', 'actor'], ['therapist', 'actor']]
    """
    require_frame(data, "data of apim()")
    if not isinstance(dyad, str):
        raise OptionError("dyad", dyad, hint="apim() takes one dyad column (e.g. a pair ID); for several key columns build one ID first")
    _check_columns(data, actor=actor, partner=partner, outcome=outcome, dyad=dyad, role=role)
    names = {"actor": actor, "partner": partner, "outcome": outcome, "dyad": dyad, "role": role}
    if len(set(names.values())) < 5:
        raise ModelSpecError("actor, partner, outcome, dyad and role must be five different columns; got " + ", ".join(f"{k}={v!r}" for k, v in names.items()))
    if method not in ("REML", "ML"):
        raise OptionError("method", method, ("REML", "ML"))
    level = _check_level(level)
    rl = _roles_of(data, role, roles)
    frame = pd.DataFrame({
        "y": _numeric(data, outcome, "outcome"), "a": _numeric(data, actor, "actor"), "p": _numeric(data, partner, "partner"),
        "dyad": _dyad_ids(data, [dyad])[dyad], "role": data[role],
    }, index=data.index)
    miss_dyad = frame["dyad"].isna()
    _check_unique(frame.loc[~miss_dyad, ["dyad", "role"]].rename(columns={"dyad": dyad, "role": role}), [dyad], role)
    # why rows are left out: missing partner is split into 'the dyad has no row of the other role'
    has_roles = frame.dropna(subset=["role", "dyad"]).groupby("dyad")["role"].nunique()
    lone = frame["dyad"].map(has_roles).fillna(0) < 2
    frame["_partner_row"] = np.where(lone & frame["p"].isna(), np.nan, 1.0)
    labels = {"role": f"no role in {role!r}", "dyad": f"no dyad in {dyad!r}", "y": f"missing {outcome}", "a": f"missing {actor}",
              "_partner_row": f"no partner row (the dyad has only one role)", "p": f"missing {partner}"}
    keep, dropped = _complete(frame, ["role", "dyad", "y", "a", "_partner_row", "p"], labels)
    used = frame[keep].copy()
    if used.empty:
        raise ModelSpecError(f"no row has {outcome}, {actor}, {partner}, {dyad} and {role} all present")
    r0 = (used["role"] == rl[0]).to_numpy()
    for lab in rl:
        if (used["role"] == lab).sum() < 4:
            raise ModelSpecError(f"role {lab!r} has {(used['role'] == lab).sum()} complete row(s); at least 4 are needed for its intercept, actor and partner effects and variance")
    # order: dyad by dyad, role 0 first
    pos = {k: i for i, k in enumerate(pd.unique(used["dyad"]))}
    used["_d"] = used["dyad"].map(pos)
    used["_r"] = np.where(r0, 0, 1)
    used = used.sort_values(["_d", "_r"], kind="stable")
    size = used.groupby("_d")["_r"].transform("size").to_numpy()
    rr = used["_r"].to_numpy()
    idx = np.arange(len(used))
    pair0, pair1 = idx[(size == 2) & (rr == 0)], idx[(size == 2) & (rr == 1)]
    single0, single1 = idx[(size == 1) & (rr == 0)], idx[(size == 1) & (rr == 1)]
    if len(pair0) < 3:
        raise ModelSpecError(f"only {len(pair0)} dyad(s) have both members with complete data; the residual correlation within dyad needs at least 3")
    ind0 = (rr == 0).astype(float)
    ind1 = 1 - ind0
    a, pt, yv = (used[c].to_numpy(float) for c in ("a", "p", "y"))
    X = np.column_stack([ind0, ind1, ind0 * a, ind1 * a, ind0 * pt, ind1 * pt])
    terms = [f"role{rl[0]}", f"role{rl[1]}", f"role{rl[0]}:{actor}", f"role{rl[1]}:{actor}", f"role{rl[0]}:{partner}", f"role{rl[1]}:{partner}"]
    if np.linalg.matrix_rank(X) < 6:
        raise ModelSpecError(f"the actor and partner scores are collinear within a role (e.g. {actor} or {partner} does not vary, "
                             "or the partner score equals the actor score); the model cannot be estimated")
    reml = method == "REML"
    lik = _DyadLik(yv, X, rr, pair0, pair1, single0, single1, reml)
    fit = lik.fit()
    N, p = X.shape
    dfr = N - p
    V = fit["sigma"] ** 2 * fit["xtx_inv"] * ((N - reml * p) / (N - p))
    beta = fit["beta"]
    se = np.sqrt(np.diag(V))
    tval = beta / se
    crit = _crit(level, dfr)
    effect_names = ["intercept", "intercept", "actor", "actor", "partner", "partner"]
    eff = pd.DataFrame({
        "role": [rl[0], rl[1]] * 3, "effect": effect_names, "term": terms, "estimate": beta, "se": se, "df": float(dfr),
        "t": tval, "p": [_pval(t, dfr) for t in tval], "ci_low": beta - crit * se, "ci_high": beta + crit * se,
    })
    notes = []
    if k_ratio:
        zc = _crit(level, np.inf)
        rows = []
        for i, lab in enumerate(rl):
            ia, ip = 2 + i, 4 + i
            k = beta[ip] / beta[ia]
            g = np.zeros(6)
            g[ia], g[ip] = -beta[ip] / beta[ia] ** 2, 1 / beta[ia]
            sk = float(np.sqrt(g @ V @ g))
            rows.append({"role": lab, "effect": "k (partner/actor)", "term": f"k[{lab}]", "estimate": k, "se": sk, "df": np.inf,
                         "t": k / sk, "p": _pval(k / sk, np.inf), "ci_low": k - zc * sk, "ci_high": k + zc * sk})
            if eff.loc[ia, "p"] >= 0.05:
                notes.append(f"the actor effect of {lab!r} is not different from 0 (p {apa_p(eff.loc[ia, 'p'], eq=True)}): k for {lab!r} is not interpretable (Kenny & Ledermann 2010)")
        eff = pd.concat([eff, pd.DataFrame(rows)], ignore_index=True)

    # variance parameters: Hessian in nlme's parametrization (log((1+r)/(1-r)), log ratio, log sigma)
    def ll(t):
        rho = np.tanh(t[0] / 2)
        return lik.full(t[1], rho, t[2])

    theta = np.array([np.log((1 + fit["rho"]) / (1 - fit["rho"])), np.log(fit["r"]), np.log(fit["sigma"])])
    Hm = _hessian(ll, theta)
    try:
        apvar = np.linalg.inv(-Hm)
        ok = np.all(np.linalg.eigvalsh(-Hm) > 0)
    except np.linalg.LinAlgError:
        ok = False
    zc = _crit(level, np.inf)
    if ok:
        sd = np.sqrt(np.diag(apvar))
        s1 = float(np.sqrt(apvar[1, 1] + apvar[2, 2] + 2 * apvar[1, 2]))
        ci = lambda v, s, f: (f(v - zc * s), f(v + zc * s))
        var_rows = [
            (f"residual SD {rl[0]}", fit["sigma"], *ci(theta[2], sd[2], np.exp)),
            (f"residual SD {rl[1]}", fit["sigma"] * fit["r"], *ci(theta[1] + theta[2], s1, np.exp)),
            (f"SD ratio {rl[1]}/{rl[0]}", fit["r"], *ci(theta[1], sd[1], np.exp)),
            ("residual correlation", fit["rho"], *ci(theta[0], sd[0], lambda u: np.tanh(u / 2))),
        ]
    else:
        apvar = None
        notes.append("the Hessian of the variance parameters is not positive definite: no intervals for them")
        var_rows = [(f"residual SD {rl[0]}", fit["sigma"], np.nan, np.nan), (f"residual SD {rl[1]}", fit["sigma"] * fit["r"], np.nan, np.nan),
                    (f"SD ratio {rl[1]}/{rl[0]}", fit["r"], np.nan, np.nan), ("residual correlation", fit["rho"], np.nan, np.nan)]
    variance = pd.DataFrame(var_rows, columns=["parameter", "estimate", "ci_low", "ci_high"])

    def ftest(Ls):
        L = np.atleast_2d(np.asarray(Ls, float))
        d = L @ beta
        F = float(d @ np.linalg.solve(L @ V @ L.T, d)) / L.shape[0]
        return F, L.shape[0], float(stats.f.sf(F, L.shape[0], dfr))

    La = [0, 0, 1, -1, 0, 0]
    Lp = [0, 0, 0, 0, 1, -1]
    tests = []
    for name, L in ((f"equal actor effects ({rl[0]} = {rl[1]})", [La]), (f"equal partner effects ({rl[0]} = {rl[1]})", [Lp]),
                    ("equal actor and partner effects", [La, Lp])):
        F, d1, pv = ftest(L)
        tests.append({"test": name, "statistic": F, "df1": float(d1), "df2": float(dfr), "p": pv})
    fit0 = lik.fit(rho_fixed=0.0)
    lr = 2 * (fit["llf"] - fit0["llf"])
    tests.append({"test": "no residual correlation (LRT)", "statistic": lr, "df1": 1.0, "df2": np.inf, "p": float(stats.chi2.sf(max(lr, 0.0), 1))})
    tests = pd.DataFrame(tests)

    n_dyads = int(used["_d"].nunique())
    singles = used.loc[used.groupby("_d")["_r"].transform("size") == 1, "dyad"].tolist()
    n_single = len(singles)
    if n_single:
        notes.append(f"{n_single} dyad(s) have one member in the analysis ({_fmt_labels(singles)}); each contributes that member's row only")
    return APIMResult(
        effects=eff, variance=variance, tests=tests, vcov=pd.DataFrame(V, index=terms, columns=terms), roles=list(rl),
        actor=actor, partner=partner, outcome=outcome, dyad=dyad, role=role, method=method, llf=fit["llf"], n_obs=N,
        n_dyads=n_dyads, n_complete_dyads=len(pair0), n_single_dyads=n_single, single_dyads=singles,
        n_dropped=int(dropped.sum()), dropped=dropped, level=level, apvar=apvar, notes=notes,
    )
