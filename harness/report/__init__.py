"""Reports of graded runs: HTML pages with charts, JUnit XML, a Markdown summary, run.json.

Each output renders from a view model of formatted values (``build_run_view``); HTML comes from
Jinja2 templates with autoescape on, charts from matplotlib as inline SVG.
"""

from harness.report._junit import render_junit
from harness.report._site import RunReportPaths, load_run, write_run, write_site
from harness.report._summary import render_summary, summary_line
from harness.report._view import RunView, build_run_view
from harness.report.regressions import Regression, find_regressions

__all__ = [
    "Regression",
    "RunReportPaths",
    "RunView",
    "build_run_view",
    "find_regressions",
    "load_run",
    "render_junit",
    "render_summary",
    "summary_line",
    "write_run",
    "write_site",
]
