"""lme4-style model formulas, read as R reads them.

:func:`parse_formula` splits ``y ~ fixed + (terms | group)`` into the response, the fixed part
and the random-effect terms: ``(1 + x | patient)``, ``(0 + x | g)``, ``(1 + x || g)``
(uncorrelated, as lme4's ``expandDoubleVerts``: one term per term label), nested
``(1 | therapist/patient)`` (= ``(1 | therapist) + (1 | therapist:patient)``) and interaction
grouping ``(1 | therapist:patient)``.

:func:`parse_rhs` encodes a right-hand side (the fixed part, or a random term's left side) into
terms with R's formula algebra (``stats::terms.formula``): ``a + b``, ``a:b``, ``a*b``
(= ``a + b + a:b``), ``a/b`` (= ``a + a:b``), ``b %in% a``, ``(a + b)^2`` (crossing to degree
2), ``- a`` (remove a term), ``0 +`` / ``- 1`` (no intercept); terms ordered by degree, an
interaction's variables in order of first appearance. A variable is a column or an R expression
(``I(x^2)``, ``log(x)``, ``poly(x, 2)``, ``factor(g)`` ...): :func:`parse_variable` reads it into a
Python syntax tree (R's ``^`` is the power ``**``) with the names replaced by placeholders, and
gives its R spelling (``deparse``), which names its columns. What the functions compute is
:mod:`.modelmatrix`'s business; anything this module cannot read raises
:class:`ModelSpecError` naming the term.
"""

from __future__ import annotations

import ast
import functools
import keyword
import re
from dataclasses import dataclass, field

import numpy as np

from ...exceptions import ModelSpecError


@dataclass(frozen=True)
class RandomTerm:
    expr: str  # right-hand side of the term's columns in R syntax ("1", "1 + x", "0 + x")
    group: tuple  # grouping columns; more than one = their interaction
    text: str  # as written, for messages


def _strip(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == "`":
        return name[1:-1]
    return name


def _split_top(s: str, sep: str):
    """Split on ``sep`` at parenthesis depth 0 (outside backticks and quotes)."""
    out, depth, cur, quote = [], 0, [], None
    i = 0
    while i < len(s):
        ch = s[i]
        if quote:
            if ch == "\\" and quote != "`" and i + 1 < len(s):
                cur.append(s[i : i + 2])
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "`\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if quote is None and depth == 0 and s.startswith(sep, i):
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
    lhs, fixed, randoms = _parse_formula(formula)
    return lhs, fixed, list(randoms)


@functools.lru_cache(maxsize=256)  # simulations fit one formula many times
def _parse_formula(formula: str):
    depth = 0
    for _, tx, *_ in _tokens(formula, formula):
        depth += (tx == "(") - (tx == ")")
        if depth < 0:
            break
    if depth:
        raise ModelSpecError(f"formula {formula!r}: a parenthesis is {'not closed' if depth > 0 else 'closed without being opened'}")
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
        elif len(_split_top(t, "|")) > 1:
            raise ModelSpecError(f"random-effect term {t!r} must be in parentheses, e.g. (1 | patient)")
        else:
            fixed_parts.append(t)
    if not randoms:
        raise ModelSpecError(
            f"formula {formula!r} has no random-effect term such as (1 | patient); "
            "a model without one is an ordinary regression (use statsmodels.formula.api.ols)"
        )
    fixed = " + ".join(fixed_parts) if fixed_parts else "1"
    return lhs, fixed, tuple(randoms)


def _random_terms(inner: str, text: str):
    uncorrelated = len(_split_top(inner, "||")) == 2
    sides = _split_top(inner, "||") if uncorrelated else _split_top(inner, "|")
    if len(sides) != 2:
        raise ModelSpecError(f"random-effect term {text!r} must have one '|' (or '||') between its terms and its grouping, e.g. (1 + session | patient)")
    expr, grp = sides
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
        # lme4's expandDoubleVerts: (1 | g) and one (0 + label | g) per term label of the left side
        lhs = parse_rhs(expr, where=text, random=True)
        exprs = (["1"] if lhs.intercept else []) + [f"0 + {label}" for label in lhs.labels()]
    else:
        exprs = [expr]
    return [RandomTerm(e, g, text) for g in groups for e in exprs]


# -- tokens -------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<bt>`[^`]*`)
    |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
    |(?P<name>(?:[^\W\d]|\.)[\w.]*)
    |(?P<op>%[^%\s]*%|\*\*|==|!=|<=|>=|<-|->|&&|\|\||[-+*/^:~|(),=<>!&$@\[\]{};?])
    """,
    re.X,
)


def _tokens(text: str, where: str):
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            what = "an unclosed quote or backtick" if ch in "\"'`" else f"the character {ch!r}"
            raise ModelSpecError(f"cannot read {where!r}: {what} at position {pos} of {text!r}")
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group(), m.start(), m.end()))
        pos = m.end()
    return out


# -- variables: R expressions as Python syntax trees ---------------------------------------------
FUNCTIONS = ("I", "log", "log2", "log10", "log1p", "exp", "expm1", "sqrt", "abs", "poly", "scale", "factor",
             "as.factor", "C", "relevel", "offset")  # evaluated in .modelmatrix
NUMPY_CALL = re.compile(r"^(np|numpy)\.([A-Za-z_][A-Za-z0-9_]*)$")
_OPS = {"^": "**", "**": "**", "%%": "%", "%/%": "//", "+": "+", "-": "-", "*": "*", "/": "/", "(": "(", ")": ")",
        ",": ",", "==": "==", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}


@dataclass(frozen=True, eq=False)
class Variable:
    """One variable of a formula: a column or an R expression of columns."""

    text: str  # R's spelling (deparsed): identity, and re-readable
    label: str  # the stem of its columns' names: the column itself for a bare column, else ``text``
    tree: ast.expr  # Python syntax tree; names are placeholders (see ``names``)
    names: dict  # placeholder -> R name (a column, or a function when called)
    written: str = field(default="")  # as the user wrote it, for messages

    @property
    def columns(self) -> list:
        """The data columns it reads, in order of appearance."""
        calls = {n.func.id for n in ast.walk(self.tree) if isinstance(n, ast.Call)}
        return list(dict.fromkeys(r for p, r in self.names.items() if p not in calls))

    @property
    def func(self) -> str | None:
        """The R function at the top (``"poly"`` for ``poly(x, 2)``), None for a bare column."""
        t = self.tree
        return self.names[t.func.id] if isinstance(t, ast.Call) else None


def parse_variable(toks, where: str, text: str) -> Variable:
    """A variable from its tokens (a name, or a call with its arguments) in ``text``."""
    written = text[toks[0][2] : toks[-1][3]]
    src, names, rev = [], {}, {}
    for i, (kind, tx, *_) in enumerate(toks):
        if kind in ("name", "bt"):
            rname = tx[1:-1] if kind == "bt" else tx
            nxt = toks[i + 1][1] if i + 1 < len(toks) else None
            if kind == "name" and rname in ("TRUE", "FALSE"):
                src.append(str(rname == "TRUE"))
            elif kind == "name" and nxt == "=" and i > 0 and toks[i - 1][1] in ("(", ","):
                if not rname.isidentifier() or keyword.iskeyword(rname):
                    raise ModelSpecError(f"argument name {rname!r} in {written!r} ({where}) is not supported")
                src.append(rname)  # an argument name: raw = TRUE
            elif kind == "name" and rname in ("NA", "NULL", "Inf", "NaN"):
                raise ModelSpecError(f"{rname} in {written!r} ({where}) is not supported")
            else:
                call = nxt == "("
                key = (rname, call)
                if key not in rev:
                    rev[key] = f"_v{len(rev)}"
                    names[rev[key]] = rname
                src.append(rev[key])
        elif kind == "num":
            src.append(tx.rstrip("L"))
        elif kind == "str":
            src.append(tx)
        elif tx in _OPS:
            src.append(_OPS[tx])
        elif tx == "=":
            src.append("=")
        else:
            raise ModelSpecError(_op_message(tx, written, where))
    try:
        tree = ast.parse(" ".join(src), mode="eval").body
    except SyntaxError:
        raise ModelSpecError(f"cannot read the term {written!r} ({where}) as an R expression") from None
    _check_tree(tree, names, written, where)
    return Variable(text=deparse(tree, names), label=names[tree.id] if isinstance(tree, ast.Name) else deparse(tree, names),
                    tree=tree, names=names, written=written)


def _op_message(tx, written, where):
    hint = {
        "{": "braces are not R formula syntax; write I(...) for arithmetic",
        "}": "braces are not R formula syntax; write I(...) for arithmetic",
        "$": "write the column name alone",
        "[": "indexing is not supported; make a column first",
        "|": "a random-effect term goes in parentheses: (1 | g)",
        "||": "a random-effect term goes in parentheses: (1 || g)",
        "&": "make a logical column first", "!": "make a logical column first",
        "~": "only one ~ is allowed", "<-": "assignment is not allowed in a formula",
        "%in%": "%in% nests terms: write b %in% a outside function calls",
    }.get(tx, "")
    return f"the operator {tx!r} in {written!r} ({where}) is not supported" + (f"; {hint}" if hint else "")


_ALLOWED_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod, ast.FloorDiv)
_ALLOWED_CMPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def _check_tree(node, names, written, where):
    """Only arithmetic, comparisons, numbers, strings as arguments, and the known functions."""
    if isinstance(node, ast.Name):
        return
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        return
    if isinstance(node, ast.BinOp) and isinstance(node.op, _ALLOWED_BINOPS):
        _check_tree(node.left, names, written, where)
        return _check_tree(node.right, names, written, where)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _check_tree(node.operand, names, written, where)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], _ALLOWED_CMPS):
        _check_tree(node.left, names, written, where)
        return _check_tree(node.comparators[0], names, written, where)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        fname = names[node.func.id]
        if fname not in FUNCTIONS and not NUMPY_CALL.match(fname):
            raise ModelSpecError(
                f"the function {fname}() in {written!r} ({where}) is not supported; supported: "
                + ", ".join(f"{f}()" for f in FUNCTIONS) + ", and numpy's element-wise functions (np.log ...)"
            )
        for a in list(node.args) + [k.value for k in node.keywords]:
            _check_tree(a, names, written, where)
        call_args(node, names)
        return
    raise ModelSpecError(f"cannot read the term {written!r} ({where}): only arithmetic, comparisons and function calls are supported")


_SIGNATURES = {"I": ("x",), "log": ("x", "base"), "poly": ("x", "degree", "raw"), "scale": ("x", "center", "scale"),
               "relevel": ("x", "ref")}


def call_args(node: ast.Call, names: dict) -> dict:
    """The arguments of a call to one of :data:`FUNCTIONS`, checked: ``x`` (a syntax tree) and the
    constants (``degree``, ``raw``, ``center``, ``scale``, ``base``, ``ref``) with R's defaults.
    A numpy function gives ``{"args": [trees]}``."""
    fname = names[node.func.id]
    here = deparse(node, names)
    m = NUMPY_CALL.match(fname)
    if m:
        f = getattr(np, m.group(2), None)
        if not isinstance(f, np.ufunc) or f.nout != 1 or node.keywords or len(node.args) != f.nin:
            raise ModelSpecError(f"{here}: only numpy's element-wise functions (np.log, np.sqrt ...) with their positional arguments are supported")
        return {"args": list(node.args)}
    sig = _SIGNATURES.get(fname, ("x",))
    args = dict(zip(sig, node.args))
    extra = len(node.args) > len(sig) or any(k.arg not in sig or k.arg in args for k in node.keywords)
    args.update({k.arg: k.value for k in node.keywords})
    if extra or "x" not in args:
        if fname in ("factor", "as.factor", "C"):
            raise ModelSpecError(
                f"{here}: only {fname}(x) with treatment contrasts is supported (the first level is the reference). To "
                'choose the reference write relevel(x, ref = "level"); for another order of the levels make the column '
                "a pandas Categorical with its categories in that order"
            )
        if fname == "poly":
            raise ModelSpecError(
                f"{here}: write poly(x, degree) or poly(x, degree, raw = TRUE) for one variable "
                "(poly() of several variables and coefs = are not supported)"
            )
        raise ModelSpecError(f"{here}: {fname}() takes " + ", ".join(sig) + (" (the first without a name)" if len(sig) > 1 else ""))
    out = {"x": args["x"]}
    if fname == "poly":
        degree, raw = _literal(args.get("degree"), 1, here), _literal(args.get("raw"), False, here)
        if isinstance(degree, (bool, str)) or degree != int(degree) or degree < 1:
            raise ModelSpecError(f"{here}: the degree must be a whole number of at least 1")
        if not isinstance(raw, bool):
            raise ModelSpecError(f"{here}: raw must be TRUE or FALSE")
        out.update(degree=int(degree), raw=raw)
    elif fname == "scale":
        for k in ("center", "scale"):
            v = _literal(args.get(k), True, here)
            if isinstance(v, str):
                raise ModelSpecError(f"{here}: {k} must be TRUE, FALSE or a number")
            out[k] = v
    elif fname == "log":
        base = _literal(args.get("base"), None, here)
        if isinstance(base, (bool, str)):
            raise ModelSpecError(f"{here}: the base must be a number")
        out["base"] = base
    elif fname == "relevel":
        if "ref" not in args:
            raise ModelSpecError(f'{here}: write relevel(x, ref = "level")')
        out["ref"] = _literal(args["ref"], None, here)
    return out


def _literal(node, default, here):
    """A constant argument (TRUE, 2, "b", -1), or the default when absent."""
    if node is None:
        return default
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float)):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    raise ModelSpecError(f"{here}: the arguments after x must be constants (a number, TRUE/FALSE or \"text\")")


# R's deparse: operator spacing and precedence (higher binds tighter)
_R_OP = {ast.Add: (" + ", 2), ast.Sub: (" - ", 2), ast.Mult: (" * ", 3), ast.Div: ("/", 3), ast.Mod: (" %% ", 4),
         ast.FloorDiv: (" %/% ", 4), ast.Pow: ("^", 7)}
_R_CMP = {ast.Eq: " == ", ast.NotEq: " != ", ast.Lt: " < ", ast.LtE: " <= ", ast.Gt: " > ", ast.GtE: " >= "}
_SYNTACTIC = re.compile(r"^(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*$")
_RESERVED = {"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE", "NULL", "Inf",
             "NaN", "NA", "in"}


def _rname(name: str) -> str:
    return name if _SYNTACTIC.match(name) and name not in _RESERVED else "`" + name.replace("`", "\\`") + "`"


def _prec(node) -> int:
    if isinstance(node, ast.BinOp):
        return _R_OP[type(node.op)][1]
    if isinstance(node, ast.UnaryOp):
        return 6
    if isinstance(node, ast.Compare):
        return 1
    return 9


def deparse(node, names) -> str:
    """R's spelling of an expression: ``I(x^2)``, ``poly(x, 2, raw = TRUE)``, ``log(x + 1)``."""
    if isinstance(node, ast.Name):
        return _rname(names[node.id])
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return format(v, ".15g") if isinstance(v, float) else str(v)
    if isinstance(node, ast.BinOp):
        sym, p = _R_OP[type(node.op)]
        left, right = deparse(node.left, names), deparse(node.right, names)
        lp, rp = _prec(node.left), _prec(node.right)
        right_assoc = isinstance(node.op, ast.Pow)
        if lp < p or (lp == p and right_assoc):
            left = f"({left})"
        if rp < p or (rp == p and not right_assoc):
            right = f"({right})"
        return f"{left}{sym}{right}"
    if isinstance(node, ast.UnaryOp):
        inner = deparse(node.operand, names)
        if _prec(node.operand) < 6:
            inner = f"({inner})"
        return ("-" if isinstance(node.op, ast.USub) else "+") + inner
    if isinstance(node, ast.Compare):
        left, right = deparse(node.left, names), deparse(node.comparators[0], names)
        return f"{left}{_R_CMP[type(node.ops[0])]}{right}"
    if isinstance(node, ast.Call):
        args = [deparse(a, names) for a in node.args] + [f"{k.arg} = {deparse(k.value, names)}" for k in node.keywords]
        return f"{names[node.func.id]}({', '.join(args)})"
    raise ModelSpecError(f"cannot read {ast.dump(node)}")  # pragma: no cover - refused by _check_tree


# -- right-hand sides: R's formula algebra ------------------------------------------------------------
@dataclass(frozen=True)
class Terms:
    """A right-hand side encoded as R's ``terms``: ``terms`` are tuples of variable indices, in
    R's order (by degree, then as they appear); ``offsets`` are the ``offset()`` variables."""

    text: str
    intercept: bool
    variables: tuple
    terms: tuple
    offsets: tuple

    def labels(self) -> list:
        """R's term labels (``"x"``, ``"x:z"``)."""
        return [":".join(self.variables[i].text for i in t) for t in self.terms]


class _Parser:
    """Recursive descent over formula tokens with R's precedence:
    ``^`` > unary ``-`` > ``:`` > ``%in%`` > ``* /`` > ``+ -``."""

    def __init__(self, toks, where, text):
        self.toks, self.i, self.where, self.text = toks, 0, where, text

    def peek(self):
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def take(self):
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self):
        node = self.sum()
        if self.i < len(self.toks):
            tx = self.toks[self.i][1]
            raise ModelSpecError(f"cannot read {self.where!r}: unexpected {tx!r}")
        return node

    def sum(self):
        node = self.prod()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            node = ("bin", op, node, self.prod())
        return node

    def prod(self):
        node = self.within()
        while self.peek() in ("*", "/"):
            op = self.take()[1]
            node = ("bin", op, node, self.within())
        return node

    def within(self):
        node = self.colon()
        while self.peek() == "%in%":
            self.take()
            node = ("bin", "%in%", node, self.colon())
        return node

    def colon(self):
        node = self.unary()
        while self.peek() == ":":
            self.take()
            node = ("bin", ":", node, self.unary())
        return node

    def unary(self):
        if self.peek() in ("-", "+"):
            op = self.take()[1]
            return ("neg" if op == "-" else "pos", self.unary())
        return self.power()

    def power(self):
        base = self.atom()
        if self.peek() in ("^", "**"):
            self.take()
            return ("bin", "^", base, self.unary())
        return base

    def atom(self):
        if self.i >= len(self.toks):
            raise ModelSpecError(f"cannot read {self.where!r}: it ends where a term is expected")
        kind, tx = self.take()[:2]
        if tx == "(":
            node = self.sum()
            if self.peek() != ")":
                raise ModelSpecError(f"cannot read {self.where!r}: a parenthesis is not closed")
            self.take()
            return ("paren", node)
        if kind == "num":
            return ("num", float(tx.rstrip("L")), tx)
        if kind == "str":
            raise ModelSpecError(
                f"quotes in {self.where!r} ({tx}): write column names bare, or in backticks when they "
                "contain spaces or symbols (`wai total`)"
            )
        if kind == "name" and tx == ".":
            raise ModelSpecError(f"'.' (all other columns) in {self.where!r} is not supported: list the columns")
        if kind in ("name", "bt"):
            start = self.i - 1
            if kind == "name" and self.peek() == "(":
                depth = 0
                while self.i < len(self.toks):
                    t = self.take()[1]
                    depth += (t == "(") - (t == ")")
                    if depth == 0:
                        break
                else:
                    raise ModelSpecError(f"cannot read {self.where!r}: a parenthesis is not closed")
            var = parse_variable(self.toks[start : self.i], self.where, self.text)
            return ("offset" if var.func == "offset" else "var", var)
        raise ModelSpecError(_op_message(tx, self.where, "the formula") if kind == "op" else f"cannot read {self.where!r}: unexpected {tx!r}")


class _Encoder:
    """R's ``terms.formula`` algebra (src/library/stats/src/model.c): terms as sets of variables."""

    def __init__(self, where, random):
        self.where, self.random = where, random
        self.index, self.variables, self.offsets = {}, [], []
        self.intercept, self.parity = True, True

    def install(self, var):
        if var.text not in self.index:
            self.index[var.text] = len(self.variables)
            self.variables.append(var)
        return self.index[var.text]

    @staticmethod
    def trim(terms):
        return list(dict.fromkeys(t for t in terms if t))

    def encode(self, node):
        kind = node[0]
        if kind == "var":
            return [frozenset([self.install(node[1])])]
        if kind == "offset":
            var = node[1]
            if self.random:
                raise ModelSpecError(f"offset() in a random-effect term ({self.where}): put the offset in the fixed part")
            if not self.parity:
                raise ModelSpecError(f"'- {var.text}' in {self.where!r}: an offset cannot be removed")
            inner = var.tree
            if len(inner.args) != 1 or inner.keywords:
                raise ModelSpecError(f"{var.text} in {self.where!r}: offset() takes one variable")
            if var.text not in [o.text for o in self.offsets]:
                self.offsets.append(var)
            return []
        if kind == "num":
            value, tx = node[1], node[2]
            if value == 1:
                self.intercept = self.parity
            elif value == 0:
                self.intercept = not self.parity
            else:
                raise ModelSpecError(f"the number {tx} in {self.where!r} is not a term (only 1 and 0, for the intercept)")
            return []
        if kind == "paren":
            return self.encode(node[1])
        if kind == "pos":
            return self.encode(node[1])
        if kind == "neg":
            return self.delete([], node[1])
        op, left, right = node[1], node[2], node[3]
        if op != "+" and "offset" in (left[0], right[0]):
            raise ModelSpecError(f"offset() in {self.where!r} can only be added (+ offset(x)), not combined with {op!r}")
        if op == "-":
            return self.delete(self.encode(left), right)
        if op == "^":
            return self.power(left, right)
        L, R = self.encode(left), self.encode(right)
        if op == "+":
            return self.trim(L + R)
        if op == ":":
            return self.trim([a | b for a in L for b in R])
        if op == "*":
            return self.trim(L + R + [a | b for a in L for b in R])
        if op == "/":
            all_left = frozenset().union(*L)
            return self.trim(L + [b | all_left for b in R])
        if op == "%in%":
            all_right = frozenset().union(*R)
            return self.trim([a | all_right for a in L])
        raise ModelSpecError(f"the operator {op!r} in {self.where!r} is not supported")  # pragma: no cover

    def delete(self, L, node):
        self.parity = not self.parity
        R = self.encode(node)
        self.parity = not self.parity
        return [t for t in L if t not in R]

    def power(self, left, right):
        L = self.encode(left)
        if right[0] != "num" or right[1] != int(right[1]) or right[1] < 2:
            raise ModelSpecError(
                f"'^' outside I() in {self.where!r} is R's crossing operator: (a + b)^2 is a + b + a:b; the power "
                "must be a whole number of at least 2. For a power of a variable write I(x^2) or poly(x, 2)"
            )
        if len(L) < 2:
            what = ":".join(self.variables[i].text for i in sorted(L[0])) if L else "it"
            raise ModelSpecError(
                f"'^' outside I() in {self.where!r} is R's crossing operator, and crossing {what} with itself is "
                f"{what} alone (R silently fits a linear term). For the square write I({what}^{int(right[1])}), "
                f"or poly({what}, {int(right[1])}) for orthogonal polynomials"
            )
        out = L
        for _ in range(int(right[1]) - 1):
            out = self.trim([a | b for a in L for b in out])
        return out


@functools.lru_cache(maxsize=256)
def parse_rhs(text: str, where: str | None = None, random: bool = False) -> Terms:
    """Encode a right-hand side (``"x * z + I(x^2)"``) with R's formula algebra."""
    where = where or text
    toks = _tokens(text, where)
    if not toks:
        raise ModelSpecError(f"{where!r} has no terms; write 1 for an intercept only")
    enc = _Encoder(where, random)
    terms = enc.encode(_Parser(toks, where, text).parse())
    terms = sorted(terms, key=len)  # R: by degree, stable
    return Terms(text=text, intercept=enc.intercept, variables=tuple(enc.variables),
                 terms=tuple(tuple(sorted(t)) for t in terms), offsets=tuple(enc.offsets))


@functools.lru_cache(maxsize=256)
def parse_response(text: str) -> Variable:
    """The left-hand side: one variable (a column or an expression such as ``log(y)``)."""
    toks = _tokens(text, text)
    node = _Parser(toks, f"the outcome {text}", text).parse()
    if node[0] != "var":
        raise ModelSpecError(
            f"the outcome {text!r} must be one column or one expression of columns (e.g. log(y)); "
            "for arithmetic write I(...)"
        )
    return node[1]
