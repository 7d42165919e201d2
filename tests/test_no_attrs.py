"""Nothing the package returns carries its metadata on ``DataFrame.attrs`` (issue 15, item 6).

pandas deep-copies ``attrs`` into every derived frame, so metadata there makes every later step
slow and is lost or stale after filtering. Provenance and result metadata live in typed records
(``SessionData.provenance``, result objects) instead. The only use left is emptying a copy's
``attrs`` (``frame.attrs = {}``) so that a user's own attrs cost nothing inside a fit.
"""

import ast
from pathlib import Path

import pandas as pd

import alliance_stats
import alliance_stats as als

PACKAGE = Path(alliance_stats.__file__).parent


def _attrs_uses(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), str(path))
    clearing = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and not node.value.keys:
            clearing.update(id(t) for t in node.targets if isinstance(t, ast.Attribute) and t.attr == "attrs")
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "attrs" and id(node) not in clearing]


def test_no_metadata_on_dataframe_attrs():
    found = {str(p.relative_to(PACKAGE)).replace("\\", "/"): _attrs_uses(p) for p in sorted(PACKAGE.rglob("*.py"))}
    assert {m: lines for m, lines in found.items() if lines} == {}


def test_transforms_and_tables_return_no_package_metadata():
    """The data transforms and the tables of results that used to carry attrs carry none now."""
    d = pd.DataFrame({"dyad": [1, 1, 2, 2, 3, 3], "patient": [1, 1, 1, 2, 2, 2], "session": [1, 2, 3, 1, 2, 3],
                      "role": ["client", "therapist"] * 3, "wai": [4.0, 3.5, 2.0, 5.0, 1.0, 2.5]})
    assert als.partner_scores(d, dyad="dyad", role="role", columns="wai").attrs == {}
    assert als.decompose(d, "wai", detrend="linear", lags=[1]).attrs == {}
    assert als.reliability(als.load_sample("sessions_csv"), "wai-sr", items="WAISR_{}").to_frame().attrs == {}


def test_the_check_finds_a_use(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("def f(df):\n    df.attrs = {}\n    df.attrs['x'] = 1\n    return df.attrs.get('x')\n")
    assert _attrs_uses(p) == [3, 4]
