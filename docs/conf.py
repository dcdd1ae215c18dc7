"""Sphinx configuration of the course website (``make site``; see tools/build_site.py, which stages this folder
with the executed lesson notebooks and runs Sphinx on the copy).

Offline by design: the theme (sphinx-book-theme) ships its assets in its wheel, the notebooks are rendered from
the outputs the course's own executor stored (no execution, no widget JavaScript from a CDN), and MathJax is
served from the build (Sphinx would load it from a CDN): its files come from the ``django-static-mathjax`` wheel,
which is MathJax 3.2.2's distribution and nothing else.
"""
from __future__ import annotations

import html
import os
import shutil
from pathlib import Path

import mathjax  # the django-static-mathjax wheel: MathJax's files under mathjax/static/mathjax/es5
from myst_nb.sphinx_ import HideCodeCellNode, depart_HideCellInput
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxTranslator

project = "Variational Autoencoders, a course"
author = "the course's authors"
copyright = "the course's authors"

extensions = ["myst_nb", "sphinx_design"]
# Staged by tools/build_site.py: the docs pages, lessons/*.ipynb (executed), downloads/ (the exercise notebooks and
# the student release zip); it appends to results.md an include of every results/*.md, which are no pages.
exclude_patterns = ["_build", "results/*", "results-generated/*", "downloads/**", "README.md", ".ipynb_checkpoints"]
root_doc = "index"
suppress_warnings = ["myst.header"]  # lessons go from a section straight to a sub-sub-section in places

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

nb_execution_mode = "off"  # tools/build_site.py executes (with its cache) and stores the outputs
nb_ipywidgets_js = {}  # no widget JavaScript from a CDN: build_site.py replaces each widget by its static output
nb_merge_streams = True
nb_output_stderr = "remove-warn"

html_theme = "sphinx_book_theme"
html_title = "Variational Autoencoders"
html_static_path = ["_static"]
# search-button-field.html: the theme's search button with its visible text as its accessible name.
templates_path = ["_templates"]
html_css_files = ["course.css"]
html_favicon = "_static/favicon.svg"  # without one the browser asks for /favicon.ico and logs a 404
html_last_updated_fmt = None
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "launch_buttons": {},
    "navigation_with_keys": False,
}
html_show_sourcelink = False
html_context = {"default_mode": "light"}

# MathJax from the build, not from a CDN.
MATHJAX_ES5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
MATHJAX_PARTS = ("tex-mml-chtml.js", "input", "output/chtml.js", "output/chtml", "ui", "a11y", "adaptors")
mathjax_path = "mathjax/tex-mml-chtml.js"  # relative to _static
# textmacros: the lessons write \text{log\_std}, which JupyterLab renders as log_std.
mathjax3_config = {
    "loader": {"load": ["[tex]/textmacros"]},
    "tex": {"packages": {"[+]": ["textmacros"]}},
    "options": {"processHtmlClass": "tex2jax_process|mathjax_process|math|output_area"},
}


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """Copy the MathJax files a page loads (the combined component, its fonts, lazily loaded extensions and
    menu) into ``_static/mathjax`` of the built site; the speech rules and the SVG output stay out."""
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        source = MATHJAX_ES5 / part
        destination = target / part
        if source.is_dir():
            shutil.copytree(source, destination, dirs_exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def visit_folded_input(self: SphinxTranslator, node: HideCodeCellNode) -> None:
    """myst-nb's folded cell ("Show solution 1.1"), without the summary's aria-label "Toggle hidden content": that
    label left the visible text out of the toggle's accessible name (WCAG 2.5.3, label in name; axe-core's
    label-content-name-mismatch, checked by make site-test); the name is now the visible prompt."""
    self.body.append(f'<details class="admonition hide {" ".join(node["classes"])}">\n<summary>\n'
                     f'<p class="collapsed admonition-title">{html.escape(node["prompt_show"])}</p>\n'
                     f'<p class="expanded admonition-title">{html.escape(node["prompt_hide"])}</p>\n</summary>\n')


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("build-finished", copy_mathjax)
    app.add_node(HideCodeCellNode, override=True, html=(visit_folded_input, depart_HideCellInput))
    return {"parallel_read_safe": True}


# SOLUTIONS=0 builds (an instructor publishing during term) say so on every page.
if os.environ.get("VAE_COURSE_SITE_SOLUTIONS", "1") == "0":
    html_theme_options["announcement"] = "This edition of the course site leaves the exercises' solutions out."
