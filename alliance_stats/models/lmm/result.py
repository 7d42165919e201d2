"""Stage 5 of a linear mixed model (lme4's ``mkMerMod``): the fitted model as a result object,
and likelihood-ratio comparison of fitted models."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..._format import apa_p, fmt_ci, fmt_df, fmt_num, format_frame
from ..._result import Result, accounting_frame
from ...exceptions import (AllianceStatsWarning, ArgumentError, ColumnError, ModelSpecError, OptionError, _fmt_labels,
                           user_stacklevel)
from ...validation import ids_to_text, require_frame
from .design import Design, group_labels, join_keys, lazy_frames
from .kenward_roger import ddf_L
from .nested import NestedEngine
from .optimize import OptSummary


def _bool_options(**options) -> None:
    for name, value in options.items():
        if not isinstance(value, (bool, np.bool_)):
            raise OptionError(name, value, (True, False))


def variance_rows(S: np.ndarray, blocks, names, group: str) -> list[dict]:
    """Rows of the random-effects table for one grouping factor: a variance and SD per term, and a
    covariance and correlation per pair of terms within a block of the covariance matrix ``S``."""
    rows, off = [], 0
    for b in blocks:
        for i in range(off, off + b):
            rows.append({"group": group, "term1": names[i], "term2": None, "variance": S[i, i], "sd": np.sqrt(S[i, i]), "corr": np.nan})
        for j in range(off, off + b):
            for i in range(j + 1, off + b):
                cor = S[i, j] / np.sqrt(S[i, i] * S[j, j]) if S[i, i] > 0 and S[j, j] > 0 else np.nan
                rows.append({"group": group, "term1": names[j], "term2": names[i], "variance": S[i, j], "sd": np.nan, "corr": cor})
        off += b
    return rows


def random_part(design: Design, bs: list, data: pd.DataFrame, hint: str, allow_new_levels: bool = False) -> np.ndarray:
    """Z b for new data: each level's random effects ``bs`` (groups x terms) matched to the rows of
    ``data`` by their group IDs. IDs of another type than in the fit (text for numbers) are matched
    as text. Groups not seen in the fit (or a missing group ID) are refused by name, as lme4's
    ``predict(newdata)``; with ``allow_new_levels=True`` (lme4's ``allow.new.levels = TRUE``) they
    get a random effect of zero at that level and a warning counts the rows and groups."""
    if not isinstance(allow_new_levels, (bool, np.bool_)):
        raise OptionError("allow_new_levels", allow_new_levels, (True, False))
    eta = np.zeros(len(data))
    new = []  # (grouping factor, rows, labels of the groups not seen)
    for li, (inf, b) in enumerate(zip(design.level_info, bs)):
        missing = [c for c in inf["cols"] if c not in data.columns]
        if missing:
            raise ColumnError(f"new data lacks grouping column(s) {_fmt_labels(missing)}; pass include_random=False for {hint}")
        Zn = design.random_matrix(li, data)
        ids = data[list(inf["cols"])]
        key = join_keys(ids) if len(inf["cols"]) > 1 else ids.iloc[:, 0]
        labels = pd.Index(group_labels(inf, design.data))
        try:
            pos = labels.get_indexer(key.astype(labels.dtype) if labels.dtype != object else key)
        except (TypeError, ValueError):
            pos = np.full(len(key), -1)
        todo = pos < 0
        if todo.any():  # IDs of another type than in the fit (0 for "0", "1 " for 1): match by the ID rule's text
            as_text = pd.Index(ids_to_text(pd.Series(np.asarray(labels, object)))[0])
            pos[todo] = as_text.get_indexer(ids_to_text(pd.Series(np.asarray(key, object)[todo]))[0])
        pos[ids.isna().any(axis=1).to_numpy()] = -1  # a missing ID is no group of the fit
        unseen = pos < 0
        if unseen.any():
            new.append((inf["name"], unseen, pd.unique(np.asarray(key, object)[unseen])))
        bb = np.where((pos >= 0)[:, None], b[np.maximum(pos, 0)], 0.0)
        eta = eta + np.einsum("nq,nq->n", Zn, bb)
    if new:
        what = "; ".join(f"{name}: {len(labels)} group(s) ({_fmt_labels(list(labels))}) in {int(rows.sum())} row(s)"
                         for name, rows, labels in new)
        if not allow_new_levels:
            raise ColumnError(
                f"new data hold groups not seen in the fit ({what}); the fit has no random effect for them. Pass "
                "allow_new_levels=True to give them the population prediction at that level (random effect 0, as "
                f"lme4's allow.new.levels = TRUE), or include_random=False for {hint} of all rows"
            )
        n_rows = int(np.logical_or.reduce([rows for _, rows, _ in new]).sum())
        warnings.warn(f"{n_rows} of {len(data)} row(s) of the new data got the population prediction at a level "
                      f"whose group was not in the fit (random effect 0): {what}", AllianceStatsWarning,
                      stacklevel=user_stacklevel())
    return eta


class MixedResult(Result):
    """What a fitted linear and a generalized linear mixed model show alike: the fixed-effects
    table (``to_frame``), the variance components as a second table, the rows used and left out,
    the fitted-rows random part and conditional modes, and the coefficient plot."""

    def _fit_caveats(self) -> str:
        """The methods paragraph's closing sentences on a singular or unconverged fit ("" when neither)."""
        s = ""
        if self.singular:
            s += " The fit was singular (a variance at or near zero, or a correlation of +/-1)."
        if not self.converged:
            s += " The optimizer did not report convergence."
        return s

    def _groups_text(self) -> str:
        return ", ".join(f"{v} {k} groups" for k, v in self.n_groups.items())

    def _headline(self) -> str:
        return f"{self.formula}; n = {self.n_obs} rows, {self._groups_text()}"

    def _summary_head(self, fit_line: str, criterion: str) -> list[str]:
        lines = [fit_line, f"Formula: {self.formula}", criterion,
                 f"Observations: {self.n_obs}; groups: " + ", ".join(f"{k} {v}" for k, v in self.n_groups.items())]
        if self.n_dropped:
            lines.append(f"Rows left out: {self.n_dropped} (" + "; ".join(f"{k}: {v}" for k, v in self.dropped.items()) + ")")
        return lines

    @staticmethod
    def _table_text(df: pd.DataFrame) -> str:
        return df.to_string(index=False, na_rep="", float_format=lambda x: f"{x:.4f}")

    def to_frame(self) -> pd.DataFrame:
        """The fixed-effects table (a copy)."""
        return self.fixed.copy()

    def _tables(self) -> list[tuple[str, pd.DataFrame]]:
        return [("Random effects", format_frame(self.random, na=""))]

    def accounting(self) -> pd.DataFrame:
        """Rows used in the fit and rows left out, by reason (the first missing column of each)."""
        return accounting_frame("rows", self.n_obs, list(self.dropped.items()))

    def _fitted_random(self, bs: list) -> np.ndarray:
        """Z b on the rows of the fit."""
        eta = np.zeros(self.n_obs)
        for lv, b in zip(self._design.levels, bs):
            eta = eta + np.einsum("nq,nq->n", lv.Z, b[lv.codes])
        return eta

    def _ranef_frame(self, bs: list, condvars: list) -> pd.DataFrame:
        """Long table of conditional modes and conditional SDs (group, level, term, estimate, cond_sd)."""
        out = []
        for inf, b, cv in zip(self._design.level_info, bs, condvars):
            sd = np.sqrt(np.clip(np.diagonal(cv, axis1=1, axis2=2), 0, None))
            labels = group_labels(inf, self._design.data)
            for k, term in enumerate(inf["term_names"]):
                out.append(pd.DataFrame({"group": inf["name"], "level": labels, "term": term, "estimate": b[:, k], "cond_sd": sd[:, k]}))
        return pd.concat(out, ignore_index=True)

    def _coef_plot(self, ax, intercept: bool, cols: tuple[str, str, str], reference: float, log: bool, xlabel: str):
        from ...plots.alliance import plot_coefficients

        f = self.fixed if intercept else self.fixed[self.fixed["term"] != "Intercept"]
        return plot_coefficients(f, ax=ax, estimate=cols[0], low=cols[1], high=cols[2], reference=reference, log=log,
                                 xlabel=xlabel)


@lazy_frames("fixed", "random", "vcov", "dropped")
@dataclass(repr=False)
class LMMResult(MixedResult):
    """A fitted linear mixed model (see :func:`alliance_stats.lmm`).

    Attributes
    ----------
    fixed : DataFrame
        term, estimate, se, df, t, p, ci_low, ci_high (95%).
    random : DataFrame
        Variance components: group, term1, term2, variance, sd, corr (covariance rows have term2
        and corr; the last row is the residual).
    llf, aic, bic : float
        Log-likelihood (REML or ML, as fitted) and information criteria as lme4 reports them.
    reml, converged : bool
    n_obs : int
    n_groups : dict
        Number of groups per grouping factor.
    n_dropped : int
        Rows left out; ``dropped`` says why (each row counted once, under the first missing column).
    formula, df_method, theta, sigma, messages
    vcov : DataFrame
        Covariance of the fixed effects (lme4's ``vcov``); with ``df_method="kenward-roger"``
        the SEs come from :attr:`vcov_adjusted` instead.
    optsum : OptSummary
        What the optimizer did: start, bounds, tolerances, evaluations, final theta and
        deviance, the optimality checks and every restart (as MixedModels.jl's ``optsum``).
    residual_structure, time : str
        The ``residuals`` option of the fit (``"iid"`` or ``"ar1"``) and, for AR(1), its time column.
    residual_params : dict
        Parameters of the residual correlation: ``{"phi": ...}`` for ``residuals="ar1"`` (the
        correlation of residuals one time unit apart, nlme's ``Phi``); empty for iid residuals.
    """

    formula: str
    fixed: pd.DataFrame
    random: pd.DataFrame
    llf: float
    aic: float
    bic: float
    reml: bool
    converged: bool
    n_obs: int
    n_groups: dict
    n_dropped: int
    dropped: pd.Series
    df_method: str
    theta: np.ndarray
    sigma: float
    vcov: pd.DataFrame
    messages: list
    singular: bool
    dropped_terms: list
    engine: str = "fast"
    optsum: OptSummary = field(default=None)
    _design: Design = field(default=None)
    _sol: dict = field(default=None)
    _engine: NestedEngine = field(default=None)
    _sigmas: list = field(default=None)  # per level covariance matrices (original scale)
    _sat: dict = field(default=None)
    _kr: dict = field(default=None)  # Kenward-Roger: adjusted vcov, P, W (see .kenward_roger)
    residual_structure: str = "iid"
    time: str | None = None
    residual_params: dict = field(default_factory=dict)

    # -- basics --------------------------------------------------------------------------------
    @property
    def deviance(self) -> float:
        """-2 log-likelihood (the REML criterion for REML fits)."""
        return -2 * self.llf

    @property
    def model_frame(self) -> pd.DataFrame:
        """The rows used in the fit (complete cases), with the columns the model uses and the
        data's own index, as R's ``model.frame``."""
        return self._design.data

    @property
    def n_params(self) -> int:
        return len(self.fixed) + len(self.theta) + 1 + len(self.residual_params)

    def _residual_note(self) -> str:
        """The residual structure in words ("" for iid residuals)."""
        if self.residual_structure != "ar1":
            return ""
        group = self._design.levels[0].name
        return (f"AR(1) residuals within {group} by {self.time} (a gap of k {self.time} units correlates phi^k; "
                f"nlme's corAR1(form = ~ {self.time} | {group})): phi = {self.residual_params['phi']:.4f}")

    def _residual_sentence(self) -> str:
        """The residual structure as a methods sentence, APA numbers ("" for iid residuals)."""
        if self.residual_structure != "ar1":
            return ""
        group = self._design.levels[0].name
        return (f"Residuals within {group} were modelled as first-order autoregressive over {self.time} "
                f"(AR(1), residuals k {self.time} units apart correlating \u03c6^k, as nlme's corAR1), "
                f"\u03c6 = {fmt_num(self.residual_params['phi'], 2, leading_zero=False)}.")

    @property
    def params(self) -> pd.Series:
        return self.fixed.set_index("term")["estimate"]

    @property
    def vcov_adjusted(self) -> pd.DataFrame | None:
        """Kenward-Roger's adjusted covariance of the fixed effects (pbkrtest's ``vcovAdj``),
        from which the SEs of a ``df_method="kenward-roger"`` fit come; None for other fits."""
        if self._kr is None:
            return None
        return pd.DataFrame(self._kr["vcov_adj"], index=self.vcov.index, columns=self.vcov.columns)

    def refit(self, reml: bool | None = None, df_method: str | None = None, **options) -> "LMMResult":
        """The same model on the same complete rows, e.g. ``refit(reml=False)`` for a LRT;
        ``options`` go to :func:`lmm` (``optimizer``, ``start``, ``restart``)."""
        from .fit import lmm

        options = {"engine": self.engine, "residuals": self.residual_structure, "time": self.time, **options}
        return lmm(self.formula, self._design.source, reml=self.reml if reml is None else reml, df_method=df_method or self.df_method,
                   **options)

    # -- random effects, prediction ----------------------------------------------------------
    def random_effects(self) -> pd.DataFrame:
        """BLUPs (conditional modes) with conditional SDs, long format:
        group (grouping factor), level (the group's ID), term, estimate, cond_sd."""
        if "condvar" not in self._sol:
            self._sol = self._engine.solve(self._engine.to_int(self.theta), self.reml, condvar=True)
        return self._ranef_frame(self._sol["b"], self._sol["condvar"])

    def predict(self, data: pd.DataFrame | None = None, include_random: bool = True,
                allow_new_levels: bool = False) -> pd.Series:
        """Predictions: X beta (+ Z b when ``include_random``), on the rows used in the fit or on
        new ``data``.

        New data with groups not seen in the fit (or a missing group ID) are refused by name, as
        lme4's ``predict(newdata)``; with ``allow_new_levels=True`` (lme4's
        ``allow.new.levels = TRUE``) those rows get a random effect of zero for that grouping
        factor (the population prediction at that level) and a warning counts the rows and
        groups."""
        _bool_options(include_random=include_random, allow_new_levels=allow_new_levels)
        d = self._design
        beta = self.fixed["estimate"].to_numpy()
        if data is None:
            eta = d.X @ beta if d.offset is None else d.X @ beta + d.offset
            if include_random:
                eta = eta + self._fitted_random(self._sol["b"])
            return pd.Series(eta, index=d.data.index, name="predicted")
        require_frame(data, "data of predict()")
        eta = d.fixed_matrix(data) @ beta + d.offset_of(data)
        if include_random:
            eta = eta + random_part(d, self._sol["b"], data, "population predictions", allow_new_levels)
        return pd.Series(eta, index=data.index, name="predicted")

    def residuals(self) -> pd.Series:
        d = self._design
        y = d.y if d.offset is None else d.y + d.offset  # the outcome as observed
        return pd.Series(y, index=d.data.index) - self.predict()

    # -- variance shares ------------------------------------------------------------------------
    def icc(self) -> pd.DataFrame:
        """Share of the variance at each level: random-intercept variances and the residual.

        Columns ``level``, ``variance``, ``share`` and ``random_slopes``: true for a level that
        has random slopes, whose share then uses its intercept variance, i.e. refers to where
        the slope predictors are 0 (and so do every level's shares, which add up to 1)."""
        rows = []
        for inf, S in zip(self._design.level_info, self._sigmas):
            if "Intercept" in inf["term_names"]:
                k = inf["term_names"].index("Intercept")
                rows.append({"level": inf["name"], "variance": S[k, k], "random_slopes": len(inf["term_names"]) > 1})
        rows.append({"level": "Residual", "variance": self.sigma**2, "random_slopes": False})
        df = pd.DataFrame(rows)
        df.insert(2, "share", df["variance"] / df["variance"].sum())
        return df

    def r2(self) -> pd.Series:
        """Nakagawa & Schielzeth (2013) marginal and conditional R^2, with Johnson's (2014)
        extension for random slopes (mean of z' Sigma z over the rows)."""
        d = self._design
        beta = self.fixed["estimate"].to_numpy()
        var_f = float(np.var(d.X @ beta, ddof=1))
        var_r = 0.0
        for lv, S in zip(d.levels, self._sigmas):
            var_r += float(np.mean(np.einsum("nq,qk,nk->n", lv.Z, S, lv.Z)))
        var_e = self.sigma**2
        tot = var_f + var_r + var_e
        return pd.Series({"marginal": var_f / tot, "conditional": (var_f + var_r) / tot}, name="R2")

    # -- contrasts ---------------------------------------------------------------------------------
    def contrast(self, L) -> pd.Series:
        """Test of a linear combination ``L @ beta`` (L: dict term -> weight or a vector) with the
        model's df method, as lmerTest's ``contest1D``: Satterthwaite, or Kenward-Roger (SE from the
        adjusted covariance, df from pbkrtest's ``Lb_ddf``)."""
        names = self.fixed["term"].tolist()
        if isinstance(L, dict):
            unknown = [k for k in L if k not in names]
            if unknown:
                raise ColumnError(f"unknown term(s) {_fmt_labels(unknown)}; terms are {_fmt_labels(names)}")
            L = np.array([L.get(n, 0.0) for n in names], float)
        given = L
        try:
            L = np.asarray(L, float)
        except (TypeError, ValueError):
            L = None
        if L is None or L.shape != (len(names),) or not np.all(np.isfinite(L)) or not np.any(L):
            raise OptionError("L", given,
                              hint=f"give one weight per fixed effect ({len(names)}: {_fmt_labels(names)}), finite and not all "
                              "zero, as a vector or a dict term -> weight, e.g. {'session': 1}; for several rows call contrast() per row")
        est = float(L @ self.fixed["estimate"].to_numpy())
        V = self.vcov.to_numpy()
        var = float(L @ V @ L)
        if self.df_method == "kenward-roger":
            df = ddf_L(L, V, self._kr)
            var = float(L @ self._kr["vcov_adj"] @ L)
        elif self.df_method == "satterthwaite":
            g = np.array([L @ self._sat["J"][k] @ L for k in range(self._sat["J"].shape[0])])
            df = 2 * var**2 / float(g @ self._sat["A"] @ g)
        else:
            df = np.inf
        t = est / np.sqrt(var)
        p = 2 * (stats.t.sf(abs(t), df) if np.isfinite(df) else stats.norm.sf(abs(t)))
        crit = stats.t.ppf(0.975, df) if np.isfinite(df) else stats.norm.ppf(0.975)
        se = np.sqrt(var)
        return pd.Series({"estimate": est, "se": se, "df": df, "t": t, "p": p, "ci_low": est - crit * se, "ci_high": est + crit * se})

    # -- display ------------------------------------------------------------------------------------
    title = "Linear mixed model"

    def _df_words(self) -> str:
        return {"satterthwaite": "Satterthwaite df (as lmerTest)",
                "kenward-roger": "Kenward-Roger SE and df, as lmerTest/pbkrtest"}.get(self.df_method, "Wald z")

    def _headline(self) -> str:
        return f"{'REML' if self.reml else 'ML'} fit of {super()._headline()}"

    def summary(self) -> str:
        """lme4-style text: criterion, observations and groups, random effects, fixed effects."""
        crit = "REML criterion" if self.reml else "ML"
        lines = self._summary_head(
            f"Linear mixed model fit by {'REML' if self.reml else 'maximum likelihood'} (alliance-stats)",
            f"{crit}: deviance {self.deviance:.2f}; logLik {self.llf:.2f}; AIC {self.aic:.2f}; BIC {self.bic:.2f}")
        lines += ["", "Random effects:", self._table_text(self.random), "",
                  f"Fixed effects ({self._df_words()}):", self._table_text(self.fixed)]
        if self.residual_structure != "iid":
            lines[-3:-3] = [f"Residual correlation: {self._residual_note()}"]
        lines += [f"Note: {m}" for m in self.messages]
        return "\n".join(lines)

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        """APA-style fixed-effects table: b, SE, df, t, p ('< .001'), 95% CI in brackets.
        Write it out with ``.to_markdown()``, ``.to_latex()`` or ``.to_html()``."""
        digits = 2 if digits is None else int(digits)
        f = self.fixed
        out = pd.DataFrame(
            {
                "Term": f["term"],
                "b": [fmt_num(v, digits) for v in f["estimate"]],
                "SE": [fmt_num(v, digits) for v in f["se"]],
                "df": [fmt_df(v) for v in f["df"]],
                "t": [fmt_num(v, digits) for v in f["t"]],
                "p": [apa_p(v) for v in f["p"]],
                "95% CI": [fmt_ci(a, b, digits) for a, b in zip(f["ci_low"], f["ci_high"])],
            }
        )
        return out

    def methods(self) -> str:
        """A methods-and-results paragraph: the model, the data it used, the estimator, the df
        method and the fixed effects."""
        how = "restricted maximum likelihood (REML)" if self.reml else "maximum likelihood"
        dfm = {"satterthwaite": "with Satterthwaite degrees of freedom (as lmerTest)",
               "kenward-roger": "with Kenward-Roger standard errors and degrees of freedom (as pbkrtest)"}.get(
            self.df_method, "as Wald z tests")
        s = (f"A linear mixed model ({self.formula}) was fitted by {how} to n = {self.n_obs} observations "
             f"from {self._groups_text()} with alliance-stats (equivalent to lme4::lmer)")
        if self.n_dropped:
            s += (f"; {self.n_dropped} rows with missing values were left out ("
                  + "; ".join(f"{k}: {v}" for k, v in self.dropped.items()) + ")")
        s += f". Fixed effects were tested {dfm}."
        effects = []
        for _, r in self.fixed[self.fixed["term"] != "Intercept"].iterrows():
            stat = f"t({fmt_df(r['df'])})" if np.isfinite(r["df"]) else "z"
            effects.append(f"{r['term']}: b = {fmt_num(r['estimate'])}, 95% CI {fmt_ci(r['ci_low'], r['ci_high'])}, "
                           f"{stat} = {fmt_num(r['t'])}, p {apa_p(r['p'], eq=True)}")
        if effects:
            s += " " + "; ".join(effects) + "."
        sds = [f"{r['group']} {r['term1']} SD = {fmt_num(r['sd'])}" for _, r in self.random.iterrows()
               if pd.isna(r.get("term2")) and r["group"] != "Residual"]
        s += " Random effects: " + ", ".join(sds + [f"residual SD = {fmt_num(self.sigma)}"]) + "."
        if self.residual_structure != "iid":
            s += " " + self._residual_sentence()
        return s + self._fit_caveats()

    def plot(self, *, ax=None, intercept: bool = False):
        """Coefficient plot: fixed effects with 95% CIs."""
        return self._coef_plot(ax, intercept, ("estimate", "ci_low", "ci_high"), 0.0, False, "estimate (95% CI)")


@dataclass(eq=False, repr=False)
class ModelComparison(Result):
    """Result of :func:`compare`: likelihood-ratio tests of nested mixed models (lme4's
    ``anova(m1, m2)``).

    Attributes
    ----------
    table : DataFrame
        One row per model, fewest parameters first: ``model, npar, AIC, BIC, logLik,
        deviance, Chisq, Df, p, criterion`` (the test is against the row above;
        ``to_frame()`` is a copy).
    criterion : str
        ``"REML"``, ``"ML"`` or ``"ML (refit)"``.
    note : str
        Why the models were refitted ("" when they were not).
    n_obs : int
        The observations every model was fitted to.
    """

    title = "Likelihood-ratio tests of nested models"

    table: pd.DataFrame
    criterion: str
    note: str
    n_obs: int

    @property
    def refitted(self) -> bool:
        """Whether the models were refitted by maximum likelihood before the comparison."""
        return bool(self.note)

    def _headline(self) -> str:
        return f"{len(self.table)} models on n = {self.n_obs} observations, likelihoods by {self.criterion}"

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        d = 2 if digits is None else int(digits)
        t = self.table
        return pd.DataFrame({
            "Model": t["model"], "npar": [str(int(v)) for v in t["npar"]],
            "AIC": [fmt_num(v, d) for v in t["AIC"]], "BIC": [fmt_num(v, d) for v in t["BIC"]],
            "logLik": [fmt_num(v, d) for v in t["logLik"]],
            "χ²": [fmt_num(v, d, na="") for v in t["Chisq"]], "df": [fmt_df(v, na="") for v in t["Df"]],
            "p": [apa_p(v) if pd.notna(v) else "" for v in t["p"]],
        })

    def _notes(self) -> list:
        return [self.note] if self.note else []

    def accounting(self) -> pd.DataFrame:
        return accounting_frame("observations", self.n_obs)

    def methods(self) -> str:
        how = {"REML": "restricted maximum likelihood (REML; the models share their fixed effects)",
               "ML": "maximum likelihood"}.get(self.criterion, "maximum likelihood: the models differ in their fixed "
                                                "effects, so the REML fits were refitted by ML, whose likelihoods are comparable")
        s = (f"Nested mixed models fitted to the same n = {self.n_obs} observations were compared by likelihood-ratio "
             f"tests, each against the model with fewer parameters above it (as lme4's anova()), with likelihoods by {how}.")
        t = self.table
        for i in range(1, len(t)):
            r, prev = t.iloc[i], t.iloc[i - 1]
            s += (f" {r['model']} against {prev['model']}: χ²({fmt_df(r['Df'])}) = {fmt_num(r['Chisq'])}, "
                  f"p {apa_p(r['p'], eq=True)}; AIC {fmt_num(prev['AIC'])} -> {fmt_num(r['AIC'])}.")
        return s


def compare(*models: LMMResult) -> ModelComparison:
    """Likelihood-ratio tests and AIC/BIC for nested models fitted to the same rows.

    Models are ordered by number of parameters and each is tested against the previous one.
    When they differ in fixed effects and any was fitted by REML, all are refitted by maximum
    likelihood first (REML likelihoods of different fixed parts are not comparable); the
    result's ``criterion`` ("ML (refit)") and ``note`` say so.

    Returns
    -------
    ModelComparison
        ``.table`` (``to_frame()``): one row per model with ``npar, AIC, BIC, logLik,
        deviance, Chisq, Df, p, criterion``; ``to_apa()``, ``methods()``, ``.note``.
    """
    if len(models) < 2:
        raise ArgumentError("compare() needs at least two fitted models")
    for m in models:
        if not isinstance(m, LMMResult):
            raise ArgumentError(f"compare() takes LMMResult objects, got {type(m).__name__}")
    n = {m.n_obs for m in models}
    ys = [m._design.y for m in models]
    if len(n) > 1 or any(not np.array_equal(ys[0], y) for y in ys[1:]) or any(
        not m._design.data.index.equals(models[0]._design.data.index) for m in models[1:]
    ):
        raise ModelSpecError(
            f"the models were fitted to different rows (n = {sorted(n)}) or outcomes; a likelihood-ratio "
            "test needs the same complete cases: drop rows with missing values in any model's columns first"
        )
    fixed_sets = {tuple(m.fixed["term"]) for m in models}
    note = ""
    if len(fixed_sets) > 1 and any(m.reml for m in models):
        # the refit's df are not used; Kenward-Roger is not defined for ML fits
        models = tuple(m.refit(reml=False, df_method="satterthwaite" if m.df_method == "kenward-roger" else None) if m.reml else m for m in models)
        note = "refitted with ML: the models differ in their fixed effects, so REML likelihoods are not comparable"
        crit = "ML (refit)"
    else:
        crit = "REML" if all(m.reml for m in models) else "ML"
        if len({m.reml for m in models}) > 1:
            raise ModelSpecError("some models were fitted by REML and some by ML; refit them the same way")
    order = sorted(range(len(models)), key=lambda i: models[i].n_params)
    rows = []
    prev = None
    for i in order:
        m = models[i]
        r = {"model": m.formula, "npar": m.n_params, "AIC": m.aic, "BIC": m.bic, "logLik": m.llf, "deviance": m.deviance, "Chisq": np.nan, "Df": np.nan, "p": np.nan, "criterion": crit}
        if prev is not None:
            chisq = max(2 * (m.llf - prev.llf), 0.0)
            dfd = m.n_params - prev.n_params
            r.update(Chisq=chisq, Df=dfd, p=stats.chi2.sf(chisq, dfd) if dfd > 0 else np.nan)
        rows.append(r)
        prev = m
    return ModelComparison(table=pd.DataFrame(rows), criterion=crit, note=note, n_obs=int(models[0].n_obs))
