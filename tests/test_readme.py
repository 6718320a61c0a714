"""The README's benchmark numbers are rendered from the benchmark JSON (its Python
examples run in tests/test_docs.py)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _report_modules():
    """benchmarks/report.py and readme_numbers.py, imported from their folder."""
    import importlib
    import sys

    bench = str(README.parent / "benchmarks")
    sys.path.insert(0, bench)
    try:
        return importlib.import_module("report"), importlib.import_module("readme_numbers")
    finally:
        sys.path.remove(bench)


def test_readme_numbers_are_rendered_from_the_benchmark_json():
    report, numbers = _report_modules()
    data, _ = report.load_results(README.parent / "benchmarks" / "results")
    names = re.findall(r"<!-- numbers:([a-z0-9-]+) -->", README.read_text())
    assert sorted(names) == sorted(numbers.BLOCKS), "every renderer has its README passage"
    assert numbers.stale_blocks(README, data) == [], (
        "README numbers differ from benchmarks/results: run python benchmarks/report.py")


def test_a_hand_edited_readme_number_is_caught(tmp_path):
    report, numbers = _report_modules()
    data, _ = report.load_results(README.parent / "benchmarks" / "results")
    text = README.read_text()
    block = re.search(r"<!-- numbers:lorenz -->\n(.*?)<!-- /numbers -->", text, re.S).group(1)
    edited = tmp_path / "README.md"
    edited.write_text(text.replace(block, block.replace("27x", "30x", 1)))
    assert numbers.stale_blocks(edited, data) == ["lorenz"]
    assert numbers.update_readme(edited, data) == ["lorenz"]
    assert edited.read_text() == text
