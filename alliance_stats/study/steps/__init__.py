"""The study steps, one module each; importing this package registers them in pipeline order."""

from . import (  # noqa: F401  (order = the order the pipeline runs them)
    reliability,
    trajectories,
    reliable_change,
    alliance_outcome,
    therapist_effects,
    ruptures,
    transitions,
    dynamics,
    dropout,
    agreement,
    pqs,
    meta,
)
