"""Checks the built documentation site (make docs) as a reader would.

1. Internal links: every relative href of every HTML page points to a file of the site, and its
   #fragment (if any) to an id on that page.
2. In headless Chromium (Debian's `chromium` and `chromium-driver`, driven by selenium): the front
   page, the API page of monge.sinkhorn and a notebook page load; their formulas were typeset by
   MathJax (no raw TeX such as \\frac left in the text), every image loaded, and a screenshot of each
   is kept in build/docs/screenshots/ (the CI artefact).

    python tools/check_docs.py [--site build/docs/html] [--no-browser]
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
PAGES = {  # page -> what it must show
    "index.html": "front page",
    "generated/monge.sinkhorn.html": "API page of monge.sinkhorn (formulas)",
    "notebooks/monge_gap_maps.html": "notebook page (plots)",
}
RAW_TEX = re.compile(r"\\(frac|sum|langle|varepsilon|mathrm|operatorname)\b|\$\$")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        for key in ("href", "src"):
            if tag in ("a", "link", "img", "script") and a.get(key):
                self.hrefs.append(a[key])


def _parse(path):
    p = _Links()
    p.feed(path.read_text(encoding="utf-8", errors="replace"))
    return p


def check_links(site):
    pages = sorted(site.rglob("*.html"))
    parsed = {p: _parse(p) for p in pages}
    bad = []
    for page, info in parsed.items():
        for href in info.hrefs:
            u = urlsplit(href)
            if u.scheme or u.netloc or href.startswith(("mailto:", "javascript:", "data:")):
                continue
            target = (page.parent / unquote(u.path)).resolve() if u.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                bad.append(f"{page.relative_to(site)}: {href} (no such file)")
                continue
            if u.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if unquote(u.fragment) not in ids:
                    bad.append(f"{page.relative_to(site)}: {href} (no id {u.fragment!r})")
    return len(pages), bad


def check_in_browser(site, out):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
    if not chromium or not Path(driver_path).exists():
        raise SystemExit("check_docs: headless Chromium needs Debian's chromium and chromium-driver "
                         "(apt-get install chromium chromium-driver), or pass --no-browser")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1600"):
        opts.add_argument(flag)
    out.mkdir(parents=True, exist_ok=True)
    failures = []
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.set_page_load_timeout(60)
        for page, what in PAGES.items():
            path = site / page
            if not path.exists():
                failures.append(f"{page}: missing ({what})")
                continue
            driver.get(path.as_uri())
            # MathJax 3 typesets after load: wait for its startup promise when the page has math
            driver.execute_async_script("""
                const done = arguments[arguments.length - 1];
                const mj = window.MathJax;
                if (mj && mj.startup && mj.startup.promise) mj.startup.promise.then(() => done(1), () => done(0));
                else done(1);""")
            state = driver.execute_script("""
                const imgs = Array.from(document.images);
                return {math: document.querySelectorAll('.math').length,
                        typeset: document.querySelectorAll('mjx-container').length,
                        images: imgs.length,
                        broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
                        text: document.body.innerText};""")
            # the screenshot shows the first typeset formula when the page has one
            driver.execute_script("const m = document.querySelector('mjx-container');"
                                  "if (m) m.scrollIntoView({block: 'center'});")
            shot = out / (page.replace("/", "_").replace(".html", ".png"))
            driver.save_screenshot(str(shot))
            raw = sorted(set(m.group(0) for m in RAW_TEX.finditer(state["text"])))
            line = (f"{page}: {state['math']} formulas, {state['typeset']} typeset, "
                    f"{state['images']} images, screenshot {shot.relative_to(ROOT)}")
            print(line)
            if state["math"] and state["typeset"] < state["math"]:
                failures.append(f"{page}: {state['math'] - state['typeset']} formulas not typeset")
            if raw:
                failures.append(f"{page}: raw TeX left in the text: {', '.join(raw)}")
            if state["broken"]:
                failures.append(f"{page}: images that did not load: {state['broken'][:5]}")
            if page.startswith("generated/monge.sinkhorn") and not state["typeset"]:
                failures.append(f"{page}: no formula typeset (the docstring has one)")
            if page.startswith("notebooks/") and not state["images"]:
                failures.append(f"{page}: no plot image")
    finally:
        driver.quit()
    return failures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site", type=Path, default=ROOT / "build" / "docs" / "html")
    ap.add_argument("--screenshots", type=Path, default=ROOT / "build" / "docs" / "screenshots")
    ap.add_argument("--no-browser", action="store_true", help="check the links only")
    args = ap.parse_args(argv)
    if not (args.site / "index.html").exists():
        raise SystemExit(f"check_docs: no site at {args.site} (run make docs)")
    n, bad = check_links(args.site)
    print(f"internal links: {n} pages, {len(bad)} broken")
    for b in bad[:50]:
        print("  " + b)
    failures = [] if args.no_browser else check_in_browser(args.site, args.screenshots)
    for f in failures:
        print("FAIL " + f)
    return 1 if bad or failures else 0


if __name__ == "__main__":
    sys.exit(main())
