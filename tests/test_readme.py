import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_example_runs_as_written():
    runnable = [b for b in _blocks() if "read_sessions" in b]
    assert runnable, "the README lost its load-and-score example"
    ns: dict = {}
    for block in runnable:
        exec(compile(block, str(README), "exec"), ns)
    df = ns["df"]
    assert len(df) == 1821 and {"wai_sr_total", "phq9_total"} <= set(df.columns)
