"""The course website in a real browser: Debian's Chromium, driven by Playwright (`make site-test`, after
`make site`).

Every page answers, with no console error and no request leaving the site (the site must read offline); every
image loads; the mathematics is rendered by the site's own MathJax (no raw ``$$``, no error node); every internal
link and anchor resolves; the search finds lesson 3 for "ELBO"; each solution toggle opens; the lesson pages fit a
375 px phone without horizontal scrolling of the text. Screenshots of the landing page and of lesson 7 are written
to ``build/site-screenshots/`` (``VAE_COURSE_SITE_SCREENSHOTS`` overrides it) for a person to look at.
"""
from __future__ import annotations

import os
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.browser import chromium, free_port, serving
from tools.build_notebooks import build_lesson, lesson_sources

REPO_ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("VAE_COURSE_SITE_DIR", REPO_ROOT / "site"))
SCREENSHOTS = Path(os.environ.get("VAE_COURSE_SITE_SCREENSHOTS", REPO_ROOT / "build" / "site-screenshots"))
PHONE_WIDTH = 375
# Pages Sphinx writes that are not the course's (the index of terms is empty: the course defines none).
SKIPPED_PAGES = ("genindex.html",)


def _pages() -> list[str]:
    """Every HTML page of the built site, relative to it (none when the site is not built: the fixture says so)."""
    if not SITE.is_dir():
        return []
    return sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html")
                  if not p.relative_to(SITE).parts[0].startswith("_") and p.name not in SKIPPED_PAGES)


PAGES = _pages()
LESSON_PAGES = [p for p in PAGES if p.startswith("lessons/")]


@pytest.fixture(scope="module")
def site_url() -> Iterator[str]:
    assert (SITE / "index.html").exists(), f"no site in {SITE}: run `make site` first"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(SITE)]
    with serving(command, f"{url}/index.html", "the site's web server", 10):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium("site-test") as launched:
        yield launched


class Recorder:
    """What a page did wrong: console errors, failed responses, requests that left the site."""

    def __init__(self, page: Page, site_url: str) -> None:
        self.errors: list[str] = []
        self.outside: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("response", lambda r: self.errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.route("**/*", lambda route: self._route(route, site_url))

    def _route(self, route: object, site_url: str) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith(site_url) or url.startswith("data:") or url.startswith("blob:"):
            route.continue_()  # type: ignore[attr-defined]
        else:
            self.outside.append(url)
            route.abort()  # type: ignore[attr-defined]


def _open(browser: Browser, site_url: str, path: str, width: int = 1280) -> tuple[Page, Recorder]:
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    recorder = Recorder(page, site_url)
    response = page.goto(f"{site_url}/{path}", wait_until="networkidle")
    assert response is not None and response.ok, f"{path}: {response.status if response else 'no answer'}"
    _wait_for_mathematics(page)
    return page, recorder


def _wait_for_mathematics(page: Page) -> None:
    """Wait until MathJax (where the page loads it) has typeset the page."""
    if page.evaluate("document.querySelector('.math') !== null"):
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
        page.evaluate("MathJax.startup.promise")


@pytest.mark.parametrize("path", PAGES or ["index.html"])
def test_page_answers_offline_with_images_and_mathematics(browser: Browser, site_url: str, path: str) -> None:
    page, recorder = _open(browser, site_url, path)
    try:
        broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                               ".map(i => i.getAttribute('src'))")
        assert not broken, f"{path}: images that do not load: {broken}"
        text = page.evaluate("""(() => { const main = document.querySelector('main') || document.body;
            const copy = main.cloneNode(true); copy.querySelectorAll('pre, code, script, style, mjx-container')
            .forEach(n => n.remove()); return copy.innerText; })()""")
        assert "$$" not in text, f"{path}: raw $$ left in the text"
        assert "\\(" not in text and "\\[" not in text, f"{path}: mathematics MathJax did not typeset"
        math = page.evaluate("document.querySelectorAll('.math').length")
        rendered = page.evaluate("document.querySelectorAll('mjx-container').length")
        assert rendered >= math, f"{path}: {math} formulas, {rendered} rendered"
        assert page.evaluate("document.querySelectorAll('mjx-merror, [data-mjx-error]').length") == 0, \
            f"{path}: MathJax reports an error in a formula"
        assert not recorder.errors, f"{path}: console errors or failed loads: {recorder.errors}"
        assert not recorder.outside, f"{path}: requests that leave the site: {recorder.outside}"
    finally:
        page.context.close()


def test_the_lessons_have_mathematics_to_check() -> None:
    """A check that the mathematics test above has something to check: the ELBO lesson has formulas."""
    lesson3 = next(p for p in LESSON_PAGES if "03_" in p)
    assert (SITE / lesson3).read_text(encoding="utf-8").count('class="math') > 20


class _Links(HTMLParser):
    """The hrefs, srcs and element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("id", "name"):
            if values.get(name):
                self.ids.add(values[name])  # type: ignore[arg-type]
        for name in ("href", "src"):
            if values.get(name) and tag in ("a", "img", "link", "script"):
                self.targets.append(values[name])  # type: ignore[arg-type]


def _parsed(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_every_internal_link_and_anchor_resolves() -> None:
    assert PAGES, f"no site in {SITE}: run `make site` first"
    parsed: dict[Path, _Links] = {}
    broken = []
    checked = 0
    for page in PAGES:
        source = SITE / page
        for target in parsed.setdefault(source, _parsed(source)).targets:
            split = urllib.parse.urlsplit(target)
            if split.scheme or target.startswith("//"):
                continue
            resolved = (source.parent / urllib.parse.unquote(split.path)).resolve() if split.path else source
            if resolved.is_dir():
                resolved = resolved / "index.html"
            checked += 1
            if not resolved.exists():
                broken.append(f"{page}: {target} (no file)")
                continue
            if split.fragment and resolved.suffix == ".html":
                ids = parsed.setdefault(resolved, _parsed(resolved)).ids
                if split.fragment not in ids:
                    broken.append(f"{page}: {target} (no anchor)")
    assert checked > 100, f"only {checked} internal links found"
    assert not broken, "broken internal links:\n" + "\n".join(broken)


def test_every_lesson_has_a_page_and_a_download() -> None:
    for source in lesson_sources():
        page = SITE / "lessons" / f"{source.stem}.html"
        assert page.exists(), f"lesson {source.stem} has no page"
        assert f"{source.stem}.ipynb" in page.read_text(encoding="utf-8"), f"{page}: no download of the notebook"


def test_search_finds_lesson_3_for_elbo(browser: Browser, site_url: str) -> None:
    page, recorder = _open(browser, site_url, "search.html?q=ELBO")
    try:
        results = page.locator("#search-results a[href*='03_variational_inference_elbo']")
        results.first.wait_for(timeout=30_000)
        assert not recorder.errors, recorder.errors
    finally:
        page.context.close()


@pytest.mark.parametrize("path", LESSON_PAGES or ["lessons/"])
def test_each_solution_toggle_opens(browser: Browser, site_url: str, path: str) -> None:
    source = next(s for s in lesson_sources() if s.stem == Path(path).stem)
    exercises = build_lesson(source).exercises
    page, _ = _open(browser, site_url, path)
    try:
        for exercise in exercises:
            toggle = page.locator(f'details:has(p.collapsed:text-is("Show solution {exercise.number}"))')
            assert toggle.count() == 1, f"{path}: no solution toggle for exercise {exercise.number}"
            code = toggle.locator("pre").first
            assert not code.is_visible(), f"{path}: the solution to {exercise.number} is not folded"
            toggle.locator("summary").click()
            assert toggle.evaluate("d => d.open"), f"{path}: the toggle of {exercise.number} does not open"
            assert code.is_visible(), f"{path}: the solution to {exercise.number} stays hidden once opened"
        for answer in page.locator("details.sd-dropdown").all():
            answer.locator("summary").click()
            assert answer.evaluate("d => d.open"), f"{path}: an answer dropdown does not open"
    finally:
        page.context.close()


@pytest.mark.parametrize("path", LESSON_PAGES or ["lessons/"])
def test_lesson_page_fits_a_phone(browser: Browser, site_url: str, path: str) -> None:
    """At 375 px the page itself does not scroll sideways (code and wide tables scroll in their own boxes), and
    no paragraph of text runs past the screen's edge."""
    page, _ = _open(browser, site_url, path, width=PHONE_WIDTH)
    try:
        width = page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= PHONE_WIDTH, f"{path}: the page is {width} px wide on a {PHONE_WIDTH} px screen"
        # A paragraph wider than the screen, or whose content (a long formula, a long word) runs out of its box.
        overflowing = page.evaluate(f"""[...document.querySelectorAll('article :is(p, li, h1, h2, h3)')]
            .filter(e => e.closest('pre, table, .highlight, .cell_output') === null)
            .filter(e => e.getBoundingClientRect().right > {PHONE_WIDTH} + 1 || e.scrollWidth > e.clientWidth + 1)
            .map(e => e.innerText.slice(0, 60))""")
        assert not overflowing, f"{path}: text wider than the screen: {overflowing[:3]}"
    finally:
        page.context.close()


def test_explorers_show_their_first_figure() -> None:
    """Each ipywidgets explorer (lessons 3, 7, 8) is a figure and a note on the page, not an empty widget."""
    found = 0
    for page in LESSON_PAGES:
        html = (SITE / page).read_text(encoding="utf-8")
        for part in html.split("Interactive in JupyterLab.")[:-1]:
            found += 1
            assert "<img" in part[-4000:], f"{page}: an explorer's note follows no figure"
    assert found >= 3, f"{found} explorers found on the lesson pages, expected at least 3"


def test_screenshots_of_the_landing_page_and_lesson_7(browser: Browser, site_url: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    lesson7 = next(p for p in LESSON_PAGES if p.startswith("lessons/07_"))
    for path, name in (("index.html", "landing.png"), (lesson7, "lesson07.png")):
        for width, suffix in ((1280, ""), (PHONE_WIDTH, "-phone")):
            page, _ = _open(browser, site_url, path, width=width)
            try:
                target = SCREENSHOTS / name.replace(".png", f"{suffix}.png")
                page.screenshot(path=str(target), full_page=False)
                assert target.stat().st_size > 10_000, f"{target}: an empty screenshot"
            finally:
                page.context.close()


# axe-core (Deque's accessibility engine) from npm, pinned in tests/site/package.json (`make browser` installs it
# with npm ci): injected from disk, so nothing is fetched when a page is audited. The rules: WCAG 2.0 and 2.1 at
# levels A and AA, and label-content-name-mismatch (WCAG 2.5.3: a control's visible text is part of its accessible
# name), which axe marks experimental and leaves off unless asked.
AXE = REPO_ROOT / "tests" / "site" / "node_modules" / "axe-core" / "axe.min.js"
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
               "rules": {"label-content-name-mismatch": {"enabled": True}}, "resultTypes": ["violations"]}


def accessibility_violations(page: Page) -> list[str]:
    """axe-core's WCAG 2 A/AA violations on the page: one line per rule, with how many elements break it and the
    first of them."""
    assert AXE.exists(), f"{AXE} is missing: `make browser` installs the browser tests' npm packages"
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate("options => axe.run(document, options).then(r => r.violations.map(v => "
                               "({id: v.id, help: v.help, nodes: v.nodes.map(n => n.html)})))", AXE_OPTIONS)
    return [f"{v['id']} ({v['help']}): {len(v['nodes'])} elements, e.g. {v['nodes'][0][:160]}" for v in violations]


@pytest.mark.parametrize("path", PAGES or ["index.html"])
def test_page_meets_wcag_2_a_and_aa(browser: Browser, site_url: str, path: str) -> None:
    page, _ = _open(browser, site_url, path)
    try:
        violations = accessibility_violations(page)
        assert not violations, f"{path}: axe-core finds WCAG 2 A/AA violations:\n" + "\n".join(violations)
    finally:
        page.context.close()


def test_the_audit_finds_a_violation(browser: Browser) -> None:
    """The audit can fail: a page with an unlabelled button and a button whose name leaves out its visible text."""
    page = browser.new_context().new_page()
    try:
        page.set_content('<html lang="en"><head><title>t</title></head><body><main><button></button>'
                         '<button aria-label="Find">Search Ctrl+K</button></main></body></html>')
        found = " ".join(accessibility_violations(page))
        assert "button-name" in found and "label-content-name-mismatch" in found
    finally:
        page.context.close()
