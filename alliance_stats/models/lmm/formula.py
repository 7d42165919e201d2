"""lme4-style model formulas: split the random-effect terms off and describe them.

``y ~ x + (1 + x | patient)``, ``(0 + x | g)``, ``(1 + x || g)`` (uncorrelated), nested
``(1 | therapist/patient)`` (= ``(1 | therapist) + (1 | therapist:patient)``) and interaction
grouping ``(1 | therapist:patient)``.  The fixed part and each term's left-hand side are
ordinary formulaic formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...exceptions import ModelSpecError


@dataclass(frozen=True)
class RandomTerm:
    expr: str  # formulaic right-hand side for the term's columns ("1", "1 + x", "0 + x")
    group: tuple  # grouping columns; more than one = their interaction
    text: str  # as written, for messages


def _strip(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == "`":
        return name[1:-1]
    return name


def _split_top(s: str, sep: str):
    """Split on ``sep`` at parenthesis depth 0 (outside backticks)."""
    out, depth, cur, tick = [], 0, [], False
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "`":
            tick = not tick
        elif not tick and ch == "(":
            depth += 1
        elif not tick and ch == ")":
            depth -= 1
        if not tick and depth == 0 and s.startswith(sep, i):
            out.append("".join(cur))
            cur = []
            i += len(sep)
            continue
        cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


def parse_formula(formula: str):
    """Return (response, fixed_rhs, [RandomTerm]) for an lme4-style formula."""
    if not isinstance(formula, str) or "~" not in formula:
        raise ModelSpecError(f"formula must be a string like 'outcome ~ x + (1 | patient)', got {formula!r}")
    lhs, rhs = formula.split("~", 1)
    lhs = lhs.strip()
    if not lhs:
        raise ModelSpecError(f"formula {formula!r} has no outcome on the left of '~'")
    fixed_parts, randoms = [], []
    for part in _split_top(rhs, "+"):
        t = part.strip()
        if not t:
            continue
        inner = t[1:-1] if t.startswith("(") and t.endswith(")") else None
        if inner is not None and len(_split_top(inner, "|")) > 1:
            randoms.extend(_random_terms(inner, t))
        elif "|" in t and not t.startswith("I("):
            raise ModelSpecError(f"random-effect term {t!r} must be in parentheses, e.g. (1 | patient)")
        else:
            fixed_parts.append(t)
    if not randoms:
        raise ModelSpecError(
            f"formula {formula!r} has no random-effect term such as (1 | patient); "
            "a model without one is an ordinary regression (use statsmodels.formula.api.ols)"
        )
    fixed = " + ".join(fixed_parts) if fixed_parts else "1"
    return lhs, fixed, randoms


def _random_terms(inner: str, text: str):
    uncorrelated = len(_split_top(inner, "||")) == 2
    expr, grp = (_split_top(inner, "||") if uncorrelated else _split_top(inner, "|"))
    expr, grp = expr.strip(), grp.strip()
    if not expr or not grp:
        raise ModelSpecError(f"random-effect term {text!r} needs a left and a right side, e.g. (1 + session | patient)")
    if any(c in grp for c in "()+*"):
        raise ModelSpecError(f"grouping {grp!r} in {text!r}: write a column name, a nesting a/b or an interaction a:b")
    nest = [_strip(x) for x in grp.split("/")]
    groups = []
    for k in range(len(nest)):
        cols = []
        for piece in nest[: k + 1]:
            cols.extend(_strip(c) for c in piece.split(":"))
        groups.append(tuple(cols))
    if uncorrelated:
        pieces = [p.strip() for p in _split_top(expr, "+") if p.strip()]
        no_int = any(p in ("0", "-1") for p in pieces) or expr.replace(" ", "").startswith("-1")
        rest = [p for p in pieces if p not in ("0", "1", "-1")]
        exprs = ([] if no_int else ["1"]) + [f"0 + {p}" for p in rest]
    else:
        exprs = [expr]
    return [RandomTerm(e, g, text) for g in groups for e in exprs]
