"""Number formatting for APA-style tables and summaries."""

from __future__ import annotations

import numpy as np


def apa_p(p: float, eq: bool = False) -> str:
    """p-value in APA style: '< .001', otherwise 3 decimals without the leading zero.

    With ``eq=True`` an exact value is prefixed by '= ' (for running text: 'p = .034').
    """
    if p is None or not np.isfinite(p):
        return "NA"
    if p < 0.001:
        return "< .001"
    s = f"{p:.3f}"
    s = s[1:] if s.startswith("0") else s
    return f"= {s}" if eq else s


def fmt_ci(lo: float, hi: float, digits: int = 2) -> str:
    """A confidence interval in brackets: '[0.12, 0.34]'."""
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"
