"""Stage 2 of a linear mixed model (lme4's ``lFormula``): the model frame and matrices.

From a parsed formula and a DataFrame: the complete rows (each row left out counted under the
first missing column), the response, the fixed-effects matrix (rank-deficient columns dropped as
R's pivoting QR), and the grouping levels with their random-effects matrices, most groups first
(innermost first when nested). In a nested design each level's groups are numbered so that they are
contiguous within their parents; crossed factors keep the sorted order of their IDs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from ...exceptions import AllianceStatsWarning, ColumnError, ModelSpecError, _fmt_labels, _show, user_stacklevel
from ...validation import require_frame
from .formula import parse_formula, parse_response, parse_rhs
from .modelmatrix import MatrixSpec, Rows, response as model_response
from .nested import Level


class LazyFrame:
    """A table attribute of a result built on first read: the fit stores a builder (a picklable
    ``functools.partial`` of numpy arrays) and the DataFrame is made once, when first read. At
    ~3k rows the pandas constructions cost as much as the optimisation; a fit whose tables are
    never read (power analysis, all_fit, a refit for a comparison) does not pay for them.
    Assigning a DataFrame (or Series) stores it as it is; :func:`unbuilt` hands the builder on."""

    def __init__(self, name: str):
        self.slot = "_frame_" + name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.slot]
        if isinstance(value, partial):
            value = obj.__dict__[self.slot] = value()
        return value

    def __set__(self, obj, value):
        obj.__dict__[self.slot] = value


def lazy_frames(*names):
    """Class decorator (after ``@dataclass``): the named fields become :class:`LazyFrame` s, so
    ``__init__`` accepts a DataFrame or a ``partial`` building it."""
    def deco(cls):
        for name in names:
            setattr(cls, name, LazyFrame(name))
        return cls
    return deco


def unbuilt(obj, name: str):
    """The value of lazy attribute ``name`` as stored: its builder when not yet read (so that
    another result can take it without building it), else the table."""
    return obj.__dict__["_frame_" + name]


def _dropped_series(reasons: dict) -> pd.Series:
    """Rows left out by reason ("missing <column>": count)."""
    # (an empty Series from an array: the same empty Series as from {} at half the cost)
    return pd.Series(reasons, dtype="int64", name="rows") if reasons else pd.Series(np.empty(0, np.int64), name="rows")


@lazy_frames("dropped")  # the Series is made when first read
@dataclass
class Design:
    """The model frame and matrices of one fit (see :func:`build_design`)."""

    formula: str
    response: str
    fixed: str
    terms: list
    columns: "_Columns"  # the used columns of the complete rows; .data is their DataFrame
    X: np.ndarray
    xnames: list
    dropped_cols: list
    y: np.ndarray  # the outcome minus the offset, if any: what the model fits
    levels: list  # engine Levels, innermost first
    level_info: list  # per level: dict(name, cols, term_names, exprs, specs, labels)
    x_spec: object  # MatrixSpec of the fixed part (new data: fixed_matrix)
    n_dropped: int
    dropped: pd.Series
    offset: np.ndarray | None = None  # the offset() terms' sum on the rows used
    x_keep: list = None  # the columns of x_spec kept (full rank)
    crossed: list = field(default_factory=list)  # notes on crossed pairs of factors; empty when nested

    @property
    def data(self) -> pd.DataFrame:
        """Complete cases, used columns only, original index (made on first use)."""
        return self.columns.frame

    @property
    def source(self) -> pd.DataFrame:
        """The data as given (a shallow copy): a refit computes poly() and scale() over the same rows."""
        return self.columns.src

    def fixed_matrix(self, data: pd.DataFrame) -> np.ndarray:
        """The fixed-effects columns for new data (NaN rows where a value is missing)."""
        return self.x_spec.build(data)[:, self.x_keep]

    def random_matrix(self, level: int, data: pd.DataFrame) -> np.ndarray:
        """A level's random-effect columns for new data."""
        return np.hstack([spec.build(data) for spec in self.level_info[level]["specs"]])

    @property
    def offset_terms(self) -> list:
        """The offset() terms as R spells them."""
        return [v.text for v in self.x_spec.terms.offsets]

    def offset_of(self, data: pd.DataFrame):
        """The offset for new data (0.0 without offset terms)."""
        return self.x_spec.offset_of(data)


class _Columns:
    """The columns a model uses, for its complete rows: numpy arrays for the fit, and the
    DataFrame (``frame``) made only when something needs it (group labels,
    messages). The design holds a shallow copy of the data: under pandas'
    copy-on-write, later changes to the caller's frame do not reach it."""

    def __init__(self, data: pd.DataFrame, cols: list):
        self.src = data.copy(deep=False)
        self.src.attrs = {}  # pandas deep-copies attrs into every derived object; the design needs none
        self.cols = cols
        series = {c: self.src[c] for c in cols}
        self.dtypes = {c: v.dtype for c, v in series.items()}
        self.raw = {c: v.to_numpy() for c, v in series.items()}
        self.ok = None  # boolean mask of complete rows; None = all rows
        self._arr = {}
        self._frame = None

    def missing(self) -> np.ndarray | None:
        """(rows, columns) missingness, or None when nothing is missing."""
        flags = []
        for c in self.cols:
            v = self.raw[c]
            m = np.isnan(v) if v.dtype.kind == "f" else None if v.dtype.kind in "iub" else np.asarray(pd.isna(v), bool)
            flags.append(m)
        if not any(m is not None and m.any() for m in flags):
            return None
        n = len(self.src)
        return np.column_stack([m if m is not None else np.zeros(n, bool) for m in flags])

    def array(self, c: str) -> np.ndarray:
        if c not in self._arr:
            v = self.raw[c]
            self._arr[c] = v if self.ok is None else v[self.ok]
        return self._arr[c]

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            sub = self.src[self.cols]
            self._frame = sub if self.ok is None else sub.loc[self.ok]
        return self._frame

    def __len__(self):
        return len(self.src) if self.ok is None else int(self.ok.sum())


def _needed_columns(data, response, fixed, randoms, terms):
    """The data columns the formula uses, in order: the outcome's, the fixed part's (offsets
    included), the random terms' and the grouping columns."""
    cols = []

    def add(names):
        for c in names:
            if c not in cols:
                cols.append(c)

    add(response.columns)
    for v in fixed.variables + fixed.offsets:
        add(v.columns)
    for r in randoms.values():
        for v in r.variables:
            add(v.columns)
    for t in terms:
        add(t.group)
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ColumnError(
            f"the formula uses {_fmt_labels(missing)}, not found among the data's columns; "
            f"available columns: {_fmt_labels(list(data.columns), limit=25)}"
        )
    if not data.columns.is_unique:
        twice = [c for c in cols if (data.columns == c).sum() > 1]
        if twice:
            raise ColumnError(
                f"the data have more than one column named {_fmt_labels(twice)}; rename or drop the copies "
                "so that each column the formula uses has one name"
            )
    return cols


def _check_roles(response, fixed, randoms, terms):
    """A column is the outcome or a predictor, not both (R drops such a term with a warning, or
    fits a model that explains the outcome by itself)."""
    ycols = set(response.columns)
    uses = [(v, "the fixed part") for v in fixed.variables + fixed.offsets]
    uses += [(v, f"the random term {t.text}") for t in terms for v in randoms[t.expr].variables]
    for v, where in uses:
        both = [c for c in v.columns if c in ycols]
        if both:
            raise ModelSpecError(
                f"{both[0]!r} is the outcome ({response.text}) and also a predictor ({v.text}, in {where}): a column "
                "cannot play both roles. Remove it from the right-hand side; for the previous session's outcome make a "
                "lagged column first (als.decompose(data, columns, lags=[1]))"
            )
    for t in terms:
        both = [c for c in t.group if c in ycols]
        if both:
            raise ModelSpecError(f"{both[0]!r} is the outcome and also the grouping factor of {t.text}: a column cannot play both roles")


def _dense_codes(v: np.ndarray):
    """(codes, number of distinct values) of integers, numbered in sorted order."""
    if len(v) and v.dtype.kind in "iu":
        lo, hi = int(v.min()), int(v.max())
        if hi - lo <= 4 * len(v):  # a bounded range: a lookup table instead of a sort
            present = np.zeros(hi - lo + 1, bool)
            present[v - lo] = True
            rank = np.cumsum(present) - 1
            return rank[v - lo].astype(np.int64), int(rank[-1]) + 1
    uniq, k = np.unique(v, return_inverse=True)
    return k.astype(np.int64), len(uniq)


def _group_codes(cc: _Columns, cols):
    """Group number of each row for the ID column(s), groups in sorted order of their IDs (as
    ``groupby(cols, sort=True).ngroup()``)."""
    codes = None
    for c in cols:
        v = cc.array(c)
        if v.dtype.kind in "iuf":  # numeric IDs: no hashing needed
            k, nk = _dense_codes(v)
        elif isinstance(cc.dtypes[c], pd.CategoricalDtype):  # sorted in the categories' order
            k, uniq = pd.factorize(cc.frame[c], sort=True)
            nk = len(uniq)
        else:
            k, uniq = pd.factorize(v, sort=True)
            nk = len(uniq)
        codes = k.astype(np.int64) if codes is None else _dense_codes(codes * nk + k)[0]
    return codes


def join_keys(df: pd.DataFrame) -> pd.Series:
    """'a:b' labels of several ID columns, vectorised (no per-row Python)."""
    cols = [df[c].astype(str).astype(object) for c in df.columns]
    out = cols[0]
    for c in cols[1:]:
        out = out + ":" + c
    return out


def group_labels(inf: dict, cc: pd.DataFrame) -> np.ndarray:
    """The ID label of each group of a level ('T01:P0003' for several ID columns), cached."""
    if "labels" not in inf:
        ids = cc[list(inf["cols"])].iloc[inf["label_rows"]]
        inf["labels"] = join_keys(ids).to_numpy() if len(inf["cols"]) > 1 else ids.iloc[:, 0].to_numpy()
    return inf["labels"]


def build_design(formula: str, data: pd.DataFrame) -> Design:
    require_frame(data)
    response, fixed, terms = parse_formula(formula)
    resp = parse_response(response)
    fixed_terms = parse_rhs(fixed, where=f"the fixed part {fixed}")
    randoms = {t.expr: parse_rhs(t.expr, where=t.text, random=True) for t in terms}
    cols = _needed_columns(data, resp, fixed_terms, randoms, terms)
    _check_roles(resp, fixed_terms, randoms, terms)
    cc = _Columns(data, cols)
    miss = cc.missing()
    if miss is not None:
        anymiss = miss.any(axis=1)
        counts = np.bincount(miss[anymiss].argmax(axis=1), minlength=len(cols))
        cc.ok = ~anymiss
    else:
        counts = np.zeros(len(cols), int)
    reasons = {f"missing {c}": int(k) for c, k in zip(cols, counts) if k}
    dropped = partial(_dropped_series, reasons)
    for c in cols:
        if pd.api.types.is_float_dtype(cc.dtypes[c]):  # integer and boolean columns cannot hold infinity
            inf = np.isinf(np.asarray(cc.array(c), float))
            if inf.any():
                raise ModelSpecError(
                    f"column {c!r} holds infinite values at rows {_fmt_labels(cc.frame.index[inf].tolist())}; "
                    "set them to missing (they are then counted) or correct them"
                )
    if len(cc) == 0:
        raise ModelSpecError(f"no complete rows: every row misses one of {_fmt_labels(cols)}")

    # response and fixed effects -------------------------------------------------------------
    # as R's model.frame: poly() and scale() over all rows of the data, then the complete rows
    every = Rows(lambda c: (cc.raw[c], cc.dtypes[c]), len(cc.src), lambda pos: cc.src.index[pos])
    rows = every if cc.ok is None else Rows(
        lambda c: (cc.array(c), cc.dtypes[c]), len(cc), lambda pos: cc.src.index[np.flatnonzero(cc.ok)[pos]], full=every, mask=cc.ok
    )
    state = {}  # poly() coefficients, scale() centres, factor levels: fixed here, reused for new data
    y = model_response(resp, rows, state)
    x_spec = MatrixSpec(fixed_terms, state, "the fixed part")
    X, xnames = x_spec.fit(rows)
    offset = x_spec.offset(rows, fitting=True)
    if offset is not None:
        y = y - offset  # the offset's coefficient is 1: the model fits y - offset
    if np.ptp(y) <= 1e-12 * np.abs(y).max():
        what = f"the outcome {resp.text} minus the offset" if offset is not None else f"the outcome {resp.text}"
        raise ModelSpecError(
            f"{what} has the same value ({_show(y[0])}) in all {len(y)} rows used: there is no variation to model. "
            "Check the column, and which rows were kept (rows missing a value of any term are left out)"
        )
    keep, dropped_cols = _full_rank(X, xnames)
    if dropped_cols:
        warnings.warn(
            f"fixed-effect model matrix is rank deficient: dropped {_fmt_labels(dropped_cols)} "
            "(constant, or a linear combination of the other predictors); its effect cannot be estimated "
            "from these data",
            AllianceStatsWarning,
            stacklevel=user_stacklevel(),
        )
    X = X[:, keep]
    xnames = [xnames[i] for i in keep]

    # grouping factors ---------------------------------------------------------------------------
    factors = {}
    for t in terms:
        key = frozenset(t.group)
        factors.setdefault(key, {"cols": t.group, "terms": []})["terms"].append(t)
    info = []
    for key, f in factors.items():
        codes = _group_codes(cc, f["cols"])
        info.append(dict(name=":".join(f["cols"]), cols=f["cols"], codes=codes, n=int(codes.max()) + 1, terms=f["terms"], pos=len(info)))
    info.sort(key=lambda d: -d["n"])  # lme4's order: most groups first
    crossed = _crossings(info, cc)
    # nested designs: number groups so that each level's parents are non-decreasing
    # number groups so that each level's parents are non-decreasing
    keys = [d["codes"] for d in info]  # finest first
    order = np.lexsort(keys)
    levels, level_info = [], []
    for li, d in enumerate(info):
        exprs, specs, names, blocks, Zs = [], [], [], [], []
        for t in d["terms"]:
            spec = MatrixSpec(randoms[t.expr], state, f"the random term {t.text}")
            zmat, znames = spec.fit(rows)
            if zmat.shape[1] == 0:
                raise ModelSpecError(f"random-effect term {t.text!r} has no columns")
            Zs.append(zmat)
            specs.append(spec)
            names.extend(znames)
            blocks.append(zmat.shape[1])
            exprs.append(t.expr)
        if len(set(names)) < len(names):
            raise ModelSpecError(f"the same random-effect column appears twice for {d['name']!r}: {names}")
        Z = np.hstack(Zs)
        if crossed:  # groups in the sorted order of their IDs, each factor on its own
            codes, label_rows = d["codes"], np.unique(d["codes"], return_index=True)[1]
        else:
            change = np.r_[True, np.any(np.vstack([k[order][1:] != k[order][:-1] for k in keys[li:]]), axis=0)]
            newc = np.cumsum(change) - 1
            codes = np.empty_like(newc)
            codes[order] = newc
            label_rows = order[change]
        levels.append(Level(name=d["name"], Z=Z, blocks=blocks, codes=codes, n_groups=int(codes.max()) + 1))
        # the groups' ID labels are made on first use (group_labels): the fit does not need them
        level_info.append(dict(name=d["name"], cols=d["cols"], exprs=exprs, specs=specs, term_names=names, label_rows=label_rows))
    for li in range(len(levels) - 1 if not crossed else 0):
        par = np.empty(levels[li].n_groups, int)
        par[levels[li].codes] = levels[li + 1].codes
        levels[li].parent = par
    n_fe = X.shape[1]
    if len(y) <= n_fe:
        raise ModelSpecError(f"{len(y)} complete rows for {n_fe} fixed effects: not enough data")
    return Design(
        formula=formula, response=response, fixed=fixed, terms=terms, columns=cc, X=X, xnames=xnames,
        dropped_cols=dropped_cols, y=y, levels=levels, level_info=level_info, x_spec=x_spec,
        n_dropped=int(len(data) - len(y)), dropped=dropped, offset=offset, x_keep=keep, crossed=crossed,
    )


def _crossings(info: list, cc: _Columns) -> list:
    """Plain-language notes on the pairs of grouping factors that are not nested (empty for a
    nested design, whose factors, most groups first, each lie within the next). Two factors that
    define the same groups are refused."""
    notes, nested = [], True
    for i, fine in enumerate(info):
        for j in range(i + 1, len(info)):
            coarse = info[j]
            # fine lies within coarse when every row of a fine group has the same coarse group
            parent = np.empty(fine["n"], np.int64)
            parent[fine["codes"]] = coarse["codes"]
            off = parent[fine["codes"]] != coarse["codes"]
            if not off.any():
                if fine["n"] == coarse["n"]:
                    raise ModelSpecError(
                        f"grouping factors {fine['name']!r} and {coarse['name']!r} define the same groups; "
                        f"put all terms for that level in one grouping factor"
                    )
                continue
            if j == i + 1:
                nested = False
            bad = len(np.unique(fine["codes"][off]))
            outer, inner = sorted([fine, coarse], key=lambda d: d["pos"])
            notes.append(
                f"grouping factors {fine['name']!r} and {coarse['name']!r} are crossed: {bad} of {fine['n']} "
                f"{fine['name']} groups appear under more than one {coarse['name']}, and they are fitted as "
                f"crossed random effects (as lme4). If the {inner['name']} IDs restart within each "
                f"{outer['name']} (the same number for different people), write the nesting: "
                f"(1 | {outer['name']}/{inner['name']})"
            )
    return [] if nested else notes


def _full_rank(X, names):
    """Columns to keep (in order) and the names of those dropped. As R's limited-pivoting QR
    (which lme4 uses): a column is dropped when it is, within 1e-7 of its norm, a linear
    combination of the columns before it, so earlier columns are kept."""
    if X.shape[1] == 0:
        raise ModelSpecError("the fixed part has no columns; keep at least an intercept")
    sc = np.sqrt((X**2).mean(axis=0))
    sc[sc == 0] = 1.0
    Xs = X / sc
    if np.all(sc > 0) and X.shape[0] >= X.shape[1]:
        # the usual case, full rank: one QR shows it (each column's part orthogonal to the
        # columns before it is |R_jj|); the column-by-column check runs only when one is small
        R = np.linalg.qr(Xs, mode="r")
        if np.all(np.abs(np.diag(R)) > 1e-6 * np.linalg.norm(Xs, axis=0)):
            return list(range(X.shape[1])), []
    keep, Q = [], np.empty((X.shape[0], 0))
    for j in range(X.shape[1]):
        x = Xs[:, j]
        nx = np.linalg.norm(x)
        r = x - Q @ (Q.T @ x)
        r = r - Q @ (Q.T @ r)  # second pass for numerical orthogonality
        nr = np.linalg.norm(r)
        if nx > 0 and nr > 1e-7 * nx:
            keep.append(j)
            Q = np.column_stack([Q, r / nr])
    return keep, [names[i] for i in range(X.shape[1]) if i not in keep]

