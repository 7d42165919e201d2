"""The registry of study steps: one :class:`Step` per analysis the pipeline can run.

A step module (``alliance_stats/study/steps/*.py``) declares its name, its configuration table
and keys (types and allowed values, the allowed values taken from the library's own constants),
what it needs from the configuration, and ``run(study) -> Section``. The configuration schema
(:mod:`alliance_stats.config`), ``[analyses] run`` and the generated configuration reference
(``docs/configuration.md``) are all built from this registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Key", "Step", "STEPS", "register", "all_steps"]

TEXT, NUMBER, INTEGER, TEXT_LIST, INTEGER_LIST, BOOLEAN = (
    "text", "a number", "a whole number", "a list of text", "a list of whole numbers", "true or false")


@dataclass(frozen=True)
class Key:
    """One key of a configuration table."""

    name: str
    kind: str = TEXT
    doc: str = ""
    required: bool = False
    allowed: tuple | None = None  # allowed values (each element of a list)
    default: object = None


@dataclass(frozen=True)
class Step:
    """One analysis of the pipeline.

    ``needs(cfg)`` returns None when the configuration has what the step needs, else the reason
    it cannot run (``"a [pqs] table"``); ``skip(study)`` (optional) looks at the loaded data and
    returns the reason the step is skipped (shown in the report), or None. ``run(study)``
    returns a :class:`~alliance_stats.study.section.Section`.
    """

    name: str
    title: str
    doc: str
    run: Callable
    table: str | None = None  # its configuration table ([ruptures], [pqs] ...)
    keys: tuple = ()
    needs: Callable = field(default=lambda cfg: None)
    skip: Callable | None = None
    default: bool = True  # run when [analyses] run is not given and the step's needs are met


STEPS: dict[str, Step] = {}


def register(step: Step) -> Step:
    if step.name in STEPS:
        raise RuntimeError(f"two study steps are called {step.name!r}")
    STEPS[step.name] = step
    return step


def all_steps() -> dict[str, Step]:
    """Every registered step, in the order the pipeline runs them."""
    from . import steps as _modules  # noqa: F401  (registers the steps on import)

    return STEPS
