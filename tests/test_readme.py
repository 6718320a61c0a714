"""The README's Python example runs and its stated numbers hold."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_library_example_runs_and_its_comments_hold():
    text = README.read_text()
    block = re.search(r"## Library.*?```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    checked = 0
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 -- our own README
    for line in block.splitlines():
        m = re.fullmatch(r"(\S.*?)\s+# (\(.*?\)|\d+)(?:\W.*)?", line.strip())
        if m and not m.group(1).startswith(("s =", "r =", "prog =")):
            expected = eval(m.group(2).split(":")[0])  # noqa: S307
            assert eval(m.group(1), namespace) == expected, line  # noqa: S307
            checked += 1
    assert checked >= 4
