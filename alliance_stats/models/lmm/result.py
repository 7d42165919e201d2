"""Stage 5 of a linear mixed model (lme4's ``mkMerMod``): the fitted model as a result object,
and likelihood-ratio comparison of fitted models."""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..._format import apa_p, fmt_ci, fmt_df, fmt_num
from ...exceptions import (AllianceStatsWarning, ArgumentError, ColumnError, ModelSpecError, OptionError, _fmt_labels,
                           user_stacklevel)
from ...validation import require_frame
from .design import Design, group_labels, join_keys
from .kenward_roger import ddf_L
from .nested import NestedEngine
from .optimize import OptSummary

@dataclass(repr=False)
class LMMResult:
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
        return len(self.fixed) + len(self.theta) + 1

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

        options = {"engine": self.engine, **options}
        return lmm(self.formula, self._design.source, reml=self.reml if reml is None else reml, df_method=df_method or self.df_method,
                   **options)

    # -- random effects, prediction ----------------------------------------------------------
    def random_effects(self) -> pd.DataFrame:
        """BLUPs (conditional modes) with conditional SDs, long format:
        group (grouping factor), level (the group's ID), term, estimate, cond_sd."""
        if "condvar" not in self._sol:
            self._sol = self._engine.solve(self._engine.to_int(self.theta), self.reml, condvar=True)
        out = []
        for li, inf in enumerate(self._design.level_info):
            b = self._sol["b"][li]
            cv = self._sol["condvar"][li]
            sd = np.sqrt(np.clip(np.diagonal(cv, axis1=1, axis2=2), 0, None))
            for k, term in enumerate(inf["term_names"]):
                out.append(pd.DataFrame({"group": inf["name"], "level": group_labels(inf, self._design.data), "term": term, "estimate": b[:, k], "cond_sd": sd[:, k]}))
        return pd.concat(out, ignore_index=True)

    def predict(self, data: pd.DataFrame | None = None, include_random: bool = True,
                allow_new_levels: bool = False) -> pd.Series:
        """Predictions: X beta (+ Z b when ``include_random``), on the rows used in the fit or on
        new ``data``.

        New data with groups not seen in the fit (or a missing group ID) are refused by name, as
        lme4's ``predict(newdata)``; with ``allow_new_levels=True`` (lme4's
        ``allow.new.levels = TRUE``) those rows get a random effect of zero for that grouping
        factor (the population prediction at that level) and a warning counts the rows and
        groups."""
        if not isinstance(allow_new_levels, (bool, np.bool_)):
            raise OptionError("allow_new_levels", allow_new_levels, (True, False))
        d = self._design
        beta = self.fixed["estimate"].to_numpy()
        if data is None:
            eta = d.X @ beta if d.offset is None else d.X @ beta + d.offset
            if include_random:
                for lv, b in zip(d.levels, self._sol["b"]):
                    eta = eta + np.einsum("nq,nq->n", lv.Z, b[lv.codes])
            return pd.Series(eta, index=d.data.index, name="predicted")
        require_frame(data, "data of predict()")
        eta = d.fixed_matrix(data) @ beta + d.offset_of(data)
        if include_random:
            new = []  # (grouping factor, rows, labels of the groups not seen)
            for li, (inf, b) in enumerate(zip(d.level_info, self._sol["b"])):
                missing = [c for c in inf["cols"] if c not in data.columns]
                if missing:
                    raise ColumnError(f"new data lacks grouping column(s) {_fmt_labels(missing)}; pass include_random=False for population predictions")
                Zn = d.random_matrix(li, data)
                ids = data[list(inf["cols"])]
                key = join_keys(ids) if len(inf["cols"]) > 1 else ids.iloc[:, 0]
                pos = pd.Index(group_labels(inf, d.data)).get_indexer(key)
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
                        "lme4's allow.new.levels = TRUE), or include_random=False for population predictions of all rows"
                    )
                n_rows = int(np.logical_or.reduce([rows for _, rows, _ in new]).sum())
                warnings.warn(f"{n_rows} of {len(data)} row(s) of the new data got the population prediction at a level "
                              f"whose group was not in the fit (random effect 0): {what}", AllianceStatsWarning,
                              stacklevel=user_stacklevel())
        return pd.Series(eta, index=data.index, name="predicted")

    def residuals(self) -> pd.Series:
        d = self._design
        y = d.y if d.offset is None else d.y + d.offset  # the outcome as observed
        return pd.Series(y, index=d.data.index) - self.predict()

    # -- variance shares ------------------------------------------------------------------------
    def icc(self) -> pd.DataFrame:
        """Share of the variance at each level: random-intercept variances and the residual.

        For models with random slopes the shares refer to the intercept variances (i.e. where the
        slope predictors are 0); ``attrs['note']`` says so."""
        rows = []
        for inf, S in zip(self._design.level_info, self._sigmas):
            if "Intercept" in inf["term_names"]:
                k = inf["term_names"].index("Intercept")
                rows.append({"level": inf["name"], "variance": S[k, k]})
        rows.append({"level": "Residual", "variance": self.sigma**2})
        df = pd.DataFrame(rows)
        df["share"] = df["variance"] / df["variance"].sum()
        if any(len(inf["term_names"]) > 1 for inf in self._design.level_info):
            df.attrs["note"] = "random slopes present: shares use intercept variances (slope predictors at 0)"
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
    def summary(self) -> str:
        crit = "REML criterion" if self.reml else "ML"
        lines = [
            f"Linear mixed model fit by {'REML' if self.reml else 'maximum likelihood'} (alliance-stats)",
            f"Formula: {self.formula}",
            f"{crit}: deviance {self.deviance:.2f}; logLik {self.llf:.2f}; AIC {self.aic:.2f}; BIC {self.bic:.2f}",
            f"Observations: {self.n_obs}; groups: " + ", ".join(f"{k} {v}" for k, v in self.n_groups.items()),
        ]
        if self.n_dropped:
            lines.append(f"Rows left out: {self.n_dropped} (" + "; ".join(f"{k}: {v}" for k, v in self.dropped.items()) + ")")
        lines.append("")
        lines.append("Random effects:")
        lines.append(self.random.to_string(index=False, na_rep="", float_format=lambda x: f"{x:.4f}"))
        lines.append("")
        dfm = {"satterthwaite": "Satterthwaite df (as lmerTest)",
               "kenward-roger": "Kenward-Roger SE and df, as lmerTest/pbkrtest"}.get(self.df_method, "Wald z")
        lines.append(f"Fixed effects ({dfm}):")
        lines.append(self.fixed.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
        for m in self.messages:
            lines.append(f"Note: {m}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def to_apa(self, digits: int = 2) -> pd.DataFrame:
        """APA-style fixed-effects table: b, SE, df, t, p ('< .001'), 95% CI in brackets.
        Write it out with ``.to_markdown()``, ``.to_latex()`` or ``.to_html()``."""
        f = self.fixed
        return pd.DataFrame(
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

    def _repr_html_(self) -> str:
        head = html.escape(f"Linear mixed model ({'REML' if self.reml else 'ML'}): {self.formula}")
        info = html.escape(
            f"n = {self.n_obs}; " + ", ".join(f"{k}: {v}" for k, v in self.n_groups.items())
            + f"; logLik = {self.llf:.2f}" + (f"; {self.n_dropped} rows left out" if self.n_dropped else "")
        )
        notes = "".join(f"<br><em>{html.escape(m)}</em>" for m in self.messages)
        rnd = self.random.to_html(index=False, na_rep="", float_format=lambda x: f"{x:.4f}")
        return f"<div><strong>{head}</strong><br>{info}{notes}{self.to_apa().to_html(index=False)}{rnd}</div>"

    def plot(self, ax=None, intercept: bool = False):
        """Coefficient plot: fixed effects with 95% CIs."""
        import matplotlib.pyplot as plt

        f = self.fixed if intercept else self.fixed[self.fixed["term"] != "Intercept"]
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 0.5 + 0.4 * max(len(f), 1)))
        yv = np.arange(len(f))[::-1]
        ax.errorbar(f["estimate"], yv, xerr=[f["estimate"] - f["ci_low"], f["ci_high"] - f["estimate"]], fmt="o", color="k", capsize=3)
        ax.axvline(0, color="0.6", lw=0.8, ls="--")
        ax.set_yticks(yv)
        ax.set_yticklabels(f["term"])
        ax.set_xlabel("estimate (95% CI)")
        return ax


def compare(*models: LMMResult) -> pd.DataFrame:
    """Likelihood-ratio tests and AIC/BIC for nested models fitted to the same rows.

    Models are ordered by number of parameters and each is tested against the previous one.
    When they differ in fixed effects and any was fitted by REML, all are refitted by maximum
    likelihood first (REML likelihoods of different fixed parts are not comparable); the
    ``criterion`` column and ``attrs['note']`` say so.
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
    out = pd.DataFrame(rows)
    out.attrs["note"] = note
    return out
