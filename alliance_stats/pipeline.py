"""The study pipeline (``alliance-stats demo`` / ``analyze``); it lives in :mod:`alliance_stats.study`."""

from .study import DEMO_INSTRUMENTS, demo_config, run_analyze, run_demo, run_study

__all__ = ["run_demo", "run_analyze", "run_study", "demo_config", "DEMO_INSTRUMENTS"]
