"""Each patient's first and last score (``pre_post``) and the reliability of a scored column
(``score_reliability``): the inputs of a reliable-change analysis from session data."""

from __future__ import annotations

import pandas as pd

from .exceptions import ColumnError, InsufficientDataError
from .validation import need_columns, numeric_column, require_frame

__all__ = ["pre_post", "score_reliability"]


def pre_post(data: pd.DataFrame, score: str, *, patient: str = "patient", session: str = "session") -> pd.DataFrame:
    """Each patient's first and last scored session of ``score``.

    Parameters
    ----------
    data : DataFrame
        Session rows (long format). Not modified.
    score : str
        The scored column (e.g. ``"phq9_total"``).
    patient, session : str
        ID and session-number columns.

    Returns
    -------
    DataFrame
        Indexed by patient: ``pre`` and ``post`` (the scores of the first and the last session
        with a score), ``pre_session``, ``post_session`` and ``n_scores``. A patient with a
        single score has ``post`` missing; patients with no score are not in the table.
        ``attrs["alliance_stats"]`` counts the patients with two or more scores
        (``n_patients``), one score (``n_single``) and none (``n_none``).

    Examples
    --------
    >>> df = pd.DataFrame({"patient": ["a", "a", "a", "b"], "session": [1, 2, 3, 1],
    ...                    "phq9_total": [20, None, 12, 15]})
    >>> pre_post(df, "phq9_total")
             pre  post  pre_session  post_session  n_scores
    patient
    a       20.0  12.0            1           3.0         2
    b       15.0   NaN            1           NaN         1
    """
    require_frame(data)
    need_columns(data, {"score": score, "patient": patient, "session": session})
    values = numeric_column(data, score)
    frame = pd.DataFrame({"patient": data[patient], "session": data[session], "score": values})
    n_all = frame["patient"].nunique()
    s = frame.dropna(subset=["score"]).sort_values(["patient", "session"], kind="stable")
    if s.empty:
        raise InsufficientDataError(f"no patient has a {score!r} score; pre_post needs scored sessions")
    g = s.groupby("patient", sort=True)
    out = pd.DataFrame({"pre": g["score"].first(), "post": g["score"].last(), "pre_session": g["session"].first(),
                        "post_session": g["session"].last(), "n_scores": g.size()})
    single = out["n_scores"] < 2
    out.loc[single, ["post", "post_session"]] = float("nan")
    out.index.name = "patient"
    out.attrs["alliance_stats"] = {"score": score, "n_patients": int((~single).sum()), "n_single": int(single.sum()),
                                   "n_none": int(n_all - len(out))}
    return out


def score_reliability(data: pd.DataFrame, score: str, instruments, *, patient: str = "patient",
                      session: str = "session") -> dict:
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
    dict
        ``reliability`` (alpha), ``instrument``, ``scale``, ``n`` (patients used) and
        ``source`` (the words for a methods section).

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
        first = data.sort_values([patient, session], kind="stable").groupby(patient, sort=False).head(1)
        r = reliability(first, name, items=items)
        if scale not in set(r["scale"]):
            raise ColumnError(f"{score!r} is not a scale of {name} (its scales: {', '.join(r['scale'])}); give the "
                              "reliability of the score yourself")
        row = r.loc[r["scale"] == scale].iloc[0]
        return {"reliability": float(row["alpha"]), "instrument": inst.name, "scale": scale, "n": int(row["n"]),
                "source": f"Cronbach's alpha of the {inst.name} {scale} scale at each patient's first session"}
    raise ColumnError(f"{score!r} is not the score of a configured instrument ({', '.join(dict(instruments))}); "
                      "give the reliability of the score yourself")
