"""First-order transitions between session states."""

from __future__ import annotations

from ..registry import Step, register
from ..section import Section


def _needs(cfg):
    return None if cfg.get("variables", "state") is not None else "'state' in [variables]"


def run(study) -> Section:
    from ..._format import apa_p
    from ...models.sequences import transitions

    state = study.column("variables", "state")
    tr = transitions(study.sessions, state, states=study.var.get("states"))
    sec = Section("transitions", f"Transitions between session states ({state})")
    sec.add_result("transitions_apa", "Transition probabilities [95% CI] (row = from)", tr,
                   figure="transitions", figure_caption="Transition probabilities")
    sec.add_file("transition_counts", tr.counts, index=True)
    t = tr.test
    sec.text.append(f"G²({t['df']}) = {t['g2']:.2f}, p {apa_p(t['p'], eq=True)}.")
    return sec


STEP = register(Step("transitions", "Transitions between session states",
                     "First-order Markov transitions between the session states of [variables] state.", run, needs=_needs))
