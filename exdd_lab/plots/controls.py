"""A knob a student turns: an ipywidgets control that redraws live in JupyterLab, one static drawing when headless.

``explore(draw, ratio=FloatSlider(...))`` shows the controls and ``draw(ratio=...)``'s output (a printed line, a
table, a figure) under them, redrawn when a control changes (``continuous_update=False`` on sliders keeps an expensive
redraw to one per release). Run headlessly (the runner, the test suite, the book) it draws once at the controls'
starting values and shows no widget, so an executed notebook carries the static output. Taught in notebooks 02, 03,
04 and 06.
"""
from __future__ import annotations

from typing import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

from exdd_lab.plots.browser import is_headless


def explore(draw: Callable[..., object], **controls: widgets.ValueWidget) -> widgets.VBox | None:
    """Display ``controls`` above ``draw(**values)``; returns the widget, or ``None`` when headless (drawn once)."""
    if not controls:
        raise ValueError("explore needs at least one control, e.g. ratio=widgets.FloatSlider(...)")

    def redraw(**values):
        result = draw(**values)
        if result is not None and not isinstance(result, plt.Figure):
            display(result)
        plt.show()

    if is_headless():
        redraw(**{name: control.value for name, control in controls.items()})
        return None
    output = widgets.interactive_output(redraw, controls)
    box = widgets.VBox([widgets.HBox(list(controls.values())), output])
    display(box)
    return box
