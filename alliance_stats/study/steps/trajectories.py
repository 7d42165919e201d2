"""Session-by-session trajectories and per-patient trajectory patterns."""

from __future__ import annotations

from ..registry import Step, register
from ..section import Section


def run(study) -> Section:
    from ...models.rupture import alliance_trajectories
    from ...plots import plot_trajectories, trajectories_grid

    s = study.sessions
    sec = Section("trajectories", STEP.title)
    sec.methods = (
        "Session-by-session scores: one thin line per patient and the mean per session with a t-based 95% band, "
        "drawn where at least 5 patients were seen. Each patient's alliance series was also fitted with a linear "
        "and a quadratic trend (OLS) and labelled V-shaped, U-shaped, linear growth/decline or stable by the "
        "documented rules of als.alliance_trajectories (after Stiles et al. 2004)."
    )
    for col in (study.alliance, study.outcome):
        ax = plot_trajectories(s, col, max_patients=120, seed=study.seed)
        ax.set_title(f"{col} by session", fontsize=10)
        sec.add_figure(f"trajectories_{col}", f"{col}: patients (thin) and mean with 95% band", ax)
        sec.accounting.append(f"{col}: {int(s[col].notna().sum())} sessions drawn, {int(s[col].isna().sum())} without a score not drawn.")
    traj = alliance_trajectories(s, study.alliance).table
    counts = traj["pattern"].value_counts(dropna=False).rename_axis("pattern").reset_index(name="patients")
    counts["pattern"] = counts["pattern"].fillna("not assessable (fewer than 4 scored sessions)")
    sec.add_table("trajectory_patterns", "Alliance trajectory patterns", counts)
    sec.add_file("trajectories_by_patient", traj)
    merged = s.merge(traj[["patient", "pattern"]].dropna(), on="patient")
    grid = trajectories_grid(merged, study.alliance, col="pattern", min_n=3)
    sec.add_figure("trajectories_by_pattern", "Alliance trajectories by pattern", grid)
    n_out = int(traj["pattern"].isna().sum())
    sec.accounting.append(f"{len(traj) - n_out} patients classified; {n_out} with fewer than 4 scored sessions not classified.")
    return sec


STEP = register(Step("trajectories", "Trajectories",
                     "Patient lines with the session mean and its 95% band; trajectory patterns of the alliance.", run))
