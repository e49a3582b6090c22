"""Every ```python block of the README and of docs/ runs as written: the blocks of one page run in
order in one namespace (a page's later blocks may use its earlier ones' names), in a scratch
directory.  A snippet that needs something the reader cannot have must say so in its text and
not be a ```python block."""
import os
import re
import warnings

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pages():
    pages = [os.path.join(ROOT, "README.md")]
    for dp, _, fs in os.walk(os.path.join(ROOT, "docs")):
        pages += [os.path.join(dp, f) for f in sorted(fs) if f.endswith(".md")]
    out = []
    for p in sorted(pages):
        with open(p, encoding="utf-8") as fh:
            blocks = re.findall(r"^```python\n(.*?)^```", fh.read(), flags=re.S | re.M)
        if blocks:
            out.append(pytest.param(p, blocks, id=os.path.relpath(p, ROOT)))
    return out


PAGES = _pages()


def test_the_pages_have_snippets():
    assert len(PAGES) >= 4 and any(p.id == "README.md" for p in PAGES)


@pytest.mark.parametrize("page, blocks", PAGES)
def test_snippets_run_as_written(page, blocks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, code in enumerate(blocks):
            try:
                exec(compile(code, f"{os.path.relpath(page, ROOT)}, python block {k + 1}", "exec"), ns)
            except Exception as exc:
                raise AssertionError(f"{os.path.relpath(page, ROOT)}: python block {k + 1} fails: "
                                     f"{type(exc).__name__}: {exc}\n{code}") from exc
