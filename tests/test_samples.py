import importlib.util
from pathlib import Path

import pandas as pd
import pytest

import alliance_stats as als

ROOT = Path(__file__).resolve().parents[1]


def test_list_and_load_samples():
    ls = als.list_samples()
    assert {"sessions_csv", "sessions_spss", "sessions_excel", "sessions_long", "pqs", "meta", "truth", "episodes"} <= set(ls.name)
    for name in ls.name:
        obj = als.load_sample(name)
        assert len(obj) > 0, name
    assert als.load_sample("truth")["seed"] == 20261121
    meta = als.load_sample("meta")
    assert meta["synthetic"].all() and meta["r"].abs().lt(1).all() and (meta["n"] > 3).all()
    with pytest.raises(als.DataFileError, match="unknown sample"):
        als.sample_path("nope")


def test_make_samples_reproduces_committed_files(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("make_samples", ROOT / "sample_data" / "make_samples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "OUT", tmp_path)
    mod.main()
    for name in ["sessions_wide.csv", "sessions_long.csv", "pqs_sorts.csv", "meta_alliance_outcome.csv", "planted_ruptures.csv"]:
        new = pd.read_csv(tmp_path / name)
        old = pd.read_csv(ROOT / "sample_data" / name)
        pd.testing.assert_frame_equal(new, old, check_exact=False, rtol=1e-9, obj=name)
