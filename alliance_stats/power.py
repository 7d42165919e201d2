"""Simulation-based power analysis for the within-patient alliance effect.

Each simulated study comes from :func:`alliance_stats.simulate_study` with the design and the
effect asked for, and is analysed with the lagged within/between model
(:func:`alliance_stats.alliance_outcome`). Power is the share of studies whose test of the
within-patient effect has p < alpha (two-sided) with the estimate in the true direction.
Random numbers come from one ``numpy.random.SeedSequence`` spawned per study, so the same seed
gives the same result whatever ``n_jobs`` or joblib backend runs the studies.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ._format import fmt_est_ci, fmt_num
from ._result import Result, accounting_frame
from .exceptions import AllianceStatsError, AllianceStatsWarning, ModelSpecError, OptionError, user_stacklevel
from .validation import check_number, check_option, check_whole_number

__all__ = ["power_analysis", "PowerResult"]

DESIGN_ARGS = ("n_therapists", "patients_per_therapist", "sessions", "effect")
MODELS = ("alliance_outcome",)


def _wilson(k, n, level=0.95):
    if n == 0:
        return np.nan, np.nan
    z = stats.norm.ppf(0.5 + level / 2)
    p = k / n
    den = 1 + z**2 / n
    mid = (p + z**2 / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    # at k = 0 (k = n) the lower (upper) bound is exactly 0 (1): mid and half are equal in closed form
    return (0.0 if k == 0 else mid - half), (1.0 if k == n else mid + half)


def _one_study(cell: dict, seed, alpha: float, simulate_kw: dict, model_kw: dict) -> dict:
    """Simulate and analyse one study; never raises (a failure is returned and counted)."""
    from .models.alliance import alliance_outcome
    from .scoring import score
    from .simulate import simulate_study

    out = dict(cell)
    try:
        s = simulate_study(
            n_therapists=cell["n_therapists"], patients_per_therapist=cell["patients_per_therapist"],
            min_sessions=cell["sessions"], max_sessions=cell["sessions"], within_effect=cell["effect"],
            seed=seed, **simulate_kw,
        )
        d = s.sessions
        d = d.join(score(d, "WAI-SR", items="wai{}")).join(score(d, "PHQ-9", items="phq{}"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = alliance_outcome(d, outcome="phq9_total", alliance="wai_sr_total", therapist="therapist", **model_kw)
        w = res.effects.iloc[0]
        out.update(
            estimate=float(w["estimate"]), se=float(w["se"]), df=float(w["df"]), p=float(w["p"]),
            ci_low=float(w["ci_low"]), ci_high=float(w["ci_high"]), converged=bool(res.model.converged),
            singular=bool(res.model.singular), n_obs=int(res.model.n_obs), error=None,
            n_warnings=len(caught),
        )
    except (AllianceStatsError, np.linalg.LinAlgError, ValueError) as e:  # counted, not hidden
        out.update(estimate=np.nan, se=np.nan, df=np.nan, p=np.nan, ci_low=np.nan, ci_high=np.nan,
                   converged=False, singular=False, n_obs=0, error=f"{type(e).__name__}: {e}", n_warnings=0)
    right_sign = cell["effect"] == 0 or np.sign(out["estimate"]) == np.sign(cell["effect"])
    out["significant"] = bool(np.isfinite(out["p"]) and out["p"] < alpha and right_sign)
    out["covered"] = bool(np.isfinite(out["ci_low"]) and out["ci_low"] <= cell["effect"] <= out["ci_high"])
    return out


@dataclass(repr=False)
class PowerResult(Result):
    """Result of :func:`alliance_stats.power_analysis`.

    ``table`` has one row per design cell: the design, ``n_sims``, ``n_failed`` (studies whose
    analysis raised an error; excluded from every column and listed in ``sims``), ``power`` with
    its Monte-Carlo (Wilson) 95% CI, the mean estimate, ``bias`` (mean estimate - true effect),
    ``mean_se``, ``empirical_sd`` of the estimates, ``coverage`` of the 95% CIs, and the share of
    singular and non-converged fits. ``sims`` has one row per simulated study.
    """

    table: pd.DataFrame
    sims: pd.DataFrame
    settings: dict = field(default_factory=dict)

    title = "Power for the within-patient lagged alliance effect"

    @property
    def n_obs(self) -> int:
        """Simulated studies that were analysed (all design cells)."""
        return int((self.table["n_sims"] - self.table["n_failed"]).sum())

    def _headline(self) -> str:
        s = self.settings
        return (f"{len(self.table)} designs x {s.get('n_sims')} simulated studies (n = {self.n_obs} analysed), alpha = "
                f"{s.get('alpha')}, seed {s.get('seed')}; power {fmt_num(self.table['power'].min(), leading_zero=False)}"
                f"-{fmt_num(self.table['power'].max(), leading_zero=False)}")

    def to_frame(self) -> pd.DataFrame:
        """One row per design cell (a copy of ``table``)."""
        return self.table.copy()

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        """APA-style table: the design, power with its Monte-Carlo 95% CI, bias and coverage."""
        d = 2 if digits is None else int(digits)
        t = self.table
        out = {a.replace("_", " ").capitalize(): [fmt_num(v, d) for v in t[a]] for a in DESIGN_ARGS}
        out.update({
            "Studies": [str(int(v)) for v in t["n_sims"] - t["n_failed"]],
            "Power [95% CI]": [fmt_est_ci(p, a, b, d, leading_zero=False) for p, a, b in zip(t["power"], t["power_ci_low"], t["power_ci_high"])],
            "Bias": [fmt_num(v, d) for v in t["bias"]],
            "Coverage": [fmt_num(v, d, leading_zero=False) for v in t["coverage"]],
        })
        return pd.DataFrame(out)

    def accounting(self) -> pd.DataFrame:
        """Simulated studies analysed, and those whose analysis raised an error (by error type;
        the messages are in ``sims['error']``)."""
        err = self.sims["error"].dropna() if "error" in self.sims else pd.Series(dtype=object)
        kinds = err.str.split(":").str[0].value_counts(sort=False)
        return accounting_frame("simulated studies", self.n_obs, [(f"analysis failed ({k})", n) for k, n in kinds.items()])

    def methods(self) -> str:
        """A methods paragraph: how the studies were simulated and analysed, and the power found."""
        s, t = self.settings, self.table
        design = "; ".join(f"{a.replace('_', ' ')} {', '.join(str(v) for v in sorted(t[a].unique()))}" for a in DESIGN_ARGS)
        covs = f", adjusting for {', '.join(s['covariates'])}" if s.get("covariates") else ""
        dfm = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger"}.get(s.get("df_method"), "Wald")
        failed = int(t["n_failed"].sum())
        text = (f"Statistical power for the within-patient (state-like) lagged alliance effect was estimated by Monte-Carlo "
                f"simulation with alliance-stats: for each of {len(t)} designs ({design}), {s.get('n_sims')} studies were "
                "simulated (simulate_study; patients nested in therapists, alliance (WAI-SR) and symptoms (PHQ-9) per "
                f"session; seed {s.get('seed')}) and analysed with the lagged within/between mixed model{covs} (alliance_outcome, "
                f"random intercepts for therapists and patients, REML, {dfm} degrees of freedom). Power is the share of the "
                f"n = {self.n_obs} analysed studies whose within-patient effect had p < {fmt_num(s.get('alpha'), leading_zero=False)} (two-sided) in the "
                "true direction, with a Wilson 95% confidence interval")
        text += f"; {failed} studies whose analysis failed were left out." if failed else "."
        res = []
        for _, r in t.iterrows():
            cell = ", ".join(f"{a.replace('_', ' ')} {r[a]:g}" for a in DESIGN_ARGS)
            res.append(f"{cell}: power {fmt_est_ci(r['power'], r['power_ci_low'], r['power_ci_high'], leading_zero=False)}, "
                       f"bias {fmt_num(r['bias'])}, coverage {fmt_num(r['coverage'], leading_zero=False)}")
        return text + " Results: " + "; ".join(res) + "."

    def plot(self, *, ax=None, x: str | None = None, hue: str | None = None, target: float = 0.8):
        """Power curve: power (with Monte-Carlo 95% CIs) against the design argument that varies
        (``x``), one line per value of a second varying argument (``hue``), and the target power
        as a dashed line."""
        import matplotlib.pyplot as plt

        varying = [a for a in DESIGN_ARGS if self.table[a].nunique() > 1]
        x = x or (varying[0] if varying else "n_therapists")
        if hue is None:
            rest = [a for a in varying if a != x]
            hue = rest[0] if rest else None
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        groups = [(None, self.table)] if hue is None else list(self.table.groupby(hue, sort=True))
        for key, g in groups:
            g = g.sort_values(x)
            # clipped: at power 0 or 1 the Wilson bound can differ from it by a rounding error of either sign
            yerr = np.clip([g["power"] - g["power_ci_low"], g["power_ci_high"] - g["power"]], 0, None)
            ax.errorbar(g[x], g["power"], yerr=yerr,
                        marker="o", capsize=3, label=None if hue is None else f"{hue} = {key}")
        ax.axhline(target, color="0.5", ls="--", lw=0.8)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel("power")
        if hue is not None:
            ax.legend(frameon=False, fontsize=8)
        return ax


def power_analysis(
    *,
    n_therapists,
    patients_per_therapist,
    sessions,
    effect,
    n_sims: int = 500,
    model: str = "alliance_outcome",
    alpha: float = 0.05,
    seed=None,
    n_jobs: int = 1,
    progress: bool = True,
    covariates=("session",),
    df_method: str = "satterthwaite",
    **simulate_kw,
) -> PowerResult:
    """Power, bias and CI coverage for the within-patient alliance effect, by simulation.

    Parameters
    ----------
    n_therapists, patients_per_therapist, sessions : int or list of int
        The design: therapists, patients per therapist and planned sessions per patient (dropout
        and missed sessions from ``simulate_kw`` still apply). A list makes a grid.
    effect : float or list of float
        The true within-patient lagged effect (PHQ-9 points per WAI-SR point; negative = a better
        alliance is followed by fewer symptoms). A list makes a grid.
    n_sims : int
        Simulated studies per design cell.
    model : {"alliance_outcome"}
        The analysis: :func:`alliance_outcome` with patients nested in therapists, ``covariates``
        and the previous session's symptoms.
    alpha : float
        Two-sided significance level; a study counts as a detection when p < alpha and the
        estimate has the true sign.
    seed : int or None
        Same seed, same result whatever ``n_jobs``.
    n_jobs : int
        Parallel workers (joblib; -1 = all cores). On a cluster, run the same call inside
        ``with joblib.parallel_config(backend="dask"):`` with a ``dask.distributed.Client``
        connected (install the ``[distributed]`` extra).
    progress : bool
        Show a progress bar (tqdm).
    **simulate_kw
        Passed to :func:`simulate_study` (e.g. ``dropout_rate``, ``residual_sd``,
        ``rupture_rate``). PQS sorts are not simulated unless ``pqs_fraction`` is given.

    Returns
    -------
    PowerResult

    Notes
    -----
    With :func:`simulate_study`'s defaults, unrepaired ruptures lower the alliance and slow
    improvement for the rest of treatment (a within-patient confound), and PHQ-9 scores are
    clipped at 0; both bias the estimate a little towards zero (about 0.07 PHQ-9 points for an
    effect of -1.5 in 20 x 8 designs). ``bias`` and ``coverage`` report what that does to the
    analysis; pass ``rupture_rate=0`` to study power without it.

    Examples
    --------
    >>> import alliance_stats as als
    >>> res = als.power_analysis(n_therapists=[4, 8], patients_per_therapist=4, sessions=8,
    ...                          effect=-1.5, n_sims=3, seed=1, progress=False)
    >>> res.table[["n_therapists", "n_sims", "n_failed"]].to_numpy().tolist()
    [[4, 3, 0], [8, 3, 0]]
    """
    from joblib import Parallel, delayed

    check_option("model", model, MODELS)
    n_sims = check_whole_number("n_sims", n_sims, 1)
    alpha = check_number("alpha", alpha, 0, 1, lo_open=True, hi_open=True)
    values = {}
    for name, v in zip(DESIGN_ARGS, (n_therapists, patients_per_therapist, sessions, effect)):
        vals = list(v) if isinstance(v, (list, tuple, np.ndarray, range)) else [v]
        if not vals:
            raise OptionError(name, v, hint="give a value or a list of at least one value")
        for x in vals:
            if name != "effect" and not (isinstance(x, (int, np.integer)) and x >= 1):
                raise OptionError(name, x, hint="give positive whole numbers")
            if name == "effect":
                check_number(name, x)
        values[name] = vals
    if min(values["sessions"]) < 3:
        raise OptionError("sessions", min(values["sessions"]),
                          hint="give at least 3: the lagged model needs two sessions per patient after the first")
    simulate_kw.setdefault("pqs_fraction", 0.0)
    cells = [dict(zip(DESIGN_ARGS, combo)) for combo in itertools.product(*(values[a] for a in DESIGN_ARGS))]
    seeds = np.random.SeedSequence(seed).spawn(len(cells) * n_sims)
    model_kw = dict(covariates=list(covariates), df_method=df_method)
    tasks = [(cell, seeds[i * n_sims + j]) for i, cell in enumerate(cells) for j in range(n_sims)]
    runner = Parallel(n_jobs=n_jobs, return_as="generator")
    gen = runner(delayed(_one_study)(cell, ss, alpha, simulate_kw, model_kw) for cell, ss in tasks)
    if progress:
        from tqdm.auto import tqdm

        gen = tqdm(gen, total=len(tasks), desc="simulated studies", unit="study")
    sims = pd.DataFrame(list(gen))
    rows = []
    for cell in cells:
        mask = np.ones(len(sims), bool)
        for a in DESIGN_ARGS:
            mask &= sims[a].to_numpy() == cell[a]
        g = sims[mask]
        ok = g[g["error"].isna()]
        k, n = int(ok["significant"].sum()), len(ok)
        lo, hi = _wilson(k, n)
        rows.append({
            **cell, "n_sims": len(g), "n_failed": len(g) - n, "power": k / n if n else np.nan,
            "power_ci_low": lo, "power_ci_high": hi, "mean_estimate": ok["estimate"].mean(),
            "bias": ok["estimate"].mean() - cell["effect"], "mean_se": ok["se"].mean(),
            "empirical_sd": ok["estimate"].std(ddof=1), "coverage": ok["covered"].mean(),
            "share_singular": ok["singular"].mean(), "share_not_converged": 1 - ok["converged"].mean(),
        })
    table = pd.DataFrame(rows)
    failed = int(table["n_failed"].sum())
    if failed == len(sims):
        raise ModelSpecError(
            f"none of the {len(sims)} simulated studies could be analysed; the first error was: "
            f"{sims['error'].iloc[0]}. Check the design and simulate_study arguments"
        )
    if failed:
        first = sims.loc[sims["error"].notna(), "error"].iloc[0]
        warnings.warn(
            f"{failed} of {len(sims)} simulated studies could not be analysed and are left out (see .sims['error']); first: {first}",
            AllianceStatsWarning, stacklevel=user_stacklevel(),
        )
    settings = dict(alpha=alpha, n_sims=n_sims, seed=seed, model=model, covariates=list(covariates), df_method=df_method,
                    simulate_kw=dict(simulate_kw))
    return PowerResult(table=table, sims=sims, settings=settings)
