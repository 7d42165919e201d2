"""The study pipeline behind ``alliance-stats demo`` and ``alliance-stats analyze``: a registry of
steps (:mod:`.registry`), one module per analysis (:mod:`.steps`), run by :func:`run_study`;
the report (:mod:`alliance_stats.report`) renders each step's :class:`~.section.Section`."""

from .registry import STEPS, Key, Step, all_steps
from .run import DEMO_INSTRUMENTS, Study, demo_config, run_analyze, run_demo, run_study
from .section import ResultItem, Section

__all__ = ["run_demo", "run_analyze", "run_study", "demo_config", "DEMO_INSTRUMENTS", "Study", "Section", "ResultItem",
           "Step", "Key", "STEPS", "all_steps"]
