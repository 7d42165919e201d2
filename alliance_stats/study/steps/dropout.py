"""Early alliance and dropout (issue #18)."""

from __future__ import annotations

import pandas as pd

from ..registry import INTEGER_LIST, TEXT, TEXT_LIST, Key, Step, register
from ..section import Section

KEYS = (
    Key("dropout", TEXT, "column marking patients who left before the agreed end (0/1 or true/false, one value per patient)",
        required=True),
    Key("file", TEXT, "a patient-level file holding the dropout column (and covariates), relative to the configuration "
                      "file; without it the column is read from the session data"),
    Key("patient", TEXT, "patient ID column of that file (required with file)"),
    Key("sessions", INTEGER_LIST, "the early sessions whose alliance is averaged (default [1, 2, 3])"),
    Key("covariates", TEXT_LIST, "numeric patient-level columns to adjust for"),
)


def _needs(cfg):
    return None if cfg.has("dropout") else "a [dropout] table naming the dropout column"


def _data(study) -> pd.DataFrame:
    """The sessions with the patient-level dropout column (merged from [dropout] file if given)."""
    from ...io import read_table
    from ...validation import ids_to_text

    cfg = study.cfg
    c = cfg.values["dropout"]
    if c.get("file") is None:
        study.column("dropout", "dropout")
        return study.sessions, 0, None
    if c.get("patient") is None:
        raise cfg.error("dropout", "file", "give 'patient', the patient ID column of the dropout file")
    src = cfg.path("dropout")
    study.inputs.append(("patient file (dropout)", src))
    table, _ = read_table(src)
    pid = study.column("dropout", "patient", df=table)
    wanted = [study.column("dropout", "dropout", df=table)]
    wanted += [study.column("dropout", "covariates", df=table, value=v) for v in c.get("covariates", [])]
    clash = [w for w in wanted if w in study.sessions.columns]
    if clash:
        raise cfg.error("dropout", "file", f"column(s) {', '.join(clash)} are both in the session data and in {src.name}; "
                                           "keep them in one of the two")
    ids, _ = ids_to_text(table[pid])  # the package's one ID rule, as read_sessions applies it
    if ids.duplicated().any():
        raise cfg.error("dropout", "patient", f"{src.name} has more than one row for patient "
                                              f"{ids[ids.duplicated()].iloc[0]!r}; give one row per patient")
    pat = table[wanted].assign(patient=ids.to_numpy())
    unmatched = int((~pat["patient"].isin(study.sessions["patient"])).sum())
    return study.sessions.merge(pat, on="patient", how="left", validate="many_to_one"), unmatched, src.name


def run(study) -> Section:
    from ...models.dropout import early_alliance_dropout

    c = study.cfg.values["dropout"]
    data, unmatched, src = _data(study)
    res = early_alliance_dropout(data, alliance=study.alliance, dropout=c["dropout"], therapist="therapist" if study.has_therapist else None,
                                 sessions=tuple(c.get("sessions", (1, 2, 3))), covariates=tuple(c.get("covariates", ())))
    sec = Section("dropout", STEP.title)
    sec.add_result("dropout_apa", "Early alliance and dropout: odds ratios and d-equivalents", res,
                   figure="dropout_probability", figure_caption="Predicted probability of dropout over early alliance (95% CI)")
    sec.add_figure("dropout_survival", "Staying in treatment by tertile of early alliance: life table and model",
                   res.plot(ax=None, kind="survival"))
    sec.add_file("dropout_patients", res.patients)
    sec.add_file("dropout_excluded", res.excluded)
    if unmatched:
        sec.accounting.append(f"{unmatched} patient(s) of {src} have no session data and were left out.")
    return sec


STEP = register(Step(
    "dropout", "Early alliance and dropout",
    "Early alliance (mean and slope of the first sessions) as a predictor of dropout: logistic (mixed) model, "
    "odds ratios, d-equivalent and discrete-time survival.",
    run, table="dropout", keys=KEYS, needs=_needs,
))
