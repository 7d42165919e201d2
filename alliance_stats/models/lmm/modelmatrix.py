"""R's model frame and model matrix for the lmm's formulas (``stats::model.frame`` and
``model.matrix`` as ``lme4::lFormula`` calls them).

The variables of a formula (:class:`.formula.Variable`) are evaluated as R evaluates them:

- a numeric column is a column; a text, categorical or boolean column is a factor;
- arithmetic is R's (``I(x^2)`` is the square), with ``log(x)`` (``log(x, base)``), ``log2``,
  ``log10``, ``log1p``, ``exp``, ``expm1``, ``sqrt``, ``abs`` and numpy's element-wise functions
  (``np.log(x)``);
- ``poly(x, k)``: R's orthogonal polynomials (QR of the centred powers; ``coefs`` alpha and
  norm2 kept, and new data evaluated by R's three-term recurrence, as ``predict``), or
  ``poly(x, k, raw = TRUE)`` for x, x^2, ...;
- ``scale(x)``: centred and divided by the SD (n - 1), as R's ``scale``;
- ``factor(x)``, ``as.factor(x)``, ``C(x)``, ``relevel(x, ref = "b")``: factors.

As R's ``model.frame``, ``poly()`` and ``scale()`` are computed over every row of the data (rows
left out for a missing value in *another* column included; a missing value of their own variable
is refused by ``poly``, skipped by ``scale``), then the incomplete rows are left out. Factor
levels are those present in the rows used (lme4's ``drop.unused.levels``): a categorical
column's categories in their order, FALSE/TRUE, otherwise sorted (Python's order: capitals
before lower case, where R's sort follows the locale); the first is the reference
(treatment contrasts). Columns follow ``model.matrix``: intercept, then the terms in order;
a factor is coded by treatment contrasts when the term without it is already in the model
(including the intercept) and by one indicator per level otherwise; in an interaction the first
variable varies fastest.

Column names: ``Intercept``; a column's own name, or the R spelling of an expression
(``I(session^2)``, ``log(x + 1)``, ``scale(x)``); ``x[T.b]`` for level b of a factor coded by
treatment contrasts and ``x[b]`` for an indicator of level b; ``poly(x, 2)[1]`` for the columns
of a multi-column variable; interactions joined by ``:``. R's name is this without the brackets
and ``T.`` (``x[T.b]`` is R's ``xb``), and ``(Intercept)`` for ``Intercept``.
"""

from __future__ import annotations

import ast
import operator

import numpy as np
import pandas as pd

from ...exceptions import ColumnError, ModelSpecError, _fmt_labels, _show
from .formula import NUMPY_CALL, Terms, Variable, deparse, call_args

_FACTOR_FUNCS = ("factor", "as.factor", "C", "relevel")
_MATH = {"log2": np.log2, "log10": np.log10, "log1p": np.log1p, "exp": np.exp, "expm1": np.expm1, "sqrt": np.sqrt, "abs": np.abs}
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: np.power, ast.Mod: np.mod, ast.FloorDiv: np.floor_divide}
_CMPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
         ast.GtE: operator.ge}


class Factor:
    """A categorical variable on the rows evaluated. ``order``: the levels' order when the data
    type fixes it (a categorical's categories, FALSE/TRUE); ``ref``: relevel()'s reference."""

    def __init__(self, values, order=None, ref=None):
        self.values = np.asarray(values)
        self.order, self.ref = order, ref

    def missing(self) -> np.ndarray:
        return np.asarray(pd.isna(self.values), bool)


class Rows:
    """The rows a formula is evaluated on. ``get(column)`` gives (values, dtype); when fitting,
    ``full`` is the same for all rows of the data (where R's model.frame computes poly() and
    scale()) and ``mask`` marks these rows among them."""

    def __init__(self, get, n, labels, full=None, mask=None):
        self.get, self.n, self.labels, self.full, self.mask = get, n, labels, full, mask

    @classmethod
    def of_frame(cls, data: pd.DataFrame, what: str):
        def get(c):
            if c not in data.columns:
                raise ColumnError(f"the new data lack the column {c!r}, which {what} uses")
            col = data[c]
            if isinstance(col, pd.DataFrame):
                raise ColumnError(f"the new data have more than one column named {c!r}")
            return col.to_numpy(), col.dtype

        return cls(get, len(data), lambda pos: data.index[pos])


def _floats(values, dtype) -> np.ndarray:
    if isinstance(dtype, np.dtype) and dtype.kind in "fiub":
        return values.astype(float)
    return pd.array(values, dtype=dtype).to_numpy(dtype=float, na_value=np.nan)


def _arith(v):
    """Logical values in arithmetic count as 0/1, as in R."""
    return v.astype(float) if isinstance(v, np.ndarray) and v.dtype == bool else v


def _is_numeric(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


class Evaluator:
    """Evaluates variables on rows; ``state`` holds what fitting fixed (poly coefficients, scale
    centre and SD, factor levels) so that new data are evaluated the same way."""

    def __init__(self, state: dict, fitting: bool):
        self.state, self.fitting = state, fitting

    # -- a whole variable -------------------------------------------------------------------------
    def variable(self, var: Variable, rows: Rows):
        """(n, k) floats with k column names (None for one column), or a Factor."""
        t = var.tree
        if isinstance(t, ast.Name):
            values, dtype = rows.get(var.names[t.id])
            if _is_numeric(dtype):
                return _floats(values, dtype)[:, None], None
            return self._factor_of(values, dtype), None
        if isinstance(t, ast.Call):
            fname = var.names[t.func.id]
            if fname in _FACTOR_FUNCS:
                return self._factor(t, var, rows), None
            if fname == "poly":
                return self._poly(t, var, rows)
            if fname == "offset":
                raise ModelSpecError(f"{var.text}: an offset is a term of its own (+ offset(x)), not part of another term")
        v = np.asarray(self._num(t, var, rows))
        v = np.broadcast_to(v, (rows.n,)) if v.ndim == 0 else v
        if v.dtype == bool:
            return Factor(v, order=[False, True]), None
        return v.astype(float)[:, None], None

    def numeric(self, node, var: Variable, rows: Rows) -> np.ndarray:
        v = np.asarray(self._num(node, var, rows))
        return np.broadcast_to(v, (rows.n,)).astype(float) if v.ndim == 0 else v.astype(float)

    # -- arithmetic --------------------------------------------------------------------------------
    def _num(self, node, var, rows):
        if isinstance(node, ast.Name):
            col = var.names[node.id]
            values, dtype = rows.get(col)
            if pd.api.types.is_numeric_dtype(dtype):
                v = _floats(values, dtype)
                # a logical column stays logical (I(x) is a factor in R) until arithmetic makes it numeric
                return v.astype(bool) if pd.api.types.is_bool_dtype(dtype) and not np.isnan(v).any() else v
            raise ModelSpecError(
                f"column {col!r} is not numeric ({dtype}), so {var.text} cannot be computed; "
                f"for a categorical predictor write factor({col}) as a term of its own"
            )
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                raise ModelSpecError(f"text {node.value!r} in {var.text} is not a number")
            return float(node.value)
        with np.errstate(all="ignore"):
            if isinstance(node, ast.BinOp):
                return _BINOPS[type(node.op)](_arith(self._num(node.left, var, rows)), _arith(self._num(node.right, var, rows)))
            if isinstance(node, ast.UnaryOp):
                v = _arith(self._num(node.operand, var, rows))
                return -v if isinstance(node.op, ast.USub) else v
            if isinstance(node, ast.Compare):
                return _CMPS[type(node.ops[0])](self._num(node.left, var, rows), self._num(node.comparators[0], var, rows))
            return self._call(node, var, rows)

    def _call(self, node, var, rows):
        fname = var.names[node.func.id]
        if fname == "scale":
            return self._scale(node, var, rows)
        if fname in ("poly", "offset") or fname in _FACTOR_FUNCS:
            raise ModelSpecError(f"{deparse(node, var.names)} inside {var.text}: write {fname}() as a term of its own")
        a = call_args(node, var.names)
        if "args" in a:  # numpy
            return getattr(np, NUMPY_CALL.match(fname).group(2))(*[self._num(x, var, rows) for x in a["args"]])
        x = self._num(a["x"], var, rows)
        if fname == "log":
            return np.log(x) if a["base"] is None else np.log(x) / np.log(a["base"])
        return x if fname == "I" else _MATH[fname](x)

    # -- scale() and poly(): fitted over all rows of the data ----------------------------------------
    def _fit_rows(self, rows):
        return rows.full if rows.full is not None else rows

    def _scale(self, node, var, rows):
        here = deparse(node, var.names)
        a = call_args(node, var.names)
        key = ("scale", here)
        if self.fitting and key not in self.state:
            xa = self.numeric(a["x"], var, self._fit_rows(rows))
            ok = np.isfinite(xa)
            c, s = a["center"], a["scale"]
            centre = float(xa[ok].mean()) if c is True else (0.0 if c is False else float(c))
            xc = xa[ok] - centre
            sd = float(np.sqrt((xc**2).sum() / max(1, ok.sum() - 1))) if s is True else (1.0 if s is False else float(s))
            if not ok.any() or sd == 0 or not np.isfinite(sd):
                raise ModelSpecError(f"{here}: the variable is constant (SD 0), so it cannot be scaled; leave it out or centre it only")
            self.state[key] = (centre, sd)
        centre, sd = self.state[key]
        return (self._num(a["x"], var, rows) - centre) / sd

    def _poly(self, node, var, rows):
        here = deparse(node, var.names)
        a = call_args(node, var.names)
        degree = a["degree"]
        names = [str(k) for k in range(1, degree + 1)]
        if a["raw"]:
            x = self.numeric(a["x"], var, rows)
            return np.column_stack([x**k for k in range(1, degree + 1)]), names
        key = ("poly", here)
        if self.fitting and key not in self.state:
            fr = self._fit_rows(rows)
            xa = self.numeric(a["x"], var, fr)
            bad = ~np.isfinite(xa)
            if bad.any():
                raise ModelSpecError(
                    f"{here}: the variable is missing or not finite at rows {_fmt_labels(fr.labels(np.flatnonzero(bad)).tolist())} "
                    "of the data. As R's poly(), the polynomials are computed over every row of the data, and missing "
                    "values are refused: drop those rows from the data first"
                )
            distinct = len(np.unique(xa))
            if distinct <= degree:
                raise ModelSpecError(f"{here}: the degree must be less than the number of distinct values ({distinct})")
            Z, coefs = _poly_fit(xa, degree)
            self.state[key] = coefs
            return (Z if rows.mask is None else Z[rows.mask]), names
        alpha, norm2 = self.state[key]
        return _poly_predict(self.numeric(a["x"], var, rows), alpha, norm2), names

    # -- factors ---------------------------------------------------------------------------------------
    @staticmethod
    def _factor_of(values, dtype):
        if isinstance(dtype, pd.CategoricalDtype):
            return Factor(values, order=list(dtype.categories))
        if pd.api.types.is_bool_dtype(dtype):
            return Factor(values, order=[False, True])
        return Factor(values)

    def _factor(self, node, var, rows):
        a = call_args(node, var.names)
        inner = a["x"]
        if isinstance(inner, ast.Name):
            values, dtype = rows.get(var.names[inner.id])
            f = self._factor_of(values, dtype)
        elif isinstance(inner, ast.Call) and var.names[inner.func.id] in _FACTOR_FUNCS:
            f = self._factor(inner, var, rows)
        else:
            v = np.asarray(self._num(inner, var, rows))
            f = Factor(v, order=[False, True] if v.dtype == bool else None)
        if a.get("ref") is not None:
            f.ref = a["ref"]
        return f

    def levels(self, var: Variable, f: Factor, rows: Rows) -> list:
        """The factor's levels: fixed from the rows used when fitting, stored for new data."""
        key = ("levels", var.text)
        if not self.fitting or key in self.state:
            return self.state[key]
        vals = f.values[~f.missing()]
        present = pd.unique(vals)
        if f.order is not None:
            seen = set(present.tolist())
            levels = [v for v in f.order if v in seen]
        else:
            try:
                levels = sorted(present.tolist())
            except TypeError:
                levels = sorted(present.tolist(), key=str)
        if f.ref is not None:
            match = [v for v in levels if v == f.ref or str(v) == str(f.ref)]
            if not match:
                raise ModelSpecError(f"{var.text}: the reference level {_show(f.ref)} is not among the levels {_fmt_labels(levels)}")
            levels = match[:1] + [v for v in levels if v is not match[0]]
        if len(levels) < 2:
            raise ModelSpecError(
                f"{var.label} has one level ({_fmt_labels(levels)}) in the {rows.n} rows used: a factor needs two or more "
                "levels to be compared (R: 'contrasts can be applied only to factors with 2 or more levels'). Leave it "
                "out of the formula, or check which rows were kept"
            )
        self.state[key] = levels
        return levels


def _poly_fit(x, degree):
    """R's poly(x, degree): the QR of the centred powers gives the monic orthogonal polynomials
    (Q times the diagonal of R), normalised to unit length; alpha and norm2 evaluate them on new
    data by the three-term recurrence (see :func:`_poly_predict`)."""
    xbar = x.mean()
    xc = x - xbar
    X = np.vander(xc, degree + 1, increasing=True)
    Q, R = np.linalg.qr(X)
    Z = Q * np.diag(R)
    norm2 = (Z**2).sum(axis=0)
    alpha = ((xc[:, None] * Z**2).sum(axis=0) / norm2 + xbar)[:degree]
    norm2 = np.r_[1.0, norm2]
    return (Z / np.sqrt(norm2[1:]))[:, 1:], (alpha, norm2)


def _poly_predict(x, alpha, norm2):
    """R's predict for poly(): the recurrence with the fitted alpha and norm2."""
    degree = len(alpha)
    Z = np.ones((len(x), degree + 1))
    Z[:, 1] = x - alpha[0]
    for i in range(1, degree):
        Z[:, i + 1] = (x - alpha[i]) * Z[:, i] - (norm2[i + 1] / norm2[i]) * Z[:, i - 1]
    return (Z / np.sqrt(norm2[1:]))[:, 1:]


def _level_name(v) -> str:
    return str(v.item() if hasattr(v, "item") else v)


class MatrixSpec:
    """How one right-hand side (the fixed part, or a random term's left side) becomes columns:
    the terms, the coding fixed at the fit, and the shared evaluation state."""

    def __init__(self, terms: Terms, state: dict, what: str):
        self.terms, self.state, self.what = terms, state, what
        self.coding = None  # {(term index, variable index): 1 contrasts / 2 indicators}
        self.names = None

    def fit(self, rows: Rows):
        """The model matrix on the rows used, and its column names; fixes the coding."""
        ev = Evaluator(self.state, fitting=True)
        values = self._values(ev, rows, check=True)
        t = self.terms
        coding = {}
        for k, term in enumerate(t.terms):
            for i in term:
                rest = set(term) - {i}
                covered = not rest or any(rest <= set(prev) for prev in t.terms[:k])
                coding[k, i] = 1 if covered else 2
        if not t.intercept:  # R: the first factor of the first term with a factor gets all its levels
            first = next(((k, i) for k, term in enumerate(t.terms) for i in term if isinstance(values[i][0], Factor)), None)
            if first is not None:
                coding[first] = 2
        self.coding = coding
        M, self.names = self._assemble(ev, values, rows)
        return M, self.names

    def build(self, data: pd.DataFrame) -> np.ndarray:
        """The same columns for new data (R's predict with the fitted coefficients and levels);
        rows with a missing value give NaN."""
        rows = Rows.of_frame(data, self.what)
        ev = Evaluator(self.state, fitting=False)
        return self._assemble(ev, self._values(ev, rows, check=False), rows)[0]

    def _values(self, ev, rows, check):
        t = self.terms
        values = {}
        for i in sorted({i for term in t.terms for i in term}):
            var = t.variables[i]
            val = ev.variable(var, rows)
            if check and not isinstance(val[0], Factor):
                bad = ~np.isfinite(val[0]).all(axis=1)
                if bad.any():
                    raise ModelSpecError(
                        f"{var.text} is not a finite number at rows {_fmt_labels(rows.labels(np.flatnonzero(bad)).tolist())} "
                        f"(e.g. the log of zero or of a negative number); correct the data or the term"
                    )
            values[i] = val
        return values

    def _assemble(self, ev, values, rows):
        t, n = self.terms, rows.n
        cols, names = [], []
        if t.intercept:
            cols.append(np.ones((n, 1)))
            names.append("Intercept")
        for k, term in enumerate(t.terms):
            M, N = None, None
            for i in term:
                var = t.variables[i]
                val, colnames = values[i]
                if isinstance(val, Factor):
                    levels = ev.levels(var, val, rows)
                    codes = pd.Index(levels).get_indexer(val.values)
                    miss = val.missing()
                    new = (codes < 0) & ~miss
                    if new.any():
                        unseen = pd.unique(val.values[new]).tolist()
                        raise ModelSpecError(
                            f"{var.label} has level(s) {_fmt_labels(unseen)} in the new data that were not in the fitted "
                            f"data ({_fmt_labels(levels)}); its effect is unknown for them"
                        )
                    full = self.coding[k, i] == 2
                    use = range(len(levels)) if full else range(1, len(levels))
                    V = (codes[:, None] == np.array(list(use))[None, :]).astype(float)
                    if miss.any():
                        V[miss] = np.nan
                    vn = [f"{var.label}[{'' if full else 'T.'}{_level_name(levels[j])}]" for j in use]
                else:
                    V = val
                    vn = [var.label] if V.shape[1] == 1 else [f"{var.label}[{c}]" for c in colnames]
                if M is None:
                    M, N = V, vn
                else:
                    M = (M[:, None, :] * V[:, :, None]).reshape(n, -1)
                    N = [f"{a}:{b}" for b in vn for a in N]
            cols.append(M)
            names.extend(N)
        X = np.hstack(cols) if cols else np.empty((n, 0))
        return X, names

    def offset(self, rows: Rows, fitting: bool) -> np.ndarray | None:
        """The sum of the offset() terms on the rows (None without offsets)."""
        if not self.terms.offsets:
            return None
        ev = Evaluator(self.state, fitting=fitting)
        total = np.zeros(rows.n)
        for var in self.terms.offsets:
            v = ev.numeric(var.tree.args[0], var, rows)
            bad = ~np.isfinite(v)
            if fitting and bad.any():
                raise ModelSpecError(f"{var.text} is not a finite number at rows {_fmt_labels(rows.labels(np.flatnonzero(bad)).tolist())}")
            total = total + v
        return total

    def offset_of(self, data: pd.DataFrame) -> np.ndarray | float:
        off = self.offset(Rows.of_frame(data, self.what), fitting=False) if self.terms.offsets else None
        return 0.0 if off is None else off


def response(var: Variable, rows: Rows, state: dict) -> np.ndarray:
    """The outcome on the rows used: a numeric column (text holding numbers is read as numbers)
    or a numeric expression of columns (``log(y)``)."""
    t = var.tree
    if isinstance(t, ast.Name):
        values, dtype = rows.get(var.names[t.id])
        if pd.api.types.is_numeric_dtype(dtype):
            y = _floats(values, dtype)
        else:
            yy = pd.to_numeric(pd.Series(values), errors="coerce")
            if yy.isna().any():
                bad = rows.labels(np.flatnonzero(yy.isna().to_numpy())).tolist()
                raise ModelSpecError(f"outcome {var.label!r} holds values that are not numbers at rows {_fmt_labels(bad)}")
            y = yy.to_numpy(float)
    else:
        if isinstance(t, ast.Call) and (var.names[t.func.id] in _FACTOR_FUNCS + ("poly", "offset")):
            raise ModelSpecError(f"the outcome {var.text} must be one numeric variable (a linear mixed model has a numeric outcome)")
        y = Evaluator(state, fitting=True).numeric(t, var, rows)
    bad = ~np.isfinite(y)
    if bad.any():
        raise ModelSpecError(f"the outcome {var.text} is not a finite number at rows {_fmt_labels(rows.labels(np.flatnonzero(bad)).tolist())}")
    return y
