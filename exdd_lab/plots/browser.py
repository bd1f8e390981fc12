"""Step through failure cases: an ipywidgets browser in JupyterLab, a static gallery when headless.

Choose a method, a case kind (FN, FP, TP, TN, or images where the methods disagree) and a threshold
(F1-optimal, or normal-only when held-out normals were scored), then step through the cases, most
telling first (:func:`exdd_lab.evaluation.failures.ranked_cases`). Each case shows the image, its mask and every
method's map on one colour scale, with scores, ranks and outcomes in a table. The picture is a PNG in
an ``ipywidgets.Image`` and the table HTML in an ``ipywidgets.HTML``, so the browser's state can be
read (and tested) without a front end. Taught in ``notebooks/06_failure_case_analysis.ipynb``.
"""
from __future__ import annotations

import html
import os

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pandas as pd

from exdd_lab.evaluation.failures import CASE_KINDS, ranked_cases
from exdd_lab.plots.failures import case_figure, figure_png, show_case_maps
from exdd_lab.evaluation.results import ResultSet

HEADLESS_ENV = "EXDD_LAB_HEADLESS"
CELL_STYLE = "padding: 2px 10px; text-align: left; border-bottom: 1px solid #ddd"


def is_headless() -> bool:
    """True when the notebook runs without a person at it (the runner and the test harness set
    ``EXDD_LAB_HEADLESS=1``): widgets would show nothing there, so a static gallery is drawn instead."""
    return os.environ.get(HEADLESS_ENV, "") not in ("", "0")


class FailureBrowser:
    """The widget: ``FailureBrowser(results).widget`` is what a notebook displays."""

    def __init__(self, results: ResultSet, method: str | None = None, kind: str = "FN", threshold: str = "f1") -> None:
        self.results = results
        thresholds = [("F1-optimal", "f1")] + ([("normal-only", "normal_only")] if results.has_normal_only else [])
        self.method = widgets.Dropdown(options=results.methods, value=method or results.methods[0], description="method")
        self.kind = widgets.ToggleButtons(options=list(CASE_KINDS), value=kind, description="cases")
        self.threshold = widgets.ToggleButtons(options=thresholds, value=threshold, description="threshold")
        self.previous = widgets.Button(description="◀ previous")
        self.next = widgets.Button(description="next ▶")
        self.position = widgets.Label()
        self.picture = widgets.Image(format="png")
        self.details = widgets.HTML()
        self.cases = pd.DataFrame()
        self.index = 0
        for control in (self.method, self.kind, self.threshold):
            control.observe(self._on_selection, names="value")
        self.previous.on_click(lambda _: self.step(-1))
        self.next.on_click(lambda _: self.step(+1))
        self.widget = widgets.VBox([
            widgets.HBox([self.method, self.threshold]), self.kind,
            widgets.HBox([self.previous, self.next, self.position]), self.picture, self.details])
        self.select_cases()

    # ------------------------------------------------------------------ callbacks
    def _on_selection(self, _change=None) -> None:
        self.select_cases()

    def select_cases(self) -> None:
        """Recompute the case list for the current method, kind and threshold; show the first case."""
        self.cases = ranked_cases(self.results.table, self.method.value, self.kind.value, self.threshold.value)
        self.index = 0
        self.show()

    def step(self, delta: int) -> None:
        """Move ``delta`` cases along the list (clamped at its ends)."""
        if len(self.cases):
            self.index = min(max(self.index + delta, 0), len(self.cases) - 1)
        self.show()

    # ------------------------------------------------------------------ display
    @property
    def current_image_id(self) -> int | None:
        return int(self.cases.iloc[self.index]["image_id"]) if len(self.cases) else None

    def show(self) -> None:
        """Render the current case into the picture and the details table."""
        self.previous.disabled = self.index <= 0
        self.next.disabled = self.index >= len(self.cases) - 1
        kind = self.kind.value
        who = "all methods" if kind == "disagreement" else self.method.value
        if not len(self.cases):
            self.position.value = f"no {kind} cases for {who}"
            self.picture.value = b""
            self.details.value = f"<p>No <b>{html.escape(kind)}</b> cases for {html.escape(who)} at this threshold.</p>"
            return
        image_id = self.current_image_id
        # the caption changes last: a person never reads "case 2" above the picture of case 1 while it renders
        self.picture.value = figure_png(case_figure(self.results, image_id, self.method.value, self.threshold.value))
        self.details.value = self.case_html(image_id)
        self.position.value = f"{kind} case {self.index + 1} of {len(self.cases)} ({who})"

    def case_html(self, image_id: int) -> str:
        """The case's numbers: one row per method (score, rank, decision, outcome, pixel numbers)."""
        t = self.threshold.value
        rows = self.results.table[self.results.table["image_id"] == image_id]
        sample = rows.iloc[0]
        columns = {"method": "method", "score": "score", "score_rank": "rank", f"threshold_{t}": "threshold",
                   f"outcome_{t}": "outcome", "pixel_auroc": "pixel AUROC (image)", "iou": "IoU",
                   "flagged_fraction": "flagged area"}
        frame = rows[list(columns)].rename(columns=columns)
        head = (f"<p><b>{html.escape(str(sample['stem']))}</b> · {html.escape(str(sample['defect_type']))} · "
                f"label {'defect' if sample['label'] else 'normal'} · {html.escape(str(sample['image_path']))}</p>")
        table = frame.to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep="–", border=0)
        # inline cell styles: the widget shows raw HTML, so header and values would otherwise run together
        return head + (table.replace('<tr style="text-align: right;">', "<tr>")
                       .replace("<th>", f'<th style="{CELL_STYLE}">').replace("<td>", f'<td style="{CELL_STYLE}">'))


def case_gallery(results: ResultSet, kinds: tuple[str, ...] = ("FN", "FP"), threshold: str = "f1", k: int = 3,
                 methods: list[str] | None = None) -> list[plt.Figure]:
    """The browser's cases as static figures: for each method and kind, its top ``k`` cases (every
    method's map side by side), then the ``k`` images the methods disagree on most."""
    figures = []
    for method in methods or results.methods:
        for kind in kinds:
            ids = [int(i) for i in ranked_cases(results.table, method, kind, threshold, k)["image_id"]]
            if ids:
                fig = show_case_maps(results, ids, threshold=threshold)
                fig.suptitle(f"{method}: top {len(ids)} {kind} ({threshold} threshold)", fontsize=10, y=1.0)
                figures.append(fig)
    ids = [int(i) for i in ranked_cases(results.table, "", "disagreement", threshold, k)["image_id"]]
    if ids:
        fig = show_case_maps(results, ids, threshold=threshold)
        fig.suptitle(f"the {len(ids)} images the methods disagree on most ({threshold} threshold)", fontsize=10, y=1.0)
        figures.append(fig)
    return figures


def browse(results: ResultSet, k: int = 3, threshold: str = "f1") -> FailureBrowser | list[plt.Figure]:
    """In JupyterLab: display the browser. Headless: draw the static gallery instead (and return it)."""
    if is_headless():
        print(f"headless run: a static gallery of the top {k} cases per method and kind instead of the browser")
        return case_gallery(results, threshold=threshold, k=k)
    from IPython.display import display

    browser = FailureBrowser(results, threshold=threshold)
    display(browser.widget)
    return browser
