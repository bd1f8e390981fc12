"""The lessons' knobs (exdd_lab.plots.controls.explore): live in JupyterLab, one static drawing when headless."""
from __future__ import annotations

import ipywidgets as widgets
import pytest

from exdd_lab.plots.browser import HEADLESS_ENV
from exdd_lab.plots.controls import explore


def test_headless_draws_once_at_the_starting_values(monkeypatch):
    monkeypatch.setenv(HEADLESS_ENV, "1")
    calls = []
    box = explore(lambda ratio, kind: calls.append((ratio, kind)),
                  ratio=widgets.FloatSlider(value=0.25), kind=widgets.Dropdown(options=["a", "b"], value="b"))
    assert box is None and calls == [(0.25, "b")]


def test_live_control_redraws_when_the_value_changes(monkeypatch):
    monkeypatch.delenv(HEADLESS_ENV, raising=False)
    calls = []
    slider = widgets.IntSlider(value=3, min=0, max=10)
    box = explore(lambda t: calls.append(t), t=slider)
    assert isinstance(box, widgets.VBox) and slider in box.children[0].children
    assert calls == [3]  # drawn once when shown
    slider.value = 7
    assert calls == [3, 7]


def test_explore_needs_a_control():
    with pytest.raises(ValueError, match="at least one control"):
        explore(lambda: None)
