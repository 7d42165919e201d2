"""alliance-stats: the therapeutic alliance research toolkit.

Load and score alliance and outcome measures, check their reliability, and relate the
alliance to outcome. Everything public is available flat: ``import alliance_stats as als``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

from .datasets import list_samples, load_sample, sample_path
from .exceptions import (
    AllianceStatsError,
    AllianceStatsWarning,
    ColumnError,
    ConfigError,
    DataFileError,
    DynamicPanelBiasWarning,
    InstrumentKeyError,
    ConvergenceWarning,
    InvalidValuesWarning,
    ItemRangeError,
    KeyReversalWarning,
    NestedDataWarning,
    IncompleteGroupsWarning,
    ModelSpecError,
    MultipleTherapistsWarning,
    OptionError,
    OutputPathError,
    SingularFitWarning,
    ProvisionalKeyWarning,
    QSortError,
    SessionDataError,
    ArgumentError,
    InsufficientDataError,
    MetaAnalysisError,
    DependentEffectsWarning,
    ConfigOptionError,
)
from .instruments import Instrument, get_instrument, instruments, register_instrument
from .io import PQS_DISTRIBUTION, PQS_DISTRIBUTION_VERIFICATION, Provenance, RowStep, SessionData, pseudonymize, read_qsorts, read_sessions, read_table, row_accounting, session_grid
from .models.lmm import GLMMResult, LMMResult, ModelComparison, all_fit, compare, glmm, lmm
from .models.dropout import DropoutResult, early_alliance_dropout
from .models.alliance import AllianceOutcomeResult, TherapistEffectsResult, alliance_outcome, decompose, therapist_effects
from .models.dynamics import DynamicPanelResult, RICLPMResult, dynamic_panel, ri_clpm
from .models.meta import MetaResult, aggregate_effects, meta_analysis
from .models.rupture import (RUPTURE_PRESETS, AllianceTrajectories, RuptureEpisodes, RuptureOutcomeResult, alliance_trajectories, detect_ruptures,
                             rupture_outcome, rupture_profile, rupture_summary)
from .models.pqs import (PQSAlliance, PQSItems, PQSPrototypeFit, PQSReliability, QFactorResult, pqs_alliance, pqs_items,
                         pqs_prototype_fit, pqs_reliability, q_factor_analysis)
from .models.sequences import LagSequentialResult, TransitionResult, lag_sequential, transitions
from .models.agreement import APIMResult, ResponseSurfaceResult, apim, partner_scores, response_surface
from .plots import (
    forest_plot,
    funnel_plot,
    plot_patient_series,
    plot_pqs_profile,
    plot_q_loadings,
    plot_reliable_change,
    plot_rupture_outcome,
    plot_rupture_profile,
    plot_therapist_effects,
    plot_trajectories,
    plot_transitions,
    plot_within_between,
    save_figure,
    score_label,
    set_theme,
    trajectories_grid,
)
from .tables import export_table
from .power import PowerResult, power_analysis
from .reliability import (MultilevelReliability, ReliabilityResult, ReliableChange, clinical_cutoffs, multilevel_reliability,
                          pre_post, reliability, reliable_change)
from .prepost import score_reliability
from .scoring import InstrumentRecord, resolve_items, score, score_instruments
from .simulate import ALLIANCE_TYPES, TREATMENT_PHASES, SimulatedStudy, simulate_study

try:
    __version__ = _version("alliance-stats")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    # instruments and scoring
    "Instrument",
    "instruments",
    "get_instrument",
    "register_instrument",
    "score",
    "score_instruments",
    "resolve_items",
    # loading
    "read_sessions",
    "SessionData",
    "Provenance",
    "RowStep",
    "InstrumentRecord",
    "read_table",
    "read_qsorts",
    "session_grid",
    "pseudonymize",
    "row_accounting",
    "PQS_DISTRIBUTION",
    "PQS_DISTRIBUTION_VERIFICATION",
    # reliability and change
    "reliability",
    "ReliabilityResult",
    "multilevel_reliability",
    "MultilevelReliability",
    "reliable_change",
    "ReliableChange",
    "pre_post",
    "clinical_cutoffs",
    "score_reliability",
    # mixed models and alliance-outcome
    "lmm",
    "all_fit",
    "LMMResult",
    "compare",
    "ModelComparison",
    "glmm",
    "GLMMResult",
    "decompose",
    "alliance_outcome",
    "AllianceOutcomeResult",
    "therapist_effects",
    "TherapistEffectsResult",
    # client and therapist ratings together
    "response_surface",
    "ResponseSurfaceResult",
    "apim",
    "APIMResult",
    "partner_scores",
    # dropout
    "early_alliance_dropout",
    "DropoutResult",
    # alliance and symptoms over sessions (dynamic panel models)
    "dynamic_panel",
    "DynamicPanelResult",
    "ri_clpm",
    "RICLPMResult",
    # meta-analysis
    "meta_analysis",
    "MetaResult",
    "aggregate_effects",
    # rupture-repair
    "detect_ruptures",
    "rupture_summary",
    "alliance_trajectories",
    "AllianceTrajectories",
    "rupture_outcome",
    "RuptureOutcomeResult",
    "RuptureEpisodes",
    "RUPTURE_PRESETS",
    # sequences of session states
    "transitions",
    "TransitionResult",
    "lag_sequential",
    "LagSequentialResult",
    # PQS
    "pqs_prototype_fit",
    "PQSPrototypeFit",
    "pqs_items",
    "PQSItems",
    "pqs_reliability",
    "PQSReliability",
    "q_factor_analysis",
    "QFactorResult",
    "pqs_alliance",
    "PQSAlliance",
    # figures
    "forest_plot",
    "funnel_plot",
    "plot_pqs_profile",
    "plot_transitions",
    "plot_patient_series",
    "plot_rupture_profile",
    "rupture_profile",
    "plot_within_between",
    "plot_therapist_effects",
    "plot_trajectories",
    "trajectories_grid",
    "plot_reliable_change",
    "plot_q_loadings",
    "plot_rupture_outcome",
    "set_theme",
    "save_figure",
    "score_label",
    # tables
    "export_table",
    # simulation, power and samples
    "power_analysis",
    "PowerResult",
    "simulate_study",
    "SimulatedStudy",
    "ALLIANCE_TYPES",
    "TREATMENT_PHASES",
    "list_samples",
    "load_sample",
    "sample_path",
    # errors and warnings
    "AllianceStatsError",
    "InstrumentKeyError",
    "ItemRangeError",
    "MultipleTherapistsWarning",
    "SessionDataError",
    "QSortError",
    "ColumnError",
    "ConfigError",
    "OptionError",
    "OutputPathError",
    "DataFileError",
    "AllianceStatsWarning",
    "ProvisionalKeyWarning",
    "InvalidValuesWarning",
    "KeyReversalWarning",
    "NestedDataWarning",
    "IncompleteGroupsWarning",
    "ModelSpecError",
    "ConvergenceWarning",
    "SingularFitWarning",
    "ArgumentError",
    "InsufficientDataError",
    "MetaAnalysisError",
    "DependentEffectsWarning",
    "ConfigOptionError",
    "DynamicPanelBiasWarning",
    "__version__",
]
