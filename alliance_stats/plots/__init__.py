"""Figures for papers, one module per domain; the style (palette, labels, theme, saving) lives in
``plots._style``. Plots only draw: they take data or a fitted result and never fit a model.
Axes-level functions take ``ax=None`` (keyword-only) and return the Axes; figure-level ones are named
``*_grid`` and return a seaborn grid."""

from ._style import (ACCENT, DPI, INK, JOURNAL_WIDTH_IN, JOURNAL_WIDTH_MM, LINE_ART_DPI, MUTED,  # noqa: F401
                     OKABE_ITO, RCI_COLORS, SUBMISSION_RC, save_figure, save_for_submission, score_label, set_theme)
from .alliance import plot_therapist_effects, plot_trajectories, plot_within_between, trajectories_grid
from .change import plot_reliable_change
from .meta import forest_plot, funnel_plot
from .pqs import plot_pqs_profile, plot_q_loadings
from .rupture import plot_patient_series, plot_rupture_outcome, plot_rupture_profile
from .sequences import plot_transitions

__all__ = ["forest_plot", "funnel_plot", "plot_pqs_profile", "plot_transitions", "plot_patient_series", "plot_rupture_profile",
           "plot_within_between", "plot_therapist_effects", "plot_trajectories", "plot_reliable_change",
           "trajectories_grid", "plot_q_loadings", "plot_rupture_outcome",
           "set_theme", "save_figure", "score_label"]
