"""The reliability of a scored column (``score_reliability``), for a reliable-change analysis from session
data (each patient's first and last score: :func:`alliance_stats.pre_post`)."""

from __future__ import annotations

import pandas as pd

from .exceptions import ColumnError
from .validation import need_columns, require_frame

__all__ = ["score_reliability"]


def score_reliability(data: pd.DataFrame, score: str, instruments, *, patient: str = "patient",
                      session: str = "session"):
    """Cronbach's alpha of the scale whose score is ``score``, at each patient's first session.

    The reliability a reliable-change index needs when no published value is given: one rating
    per patient (the first session), so that the sessions of one patient do not count as
    independent respondents.

    Parameters
    ----------
    data : DataFrame
        Session rows holding the item columns. Not modified.
    score : str
        A scored column, ``<prefix>_<scale>`` (``"phq9_total"``, ``"wai_sr_bond"``).
    instruments : mapping
        Instrument name -> its item columns (pattern, list or mapping), as given to
        :func:`alliance_stats.read_sessions`.

    Returns
    -------
    ReliabilityResult
        :func:`alliance_stats.reliability` of that one scale on each patient's first scored
        session (``.table`` has one row: alpha with its CI, omega, ``n`` patients used;
        ``methods()`` and ``accounting()`` as every result).

    Raises
    ------
    ColumnError
        When ``score`` is not the score of a scale of one of ``instruments``.
    """
    from .instruments import get_instrument
    from .reliability import reliability

    require_frame(data)
    need_columns(data, {"patient": patient, "session": session})
    for name, items in dict(instruments).items():
        inst = get_instrument(name)
        if not str(score).startswith(inst.prefix + "_"):
            continue
        scale = str(score)[len(inst.prefix) + 1:]  # "phq9_total" -> "total", "wai_sr_bond" -> "bond"
        scales = list(inst.scales)
        if scale not in scales:
            raise ColumnError(f"{score!r} is not a scale of {name} (its scales: {', '.join(scales)}); give the "
                              "reliability of the score yourself")
        first = data.sort_values([patient, session], kind="stable").groupby(patient, sort=False).head(1)
        return reliability(first, name, items=items, scales=[scale])
    raise ColumnError(f"{score!r} is not the score of a configured instrument ({', '.join(dict(instruments))}); "
                      "give the reliability of the score yourself")
