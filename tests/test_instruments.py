import pytest

import alliance_stats as als

BUILTIN = {
    "wai-sr": ("verified", 12, (1, 5)),
    "wai-s": ("provisional", 12, (1, 7)),
    "wai-36-client": ("provisional", 36, (1, 7)),
    "wai-36-therapist": ("provisional", 36, (1, 7)),
    "wai-36-observer": ("provisional", 36, (1, 7)),
    "calpas-p": ("provisional", 24, (1, 7)),
    "calpas-t": ("provisional", 24, (1, 7)),
    "calpas-r": ("provisional", 24, (1, 7)),
    "pqs": ("verified", 100, (1, 9)),
    "haq-ii": ("provisional", 19, (1, 6)),
    "srs": ("provisional", 4, (0, 10)),
    "phq-9": ("verified", 9, (0, 3)),
    "gad-7": ("verified", 7, (0, 3)),
    "bdi-ii": ("verified", 21, (0, 3)),
    "oq-45": ("provisional", 45, (0, 4)),
    "core-10": ("provisional", 10, (0, 4)),
    "core-om": ("provisional", 34, (0, 4)),
    "ors": ("provisional", 4, (0, 10)),
}


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_keys(name):
    prov, n, scale = BUILTIN[name]
    inst = als.get_instrument(name)
    assert inst.provenance == prov
    assert inst.n_items == n
    assert inst.scale == scale
    assert inst.citation
    # subscales are disjoint and inside 1..n
    items = [i for its in inst.subscales.values() for i in its]
    assert len(items) == len(set(items))
    assert all(1 <= i <= n for i in items)


def test_wai_keys_follow_domain_notes():
    sr = als.get_instrument("wai-sr")
    assert dict(sr.subscales) == {"task": (1, 2, 10, 12), "bond": (3, 5, 7, 9), "goal": (4, 6, 8, 11)}
    assert sr.reversed == ()
    w36 = als.get_instrument("wai-36-client")
    assert w36.reversed == (1, 3, 7, 9, 10, 11, 12, 15, 20, 27, 29, 31, 33, 34)
    # items 24 and 25 change subscale between the 36-item key and the WAI-SR
    assert 24 in w36.subscales["task"] and 25 in w36.subscales["goal"]
    assert als.get_instrument("wai-s").reversed == (4, 10)
    assert als.get_instrument("pqs").distribution == (5, 8, 12, 16, 18, 16, 12, 8, 5)


def test_instruments_table_lists_every_form():
    df = als.instruments()
    assert set(BUILTIN) <= set(df["name"])
    assert list(df.columns[:3]) == ["name", "label", "rater"]
    assert df.set_index("name").loc["wai-36-observer", "rater"] == "observer"


@pytest.mark.parametrize("alias", ["WAI_SR", "waisr", "Wai-Sr", " wai sr "])
def test_aliases_and_case(alias):
    assert als.get_instrument(alias).name == "wai-sr"


def test_unknown_instrument():
    with pytest.raises(als.InstrumentKeyError, match="unknown instrument 'wai-xx'.*register"):
        als.get_instrument("wai-xx")


def test_instrument_is_frozen():
    inst = als.get_instrument("phq-9")
    with pytest.raises(Exception):
        inst.n_items = 10
    with pytest.raises(TypeError):
        inst.subscales["x"] = (1,)


def _key(**kw):
    base = {"name": "t-key", "n_items": 4, "scale": [1, 5], "subscales": {"a": [1, 2], "b": [3, 4]}}
    base.update(kw)
    return base


@pytest.mark.parametrize(
    "change, message",
    [
        ({"subscales": {"a": [1, 5]}}, r"item\(s\) \[5\] outside 1..4"),
        ({"subscales": {"a": [1, 2], "b": [2, 3]}}, "item 2 is in subscales 'a' and 'b'"),
        ({"scale": [5, 1]}, "min must be below max"),
        ({"scale": [1]}, r"must be \[min, max\]"),
        ({"reversed": [0]}, r"'reversed' lists item\(s\) \[0\]"),
        ({"scoring": "median"}, "'scoring' must be 'mean' or 'sum'"),
        ({"n_items": 0}, "'n_items' must be a positive"),
        ({"provenance": "official"}, "'provenance' must be one of"),
        ({"colour": "red"}, r"unknown field\(s\) \['colour'\]"),
        ({"subscales": {"a": [1, "x"]}}, "'x', which is not an item number"),
    ],
)
def test_register_validates(change, message):
    with pytest.raises(als.InstrumentKeyError, match=message):
        als.register_instrument(_key(**change))


def test_register_requires_fields():
    with pytest.raises(als.InstrumentKeyError, match="required field 'subscales' is missing"):
        als.register_instrument({"name": "x", "n_items": 3, "scale": [1, 5]})


def test_register_overlapping_allowed_when_not_disjoint():
    inst = als.register_instrument(_key(name="t-overlap", subscales={"a": [1, 2], "b": [2, 3]}, disjoint=False))
    assert inst.subscales["b"] == (2, 3)


def test_register_from_toml_and_replace(tmp_path):
    path = tmp_path / "calpas-official.toml"
    path.write_text(
        'name = "t-calpas-official"\nn_items = 4\nscale = [1, 7]\nreversed = [2]\n'
        'provenance = "verified"\n[subscales]\nx = [1, 2]\ny = [3, 4]\n'
    )
    inst = als.register_instrument(path)
    assert inst.reversed == (2,) and inst.provenance == "verified" and inst.source == str(path)
    with pytest.raises(als.InstrumentKeyError, match="already registered"):
        als.register_instrument(path)
    path.write_text(path.read_text().replace("reversed = [2]", "reversed = [3]"))
    assert als.register_instrument(path, replace=True).reversed == (3,)
    assert als.get_instrument("t-calpas-official").reversed == (3,)


def test_register_bad_toml(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("name = \n")
    with pytest.raises(als.InstrumentKeyError, match="not valid TOML"):
        als.register_instrument(p)
    with pytest.raises(als.InstrumentKeyError, match="does not exist"):
        als.register_instrument(tmp_path / "none.toml")


def test_defaults_for_user_keys():
    inst = als.register_instrument({"name": "t-defaults", "n_items": 2, "scale": [0, 1], "subscales": {}})
    assert (inst.reversed, inst.scoring, inst.provenance, inst.max_missing) == ((), "mean", "user", 0)
    assert inst.prefix == "t_defaults"
    d = inst.to_dict()
    assert d["scale"] == [0, 1] and d["subscales"] == {}
