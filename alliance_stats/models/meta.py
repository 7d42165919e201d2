"""Meta-analysis of alliance-outcome correlations (and any effect size with a variance)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..exceptions import (
    ArgumentError,
    ConvergenceWarning,
    DependentEffectsWarning,
    InsufficientDataError,
    MetaAnalysisError,
    ModelSpecError,
    OptionError,
    user_stacklevel,
)
from ..exceptions import _fmt_labels, _show
from ..validation import check_number, check_option, check_whole_number, need_columns, numeric_column, require_frame
from ._meta_fit import MAX_ITER, METHODS, TESTS, fit_three_level, fit_uni
from .._format import apa_p, fmt_ci, fmt_df, fmt_num, fmt_pct
from .._result import ACCOUNTING_COLUMNS, Result, accounting_frame

__all__ = ["meta_analysis", "MetaResult", "aggregate_effects"]


def _terms(moderators, data: pd.DataFrame) -> list[str]:
    """Moderator column names from a list or a string 'a + b' (names only, nothing evaluated)."""
    if isinstance(moderators, str):
        terms = [t.strip() for t in moderators.lstrip("~").split("+") if t.strip()]
    else:
        terms = list(moderators)
    if not terms:
        raise OptionError("moderators", moderators, hint="name at least one column, e.g. ['year'] or 'year + rater'")
    for t in terms:
        need_columns(data, {"moderator": t})
    return terms


def _design(data: pd.DataFrame, terms: list[str]) -> tuple[np.ndarray, list[str]]:
    """Intercept plus moderators; text columns become treatment-coded dummies (levels sorted,
    the first is the reference, as in R)."""
    cols = [np.ones(len(data))]
    names = ["intercept"]
    for t in terms:
        s = data[t]
        if pd.api.types.is_bool_dtype(s):
            cols.append(s.astype(float).to_numpy())
            names.append(f"{t}[True]")
        elif pd.api.types.is_numeric_dtype(s):
            cols.append(s.to_numpy(dtype=float))
            names.append(t)
        else:
            levels = sorted(s.astype(str).unique()) if not isinstance(s.dtype, pd.CategoricalDtype) else [str(c) for c in s.cat.categories if (s == c).any()]
            if len(levels) < 2:
                raise ModelSpecError(f"moderator {t!r} has a single level ({levels}); it cannot explain anything")
            for lev in levels[1:]:
                cols.append((s.astype(str) == lev).to_numpy(dtype=float))
                names.append(f"{t}[{lev}]")
    return np.column_stack(cols), names


@dataclass(repr=False)
class MetaResult(Result):
    """Result of :func:`meta_analysis`. Plain data: no refitting happens behind attributes.

    Attributes
    ----------
    estimate : float
        Pooled r (correlations) or pooled effect (generic input); for a meta-regression, the
        intercept.
    ci, pi : tuple of float
        Confidence and prediction interval of the pooled value (same scale as ``estimate``).
    z, se_z : float
        Pooled value on the analysis scale (Fisher z for correlations) and its standard error.
    statistic, df, pval : float
        Test of the pooled value: z (df = inf) or Knapp-Hartung t (df = k - p).
    tau2, tau, i2, h2 : float
        Between-study variance (total over levels for three-level models), its root, I^2 (%)
        and H^2.
    q, q_df, q_p : float
        Cochran's Q (residual heterogeneity), its df and p-value.
    k : int
        Number of effect sizes analysed.
    table : DataFrame
        One row per effect size: label, (cluster), r, n, yi, vi, weight (%), ci_low, ci_high.
    coefficients : DataFrame
        ``term, estimate, se, statistic, pval, ci_low, ci_high`` (analysis scale).
    variance_components : DataFrame
        ``level, variance, sd, i2``.
    qm, qm_df, qm_p : float
        Omnibus test of the moderators (None without moderators).
    excluded : DataFrame
        Effect sizes left out with ``on_invalid='drop'``, with the reason.
    converged : bool
        Whether every iterative step behind the numbers reached its criterion: the tau^2 (or
        variance-component) estimation, the refit without moderators behind ``r2``, and for a
        trim-and-fill result the filling loop. False comes with a :class:`ConvergenceWarning`.
    iterations : int or None
        Iterations of the tau^2 estimation (Fisher scoring for REML/ML and the three-level
        model, whose best start is reported; the root search for PM); None for the closed
        forms (DL, HE, FE).
    k0, side, fill_iterations : int, str, int or None
        Trim-and-fill results only: studies filled, the side filled, iterations of the filling.
    """

    estimate: float
    ci: tuple
    pi: tuple
    z: float
    se_z: float
    statistic: float
    df: float
    pval: float
    tau2: float
    tau: float
    i2: float
    h2: float
    q: float
    q_df: int
    q_p: float
    k: int
    table: pd.DataFrame
    coefficients: pd.DataFrame
    variance_components: pd.DataFrame
    method: str
    test: str
    level: float
    measure: str
    qm: float | None = None
    qm_df: tuple | None = None
    qm_p: float | None = None
    r2: float | None = None
    three_level: bool = False
    excluded: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["label", "reason"]))
    k0: int | None = None
    side: str | None = None
    converged: bool = True
    iterations: int | None = None
    fill_iterations: int | None = None
    _fit: dict = field(default=None, repr=False)
    _inputs: dict = field(default=None, repr=False)

    # ------------------------------------------------------------------ derived analyses
    def _refit(self, y, v, X=None, **kw):
        X = np.ones((len(y), 1)) if X is None else X
        args = dict(method=self.method, test=self.test, level=self.level, max_iter=self._inputs["max_iter"])
        args.update(kw)
        return fit_uni(y, v, X, **args)

    def _check_simple(self, what):
        if self.three_level or self._inputs["X"].shape[1] > 1:
            raise MetaAnalysisError(f"{what} is defined for random-effects models without moderators or clusters; "
                                    "fit meta_analysis() without moderators= and cluster= for it")

    def egger(self, model: str = "rma") -> pd.DataFrame:
        """Egger's regression test for funnel-plot asymmetry.

        ``model="rma"`` (metafor's ``regtest`` default): the standard error is added as a
        moderator to the same random-effects model; ``model="lm"``: the classic weighted
        regression of the effects on their standard errors with a multiplicative dispersion
        (Egger et al. 1997). Returns ``statistic, df, pval, limit_estimate, model, converged``;
        the limit estimate is the intercept (the effect as the standard error goes to 0);
        ``converged`` is that of the model's tau^2 estimation.
        """
        self._check_simple("Egger's test")
        check_option("model", model, ("rma", "lm"))
        y, v = self._inputs["y"], self._inputs["v"]
        X = np.column_stack([np.ones_like(y), np.sqrt(v)])
        if model == "rma":
            f = self._refit(y, v, X)
        else:
            f = fit_uni(y, v, X, method="FE", test="knha", level=self.level)
        return pd.DataFrame(
            [{"statistic": f["stat"][1], "df": f["df"], "pval": f["pval"][1], "limit_estimate": f["b"][0], "model": model,
              "converged": f["converged"]}]
        )

    def trim_and_fill(self, side: str | None = None, estimator: str = "L0", max_iter: int = 100) -> "MetaResult":
        """Duval & Tweedie's trim-and-fill: the model refitted with imputed mirror-image studies.

        The side with missing studies is chosen from the sign of the slope of the effects on
        their standard errors (as metafor does) unless given. Returns a new result whose
        ``k0`` is the number of filled studies, ``side`` the side they were filled on,
        ``fill_iterations`` the iterations of the filling, and whose ``table`` marks the
        filled studies with ``filled = True``. When k0 has not settled after ``max_iter``
        iterations, the last k0 is used, ``converged`` is False and a
        :class:`ConvergenceWarning` is issued.
        """
        self._check_simple("trim-and-fill")
        check_option("estimator", estimator, ("L0", "R0"))
        if side is not None:
            check_option("side", side, ("left", "right", None))
        max_iter = check_whole_number("max_iter", max_iter, lo=1)
        y0, v0 = self._inputs["y"], self._inputs["v"]
        fits_converged = True
        if side is None:
            f = self._refit(y0, v0, np.column_stack([np.ones_like(y0), np.sqrt(v0)]), test="z")
            fits_converged &= f["converged"]
            side = "right" if f["b"][1] < 0 else "left"
        sgn = -1.0 if side == "right" else 1.0
        order = np.argsort(sgn * y0, kind="stable")
        y, v = sgn * y0[order], v0[order]
        k = len(y)
        k0, prev, it, settled = 0, -1, 0, True
        while k0 != prev:
            if it == max_iter:
                warnings.warn(
                    f"trim-and-fill: the number of missing studies did not settle in {max_iter} iteration(s) "
                    f"(the last two estimates: {prev}, {k0}); k0 = {prev}, the one the last pooled estimate "
                    "was trimmed to, is used (result.converged is False). Raise max_iter, or try estimator='R0'",
                    ConvergenceWarning,
                    stacklevel=user_stacklevel(),
                )
                k0, settled = prev, False
                break
            prev = k0
            it += 1
            f = self._refit(y[: k - k0], v[: k - k0], test="z")
            fits_converged &= f["converged"]
            beta = f["b"][0]
            c = y - beta
            ranks = stats.rankdata(np.abs(c), method="ordinal")
            signed = np.sign(c) * ranks
            if estimator == "L0":
                sr = signed[signed > 0].sum()
                k0 = (4 * sr - k * (k + 1)) / (2 * k - 1)
            else:
                k0 = (k - np.max(-signed[signed < 0])) - 1 if np.any(signed < 0) else k - 1
            k0 = int(max(0, np.round(k0)))
        if k0 > 0:
            fill_y = sgn * (2 * beta - y[k - k0 :])
            fill_v = v[k - k0 :]
            yy = np.concatenate([y0, fill_y])
            vv = np.concatenate([v0, fill_v])
            labels = list(self.table["label"]) + [f"Filled {i + 1}" for i in range(k0)]
            filled = np.r_[np.zeros(len(y0), bool), np.ones(k0, bool)]
        else:
            yy, vv, labels, filled = y0, v0, list(self.table["label"]), np.zeros(len(y0), bool)
        res = _build(yy, vv, np.ones((len(yy), 1)), ["intercept"], labels, None, self.method, "z", self.level,
                     self.measure, n=None, max_iter=self._inputs["max_iter"])
        res.table["filled"] = filled
        res.k0, res.side, res.fill_iterations = k0, side, it
        res.converged = bool(res.converged and fits_converged and settled)
        return res

    def leave_one_out(self) -> pd.DataFrame:
        """The model refitted with each effect size left out in turn.

        Returns ``left_out, estimate, ci_low, ci_high, z, se_z, pval, tau2, i2, q, converged``
        (estimate and CI back-transformed for correlations; ``converged`` of each refit's tau^2).
        """
        self._check_simple("leave-one-out")
        y, v = self._inputs["y"], self._inputs["v"]
        rows = []
        for i, lab in enumerate(self.table["label"]):
            keep = np.arange(len(y)) != i
            f = self._refit(y[keep], v[keep])
            tr = self._back
            rows.append(
                {"left_out": lab, "estimate": tr(f["b"][0]), "ci_low": tr(f["ci_lb"][0]), "ci_high": tr(f["ci_ub"][0]),
                 "z": f["b"][0], "se_z": f["se"][0], "pval": f["pval"][0], "tau2": f["tau2"], "i2": f["I2"], "q": f["QE"],
                 "converged": f["converged"]}
            )
        return pd.DataFrame(rows)

    def _back(self, x):
        return np.tanh(x) if self.measure == "r" else x

    def subgroups(self, by) -> pd.DataFrame:
        """The same model fitted within each subgroup of effect sizes.

        Each level of ``by`` gets its own intercept-only model with this result's estimator,
        test and level (as ``rma(yi, vi, subset = by == level)`` in metafor). Subgroups are
        in the order of their first effect size.

        Parameters
        ----------
        by : str or array-like
            A column of the data given to :func:`meta_analysis` (e.g. ``"rater"``), or one
            group label per effect size of :attr:`table`.

        Returns
        -------
        DataFrame
            One row per subgroup: ``group, k, estimate, ci_low, ci_high`` (back-transformed
            for correlations), ``z, se_z, statistic, df, pval`` (analysis scale),
            ``pi_low, pi_high, tau2, i2, q, q_df, q_p, converged``. A subgroup of a single
            effect size is listed with ``k = 1`` and missing pooled values (nothing to pool).
        """
        self._check_simple("a subgroup analysis")
        groups = self._group_labels(by)
        y, v = self._inputs["y"], self._inputs["v"]
        rows = []
        for g in pd.unique(groups):
            keep = groups == g
            row = {"group": g, "k": int(keep.sum())}
            if keep.sum() >= 2:
                f = self._refit(y[keep], v[keep])
                half = f["crit"] * np.sqrt(f["se"][0] ** 2 + f["tau2"])
                b = f["b"][0]
                row.update(estimate=float(self._back(b)), ci_low=float(self._back(f["ci_lb"][0])),
                           ci_high=float(self._back(f["ci_ub"][0])), z=float(b), se_z=float(f["se"][0]),
                           statistic=float(f["stat"][0]), df=float(f["df"]), pval=float(f["pval"][0]),
                           pi_low=float(self._back(b - half)), pi_high=float(self._back(b + half)),
                           tau2=float(f["tau2"]), i2=float(f["I2"]), q=float(f["QE"]), q_df=int(f["df_q"]),
                           q_p=float(f["QEp"]), converged=bool(f["converged"]))
            rows.append(row)
        cols = ["group", "k", "estimate", "ci_low", "ci_high", "z", "se_z", "statistic", "df", "pval", "pi_low",
                "pi_high", "tau2", "i2", "q", "q_df", "q_p", "converged"]
        return pd.DataFrame(rows).reindex(columns=cols)

    def _group_labels(self, by) -> np.ndarray:
        """One label (str) per effect size of ``table`` from a column name or an array."""
        if isinstance(by, str):
            data = self._inputs["data"]
            if data is None:
                raise ArgumentError(f"by={by!r} names a column, but this result keeps no data (meta_analysis() was given "
                                    "arrays, or it is a trim-and-fill result); pass the group labels themselves, one "
                                    "per row of result.table")
            need_columns(data, {"by": by})
            s = data[by]
            if s.isna().any():
                where = [self.table["label"].iloc[i] for i in np.flatnonzero(s.isna().to_numpy())]
                raise MetaAnalysisError(f"by={by!r} is missing for effect size(s) {_fmt_labels(where, 5)}; "
                                        "give each a group (e.g. 'unknown')")
            return s.astype(str).to_numpy()
        labels = np.asarray(by, dtype=object).ravel()
        if len(labels) != self.k:
            raise ArgumentError(f"by= holds {len(labels)} labels for {self.k} effect sizes; give one per row of result.table")
        return labels.astype(str)

    @property
    def data(self) -> pd.DataFrame | None:
        """The rows of the data given to :func:`meta_analysis` that were analysed, in the order
        of :attr:`table` (a copy), or None when arrays were given."""
        d = self._inputs["data"] if self._inputs else None
        return None if d is None else d.copy()

    # ------------------------------------------------------------------ presentation
    title = "Meta-analysis"

    def _model_name(self) -> str:
        if self.three_level:
            return "three-level random-effects model"
        if self.qm is not None:
            return "mixed-effects meta-regression"
        return "fixed-effect model" if self.method == "FE" else "random-effects model"

    def _n_total(self) -> int | None:
        if self.measure != "r" or "n" not in self.table or not self.table["n"].notna().all():
            return None
        t = self.table if "filled" not in self.table else self.table[~self.table["filled"]]
        return int(round(t["n"].sum()))

    def _headline(self) -> str:
        lv = int(round(self.level * 100))
        what = "r" if self.measure == "r" else "estimate"
        lz = self.measure != "r"
        k = f"k = {self.k}" + (f" in {self.table['cluster'].nunique()} clusters" if self.three_level else "")
        if self.qm is not None:
            stat = "F" if self.test == "knha" else "QM"
            return (f"{self._model_name()} ({self.method}), {k}; moderators {stat} = {fmt_num(self.qm)}, "
                    f"p {apa_p(self.qm_p, eq=True)}")
        pi = f", {lv}% PI {fmt_ci(*self.pi, leading_zero=lz)}" if self.method != "FE" else ""
        return (f"{self._model_name()} ({self.method}), {k}; pooled {what} = {fmt_num(self.estimate, leading_zero=lz)}, "
                f"{lv}% CI {fmt_ci(*self.ci, leading_zero=lz)}{pi}; I² = {fmt_pct(self.i2)}%")

    def to_frame(self) -> pd.DataFrame:
        """The coefficients (analysis scale: Fisher z for correlations): ``term, estimate, se,
        statistic, pval, ci_low, ci_high``; for an intercept-only model of correlations also
        the pooled ``r, r_ci_low, r_ci_high``."""
        out = self.coefficients.copy()
        if self.measure == "r" and self.qm is None:
            out.insert(1, "r", self.estimate)
            out.insert(2, "r_ci_low", self.ci[0])
            out.insert(3, "r_ci_high", self.ci[1])
        return out

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        """APA-style coefficient table (estimates to 2 decimals, p as '< .001', CIs in brackets)."""
        d = 2 if digits is None else check_whole_number("digits", digits, lo=0)
        lv = int(round(self.level * 100))
        c = self.coefficients
        rows = []
        for _, r in c.iterrows():
            rows.append({
                "Term": r["term"],
                "Estimate": fmt_num(r["estimate"], d),
                "SE": fmt_num(r["se"], d),
                ("t" if self.test == "knha" else "z"): fmt_num(r["statistic"], d),
                "p": apa_p(r["pval"]),
                f"{lv}% CI": fmt_ci(r["ci_low"], r["ci_high"], d),
            })
        out = pd.DataFrame(rows)
        if self.measure == "r" and self.qm is None:
            out.insert(1, "r", fmt_num(self.estimate, d, leading_zero=False))
            out.insert(2, f"r {lv}% CI", fmt_ci(*self.ci, d, leading_zero=False))
        return out

    def _tables(self) -> list[tuple[str, pd.DataFrame]]:
        row = {"tau2": fmt_num(self.tau2, 4), "tau": fmt_num(self.tau, 4), "I2 (%)": fmt_pct(self.i2)}
        if not self.three_level:
            row["H2"] = fmt_num(self.h2)
        row.update({"Q": fmt_num(self.q), "df": fmt_df(self.q_df), "p": apa_p(self.q_p)})
        out = [("Heterogeneity", pd.DataFrame([row]))]
        if self.three_level:
            vc = pd.DataFrame({"Level": self.variance_components["level"],
                               "Variance": [fmt_num(x, 4) for x in self.variance_components["variance"]],
                               "SD": [fmt_num(x, 4) for x in self.variance_components["sd"]],
                               "I2 (%)": [fmt_pct(x) for x in self.variance_components["i2"]]})
            out.append(("Variance components", vc))
        if self.qm is not None:
            stat = "F" if self.test == "knha" else "QM"
            df2 = "" if self.qm_df[1] is None else f", {fmt_df(self.qm_df[1])}"
            row = {"Test": f"{stat}({self.qm_df[0]}{df2})", "Value": fmt_num(self.qm), "p": apa_p(self.qm_p)}
            if self.r2 is not None:
                row["R2 (%)"] = fmt_pct(self.r2)
            out.append(("Moderators", pd.DataFrame([row])))
        return out

    def _notes(self) -> list[str]:
        notes = super()._notes()
        if self.k0 is not None:
            notes.append(f"trim-and-fill: {self.k0} effect size(s) filled on the {self.side} side")
        if not self.converged:
            notes.append("an iterative estimation did not converge (result.converged is False)")
        return notes

    def methods(self) -> str:
        """A methods-and-results paragraph: model and estimator, k and N, the pooled value with
        its CI, heterogeneity (tau2, I2, Q), the prediction interval, clusters, moderators and
        trim-and-fill where used, and the effect sizes left out."""
        lv = int(round(self.level * 100))
        est_names = {"REML": "restricted maximum likelihood (REML)", "ML": "maximum likelihood (ML)",
                     "DL": "the DerSimonian-Laird (DL) estimator", "PM": "the Paule-Mandel (PM) estimator",
                     "HE": "the Hedges (HE) estimator", "FE": None}
        is_r = self.measure == "r"
        lz = not is_r
        k_obs = self.k - (self.k0 or 0)
        n = self._n_total()
        what = "correlations" if is_r else "effect sizes"
        s = [f"A {self._model_name()} was fitted to k = {k_obs} {what}"
             + (f" (summed n = {n:,})" if n is not None else "")
             + ((" analysed as Fisher's z (variance 1/(n - 3))" + (", coefficients on the z scale" if self.qm is not None
                                                                   else " and back-transformed to r for reporting"))
               if is_r else "")]
        if self.three_level:
            nc = self.table["cluster"].nunique()
            s[0] += (f", with effect sizes nested in {nc} clusters (three levels: sampling error, effects within "
                     f"clusters, clusters; as metafor's rma.mv with random = ~ 1 | cluster/effect)")
        if self.method != "FE":
            s[0] += f"; the between-study variance was estimated by {est_names[self.method]}"
        test = ("Knapp-Hartung-adjusted t tests and CIs" if self.test == "knha" else "Wald z tests")
        s[0] += f", with {test}."
        if self.qm is not None:
            terms = [t for t in self.coefficients["term"] if t != "intercept"]
            stat = "F" if self.test == "knha" else "QM"
            df2 = "" if self.qm_df[1] is None else f", {fmt_df(self.qm_df[1])}"
            s.append(f"The omnibus test of the moderators ({', '.join(terms)}) gave {stat}({self.qm_df[0]}{df2}) = "
                     f"{fmt_num(self.qm)}, p {apa_p(self.qm_p, eq=True)}"
                     + (f"; they accounted for R² = {fmt_pct(self.r2)}% of the between-study variance"
                        if self.r2 is not None else "") + ".")
        else:
            name = "pooled correlation was r" if is_r else "pooled effect was"
            stat = "t" if self.test == "knha" else "z"
            dfs = "" if np.isinf(self.df) else f"({fmt_df(self.df)})"
            s.append(f"The {name} = {fmt_num(self.estimate, leading_zero=lz)}, {lv}% CI {fmt_ci(*self.ci, leading_zero=lz)}, "
                     f"{stat}{dfs} = {fmt_num(self.statistic)}, p {apa_p(self.pval, eq=True)}.")
        het = (f"{'Residual heterogeneity' if self.qm is not None else 'Heterogeneity'}: τ² = {fmt_num(self.tau2, 3)}, "
               f"I² = {fmt_pct(self.i2)}%, Q({self.q_df}) = {fmt_num(self.q)}, p {apa_p(self.q_p, eq=True)}")
        if self.three_level:
            het += "; " + ", ".join(f"variance {r['level']} = {fmt_num(r['variance'], 3)} (I² = {fmt_pct(r['i2'])}%)"
                                    for _, r in self.variance_components.iterrows())
        s.append(het + ".")
        if self.method != "FE" and self.qm is None:
            s.append(f"The {lv}% prediction interval, the range of true effects expected in a new study, was "
                     f"{fmt_ci(*self.pi, leading_zero=lz)}.")
        if self.k0 is not None:
            s.append(f"Trim-and-fill (Duval & Tweedie, 2000) imputed {self.k0} effect size(s) on the {self.side} side; "
                     "the values above include them.")
        if len(self.excluded):
            reasons = self.excluded["reason"].value_counts()
            s.append(f"{len(self.excluded)} effect size(s) were left out ("
                     + "; ".join(f"{reason}: {c}" for reason, c in reasons.items()) + ").")
        if not self.converged:
            s.append("Note: an iterative estimation did not reach its convergence criterion.")
        return " ".join(s)

    def accounting(self) -> pd.DataFrame:
        """Effect sizes analysed and left out (``on_invalid='drop'``), by reason; effect sizes
        imputed by trim-and-fill are counted on a row of their own."""
        reasons = self.excluded["reason"].value_counts(sort=False) if len(self.excluded) else {}
        more = [pd.DataFrame([["effect sizes", "used", "imputed by trim-and-fill", int(self.k0)]],
                             columns=list(ACCOUNTING_COLUMNS))] if self.k0 else []
        return accounting_frame("effect sizes", self.k - (self.k0 or 0), dict(reasons), more=more)

    def forest_plot(self, *, ax=None, **kw):
        """Forest plot; see :func:`alliance_stats.forest_plot`."""
        from ..plots import forest_plot

        return forest_plot(self, ax=ax, **kw)

    def funnel_plot(self, *, ax=None, **kw):
        """Funnel plot; see :func:`alliance_stats.funnel_plot`."""
        from ..plots import funnel_plot

        return funnel_plot(self, ax=ax, **kw)

    def plot(self, *, ax=None, kind: str = "forest", **kw):
        """The forest plot (``kind="funnel"``: the funnel plot)."""
        check_option("kind", kind, ("forest", "funnel"))
        return self.forest_plot(ax=ax, **kw) if kind == "forest" else self.funnel_plot(ax=ax, **kw)


def _build(y, v, X, names, labels, clusters, method, test, level, measure, n, excluded=None, data=None,
           max_iter=MAX_ITER):
    """Fit and wrap a MetaResult."""
    back = np.tanh if measure == "r" else (lambda x: x)
    if clusters is not None:
        codes, uniq = pd.factorize(pd.Series(clusters), sort=True)
        if len(uniq) == len(y):
            raise ModelSpecError("every cluster holds one effect size: a three-level model cannot separate the levels; drop cluster=")
        f = fit_three_level(y, v, X, codes, reml=method == "REML", level=level, test=test, max_iter=max_iter)
        vc = pd.DataFrame({"level": ["between clusters", "within clusters"], "variance": f["sigma2"], "sd": np.sqrt(f["sigma2"]), "i2": f["I2_levels"]})
        h2 = np.nan
    else:
        f = fit_uni(y, v, X, method=method, test=test, level=level, max_iter=max_iter)
        vc = pd.DataFrame({"level": ["between studies"], "variance": [f["tau2"]], "sd": [np.sqrt(f["tau2"])], "i2": [f["I2"]]})
        h2 = f["H2"]
    b0, se0 = f["b"][0], f["se"][0]
    pi_half = f["crit"] * np.sqrt(se0**2 + f["tau2"])
    w = f["weights"] if f["weights"] is not None else 1 / (v + f["tau2"])
    wpct = 100 * w / w.sum()
    crit = stats.norm.ppf(1 - (1 - level) / 2)
    table = pd.DataFrame({"label": labels})
    if clusters is not None:
        table["cluster"] = list(clusters)
    if measure == "r":
        table["r"] = np.tanh(y)
        table["n"] = n
    table["yi"] = y
    table["vi"] = v
    table["weight"] = wpct
    table["ci_low"] = back(y - crit * np.sqrt(v))
    table["ci_high"] = back(y + crit * np.sqrt(v))
    coefs = pd.DataFrame({"term": names, "estimate": f["b"], "se": f["se"], "statistic": f["stat"], "pval": f["pval"], "ci_low": f["ci_lb"], "ci_high": f["ci_ub"]})
    r2, converged = None, f["converged"]
    if X.shape[1] > 1 and clusters is None and method != "FE":
        f_re = fit_uni(y, v, np.ones((len(y), 1)), method=method, test=test, max_iter=max_iter)
        t_re, converged = f_re["tau2"], converged and f_re["converged"]
        r2 = max(0.0, 100 * (t_re - f["tau2"]) / t_re) if t_re > 0 else 0.0
    res = MetaResult(
        estimate=float(back(b0)), ci=(float(back(f["ci_lb"][0])), float(back(f["ci_ub"][0]))),
        pi=(float(back(b0 - pi_half)), float(back(b0 + pi_half))), z=float(b0), se_z=float(se0),
        statistic=float(f["stat"][0]), df=float(f["df"]), pval=float(f["pval"][0]), tau2=float(f["tau2"]),
        tau=float(np.sqrt(f["tau2"])), i2=float(f["I2"]), h2=float(h2), q=float(f["QE"]), q_df=int(f["df_q"]),
        q_p=float(f["QEp"]), k=int(len(y)), table=table, coefficients=coefs, variance_components=vc,
        method=method, test=test, level=level, measure=measure, qm=f.get("QM"), qm_df=f.get("QMdf"),
        qm_p=f.get("QMp"), r2=r2, three_level=clusters is not None,
        excluded=excluded if excluded is not None else pd.DataFrame(columns=["label", "reason"]),
        converged=bool(converged), iterations=f["iterations"],
        _fit=f, _inputs={"y": y, "v": v, "X": X, "data": data, "max_iter": max_iter},
    )
    return res


def meta_analysis(
    data: pd.DataFrame | None = None,
    *,
    r=None,
    n=None,
    yi=None,
    vi=None,
    study=None,
    cluster=None,
    method: str = "REML",
    test: str = "z",
    moderators=None,
    level: float = 0.95,
    on_invalid: str = "raise",
    max_iter: int = MAX_ITER,
) -> MetaResult:
    """Random-effects meta-analysis, meta-regression and three-level models.

    Parameters
    ----------
    data : DataFrame, optional
        One row per effect size; then ``r``, ``n``, ``yi``, ``vi``, ``study``, ``cluster`` are
        column names. Without ``data`` they are arrays.
    r, n : column names or arrays
        Correlations and sample sizes: analysed as Fisher z, ``vi = 1 / (n - 3)``, and
        back-transformed (``estimate``, ``ci``, ``pi`` are correlations).
    yi, vi : column names or arrays
        Generic effect sizes and their sampling variances, analysed as given.
    study : column name or array, optional
        Labels of the effect sizes (for tables, plots and error messages). When a label
        repeats and ``cluster`` is not given, the effects of that study are pooled as if
        independent and a :class:`~alliance_stats.DependentEffectsWarning` says how many
        studies contribute several effects.
    cluster : column name or array, optional
        Effect sizes nested in clusters (usually studies): fits the three-level model
        (like metafor's ``rma.mv(yi, vi, random = ~ 1 | cluster/effect)``) with two
        variance components, REML or ML. The alternative is one effect per study from
        :func:`aggregate_effects`.
    method : {"REML", "ML", "DL", "PM", "HE", "FE"}
        Estimator of the between-study variance (FE: fixed-effect / equal-effects model).
    test : {"z", "knha"}
        Wald z test, or the Knapp-Hartung adjustment with t (and F) tests on k - p df.
    moderators : list of column names or str, optional
        ``["year", "rater"]`` or ``"year + rater"``: a mixed-effects meta-regression with the
        omnibus test QM. Text columns are dummy coded with their (sorted) first level as the
        reference, as in R. Names only: no expressions are evaluated.
    level : float
        Confidence level of the CIs and the prediction interval.
    on_invalid : {"raise", "drop"}
        What to do with |r| >= 1, n <= 3, a non-positive variance or a missing value: raise
        :class:`~alliance_stats.MetaAnalysisError` naming the study, or leave it out and list
        it in ``result.excluded``.
    max_iter : int
        Most iterations of the tau^2 estimation (REML/ML Fisher scoring, PM root search, each
        start of the three-level model; metafor's ``control = list(maxiter = )``). A fit that
        has not converged by then warns :class:`~alliance_stats.ConvergenceWarning` and has
        ``converged = False``.

    Returns
    -------
    MetaResult

    Notes
    -----
    Every quantity (pooled estimate, SE, tau^2, I^2, H^2, Q and its p for every method; the
    Knapp-Hartung CI; the prediction interval; Egger's test; trim-and-fill; leave-one-out;
    meta-regression coefficients and QM; the three-level variance components) is tested
    against R's metafor 3.8 within 1e-5 relative on public datasets (dat.molloy2014,
    dat.mcdaniel1994, dat.konstantopoulos2011) and the synthetic alliance table; see
    tests/reference/make_metafor_reference.R.

    Examples
    --------
    The sample table has several effect sizes per study: a three-level model, or one
    effect per study first.

    >>> import alliance_stats as als
    >>> effects = als.load_sample("meta")
    >>> res = als.meta_analysis(effects, r="r", n="n", study="study", cluster="study")
    >>> round(res.estimate, 3), res.converged
    (0.281, True)
    >>> per_study = als.aggregate_effects(effects, by="study", r="r", n="n")
    >>> round(als.meta_analysis(per_study, r="r", n="n", study="study").estimate, 3)
    0.283
    """
    check_option("method", method, METHODS)
    check_option("test", test, TESTS)
    check_option("on_invalid", on_invalid, ("raise", "drop"))
    level = check_number("level", level, 0, 1, lo_open=True, hi_open=True)
    max_iter = check_whole_number("max_iter", max_iter, lo=1)
    corr = r is not None or n is not None
    if corr and (yi is not None or vi is not None):
        raise ArgumentError("give either r and n (correlations) or yi and vi (generic effects), not both")
    if corr and (r is None or n is None):
        raise ArgumentError("correlations need both r= and n=")
    if not corr and (yi is None or vi is None):
        raise ArgumentError("give r= and n= (correlations) or yi= and vi= (effect sizes and their variances)")

    if data is not None:
        require_frame(data)
        need_columns(data, {role: col for role, col in dict(r=r, n=n, yi=yi, vi=vi, study=study, cluster=cluster).items()
                            if col is not None})
        df = data.reset_index(drop=True)
        get = lambda c: None if c is None else df[c]  # noqa: E731
    else:
        given = {role: len(np.atleast_1d(x)) for role, x in dict(r=r, n=n, yi=yi, vi=vi, study=study, cluster=cluster).items()
                 if x is not None}
        if len(set(given.values())) != 1:
            raise ArgumentError("the arrays given have different lengths ("
                                + ", ".join(f"{role}: {k}" for role, k in given.items())
                                + "); give one value per effect size in each, or pass data= and column names")
        df = None
        get = lambda c: None if c is None else pd.Series(np.atleast_1d(c))  # noqa: E731
    labels = get(study)
    k_all = len(get(r) if corr else get(yi))
    labels = labels.astype(str).tolist() if labels is not None else [f"Study {i + 1}" for i in range(k_all)]
    clusters = get(cluster)

    problems: list[tuple[int, str]] = []
    if corr:
        rr = pd.to_numeric(get(r), errors="coerce").to_numpy(dtype=float)
        nn = pd.to_numeric(get(n), errors="coerce").to_numpy(dtype=float)
        for i in range(k_all):
            if np.isnan(rr[i]) or np.isnan(nn[i]):
                problems.append((i, "missing r or n"))
            elif np.isinf(rr[i]) or np.isinf(nn[i]):
                problems.append((i, "r or n is infinite"))
            elif abs(rr[i]) >= 1:
                problems.append((i, f"|r| = {abs(rr[i]):g} is not below 1"))
            elif nn[i] <= 3:
                problems.append((i, f"n = {_show(nn[i])} is not above 3"))
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.arctanh(rr)
            v = 1.0 / (nn - 3.0)
    else:
        y = pd.to_numeric(get(yi), errors="coerce").to_numpy(dtype=float)
        v = pd.to_numeric(get(vi), errors="coerce").to_numpy(dtype=float)
        nn = None
        for i in range(k_all):
            if np.isnan(y[i]) or np.isnan(v[i]):
                problems.append((i, "missing yi or vi"))
            elif np.isinf(y[i]) or np.isinf(v[i]):
                problems.append((i, "yi or vi is infinite"))
            elif v[i] <= 0:
                problems.append((i, f"variance {v[i]:g} is not positive"))
    if clusters is not None:
        for i in np.flatnonzero(clusters.isna().to_numpy()):
            problems.append((int(i), "missing cluster"))
    mod_df = df if df is not None else None
    if moderators is not None:
        if mod_df is None:
            raise ArgumentError("moderators= needs data= (moderators are column names)")
        terms = _terms(moderators, mod_df)
        for t in terms:
            for i in np.flatnonzero(mod_df[t].isna().to_numpy()):
                problems.append((int(i), f"missing moderator {t!r}"))
    excluded = pd.DataFrame(columns=["label", "reason"])
    if problems:
        if on_invalid == "raise":
            detail = "; ".join(f"{labels[i]!r}: {why}" for i, why in problems[:8])
            more = f"; ... ({len(problems) - 8} more)" if len(problems) > 8 else ""
            raise MetaAnalysisError(
                f"{len(problems)} invalid effect size(s): {detail}{more}. Correct them, or pass "
                "on_invalid='drop' to leave them out (they are then listed in result.excluded)."
            )
        bad = sorted({i for i, _ in problems})
        why = {}
        for i, w in problems:
            why.setdefault(i, w)
        excluded = pd.DataFrame({"label": [labels[i] for i in bad], "reason": [why[i] for i in bad]})
        keep = np.setdiff1d(np.arange(k_all), bad)
    else:
        keep = np.arange(k_all)
    y, v = y[keep], v[keep]
    labels = [labels[i] for i in keep]
    if nn is not None:
        nn = nn[keep]
    if clusters is not None:
        clusters = clusters.iloc[keep].tolist()
    if moderators is not None:
        X, names = _design(mod_df.iloc[keep].reset_index(drop=True), terms)
    else:
        X, names = np.ones((len(y), 1)), ["intercept"]
    if len(y) < 2:
        raise InsufficientDataError(f"a meta-analysis needs at least 2 effect sizes; {len(y)} left"
                                    + (f" after leaving out {len(excluded)} invalid one(s)" if len(excluded) else ""))
    if clusters is not None:
        check_option("method", method, ("REML", "ML"), hint="the three-level model (cluster=) is fitted by REML or ML only")
    elif study is not None:
        _warn_dependent(labels, study if data is not None else None)
    return _build(y, v, X, names, labels, clusters, method, test, level, "r" if corr else "generic", nn,
                  excluded=excluded, data=None if mod_df is None else mod_df.iloc[keep].reset_index(drop=True),
                  max_iter=max_iter)


def _warn_dependent(labels: list, study_column) -> None:
    """DependentEffectsWarning when study labels repeat (several effects of a study pooled as if
    independent)."""
    counts = pd.Series(labels).value_counts(sort=False)
    multi = counts[counts > 1]
    if multi.empty:
        return
    cl = f"cluster={study_column!r}" if study_column is not None else "cluster= (the study labels)"
    agg = f"by={study_column!r}" if study_column is not None else "by=<the study column>"
    warnings.warn(
        f"{len(multi)} of {len(counts)} studies contribute more than one effect size ({int(multi.sum())} of the "
        f"{len(labels)} effect sizes; e.g. {_fmt_labels(multi.index.tolist(), 3)}). They are pooled as if "
        f"independent, which makes the standard error and CI of the pooled effect too narrow. Pass {cl} for a "
        f"three-level model, or combine each study's effects first with als.aggregate_effects(data, {agg}, "
        "r=..., n=...). If the labels name different studies, make them distinct.",
        DependentEffectsWarning,
        stacklevel=user_stacklevel(),
    )


def aggregate_effects(data: pd.DataFrame, *, by: str, r: str, n: str, r_between: float = 0.5, method: str = "borenstein") -> pd.DataFrame:
    """Combine dependent correlations within each study into one effect size.

    Parameters
    ----------
    data : DataFrame
        One row per effect size. Not modified.
    by : str
        Study column.
    r, n : str
        Correlation and sample-size columns (analysed as Fisher z, vi = 1 / (n - 3)).
    r_between : float
        Assumed correlation between effect sizes of the same study.
    method : {"borenstein", "gls"}
        ``borenstein``: the mean z with variance (1/m^2)(sum v_i + sum_{i != j} rho sqrt(v_i v_j))
        (Borenstein, Hedges, Higgins & Rothstein 2009, ch. 24). ``gls``: the inverse-variance
        weighted mean under the same compound-symmetric covariance, as metafor's
        ``aggregate(..., struct = "CS")``.

    Returns
    -------
    DataFrame
        One row per study: ``study``, ``k`` (effects combined), ``yi`` (Fisher z), ``vi``,
        ``r`` (back-transformed) and ``n`` (the effective n = 3 + 1/vi, so that
        ``meta_analysis(r="r", n="n")`` uses exactly vi), plus every other column that is
        constant within the study.
    """
    require_frame(data)
    need_columns(data, {"by": by, "r": r, "n": n})
    r_between = check_number("r_between", r_between, -1, 1, lo_open=True, hi_open=True)
    check_option("method", method, ("borenstein", "gls"))
    no_study = data[by].isna().to_numpy()
    if no_study.any():
        raise MetaAnalysisError(f"{by!r} is missing at rows {_fmt_labels(data.index[no_study].tolist())}; give every "
                                "effect size its study (those rows would otherwise be left out)")
    rr = numeric_column(data, r).to_numpy()
    nn = numeric_column(data, n).to_numpy()
    bad = np.flatnonzero(~(np.abs(rr) < 1) | ~(nn > 3))
    if len(bad):
        raise MetaAnalysisError(
            f"invalid effect size(s) in {by!r} " + ", ".join(repr(_show(data[by].iloc[i])) for i in bad[:8])
            + ": need |r| < 1 and n > 3"
        )
    rows = []
    others = [c for c in data.columns if c not in (by, r, n)]
    for key, g in data.reset_index(drop=True).groupby(by, sort=False):
        pos = g.index.to_numpy()
        z = np.arctanh(rr[pos])
        vv = 1 / (nn[pos] - 3)
        m = len(z)
        S = r_between * np.sqrt(np.outer(vv, vv))
        np.fill_diagonal(S, vv)
        if m > 1 and r_between <= -1 / (m - 1):
            raise MetaAnalysisError(
                f"r_between={r_between:g} is not a possible correlation among the {m} effect sizes of study "
                f"{_show(key)}: with {m} effects it must be above {-1 / (m - 1):.3g}"
            )
        if method == "borenstein":
            yi, vi = z.mean(), S.sum() / m**2
        else:
            Si = np.linalg.inv(S)
            vi = 1 / Si.sum()
            yi = vi * (Si.sum(axis=0) @ z)
        row = {"study": key, "k": m, "yi": yi, "vi": vi, "r": np.tanh(yi), "n": 3 + 1 / vi}
        for c in others:
            if g[c].nunique(dropna=False) == 1:
                row[c] = g[c].iloc[0]
        rows.append(row)
    out = pd.DataFrame(rows)
    keep = [c for c in out.columns if c in ("study", "k", "yi", "vi", "r", "n") or out[c].notna().all()]
    return out[keep]
