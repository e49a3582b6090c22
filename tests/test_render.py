"""Every results table in the docs and the README is what its committed results file renders to
(benchmarks/render.py), and the README's headline figures appear in the results files they cite."""
import json
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import render  # noqa: E402


def test_every_block_matches_its_results_files():
    total, stale = 0, []
    for path in render.documents():
        n, bad = render.process(path, write=False)
        total += n
        stale += [(os.path.relpath(path, ROOT), s) for s in bad]
    assert not stale, f"run `python benchmarks/render.py`: {stale}"
    assert total >= 10


def _tables_outside_blocks(text):
    inside = [(m.start(), m.end()) for m in render.BLOCK.finditer(text)]
    out = []
    for m in re.finditer(r"^\|.*\|$", text, re.M):
        if not any(a <= m.start() < b for a, b in inside):
            out.append(m.group(0))
    return out


def test_performance_tables_all_come_from_results_files():
    """docs/performance.md has no hand-written table: every one is a render block."""
    with open(os.path.join(ROOT, "docs", "performance.md")) as fh:
        text = fh.read()
    assert _tables_outside_blocks(text) == []


def test_an_unclosed_or_stale_block_is_reported(tmp_path, monkeypatch):
    src = os.path.join(ROOT, "benchmarks", "results", "sparse_ot-2026-12-03.json")
    body = render.render_spec("log-table benchmarks/results/sparse_ot-2026-12-03.json")
    assert "|" in body and "sparse_ot-2026-12-03.json" in body and os.path.exists(src)
    doc = tmp_path / "doc.md"
    doc.write_text("x\n<!-- render: log-table benchmarks/results/sparse_ot-2026-12-03.json -->\n\n"
                   "| stale | table |\n<!-- /render -->\n")
    n, stale = render.process(str(doc), write=False)
    assert n == 1 and len(stale) == 1
    render.process(str(doc), write=True)
    assert render.process(str(doc), write=False) == (1, [])
    doc.write_text("<!-- render: log-table benchmarks/results/sparse_ot-2026-12-03.json -->\n")
    with pytest.raises(ValueError, match="not closed"):
        render.process(str(doc), write=False)
    with pytest.raises(ValueError, match="asked for number 9"):
        render.render_spec("log-table benchmarks/results/sparse_ot-2026-12-03.json 9")
    with pytest.raises(ValueError, match="unknown render kind"):
        render.render_spec("nonsense x")


def test_readme_headlines_appear_in_the_results_files_they_cite():
    """Each row of the README's performance table names its results file(s); every figure in the
    row (e.g. 45.9x, 0.26, 11.8-33.5x) is printed in one of those files' logs."""
    with open(os.path.join(ROOT, "README.md")) as fh:
        text = fh.read()
    section = text[text.index("| task | anchor | monge |"):]
    rows = [r for r in section.split("\n\n")[0].splitlines()[2:] if r.startswith("|")]
    assert len(rows) >= 6
    for row in rows:
        files = re.findall(r"benchmarks/results/[\w.-]+\.json", row)
        assert files, f"README row cites no results file: {row}"
        logs = ""
        for f in files:
            with open(os.path.join(ROOT, f)) as fh:
                logs += "\n".join(json.load(fh).get("log") or [])
        figures = re.findall(r"(?<![\w.])(\d+\.\d+)(?=[×x% /–\-]|\b)", row.split("|")[3])
        assert figures, row
        for fig in figures:
            assert fig in logs, f"{fig} of README row {row[:60]}... is not in {files}"
