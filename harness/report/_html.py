"""HTML pages from view models: Jinja2 with autoescape on and undefined names as errors."""

from __future__ import annotations

from pathlib import Path

import jinja2

from harness.report._format import VERDICT_COLOURS
from harness.report._view import IndexView, RunView, SystemView

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(
        enabled_extensions=("html", "xml"),
        disabled_extensions=("css",),
        default_for_string=True,
        default=True,
    ),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# style.css takes the verdict colours from the one table the charts use too.
_templates.globals["verdict_colours"] = {verdict.value: colour for verdict, colour in VERDICT_COLOURS.items()}


def render_run_html(view: RunView) -> str:
    """The page of one run."""
    return _templates.get_template("run.html").render(run=view)


def render_system_html(view: SystemView) -> str:
    """The page of one system and its history."""
    return _templates.get_template("system.html").render(system=view)


def render_index_html(view: IndexView) -> str:
    """The overview of every system's latest grade."""
    return _templates.get_template("index.html").render(index=view)
