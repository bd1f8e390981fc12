"""Figures say what they show: each data-tour chart carries its own axis labels and title."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from exdd_lab import plots  # noqa: E402


def test_counts_and_mask_areas_have_their_own_labels():
    summary = pd.DataFrame({"split": ["train", "test", "test"], "label": ["good", "good", "defect"],
                            "defect_type": ["good", "good", "scratch"], "images": [10, 4, 3], "masks": [0, 0, 3]})
    counts = plots.plot_counts(summary).axes[0]
    assert counts.get_ylabel() == "images" and "defect type" in counts.get_title()
    assert [t.get_text() for t in counts.get_xticklabels()] == ["good", "scratch"]
    assert [t.get_text() for t in counts.get_legend().get_texts()] == ["train", "test"]
    areas = plots.plot_mask_areas([0.001, 0.01, 0.2]).axes[0]
    assert "mask" in areas.get_xlabel() and areas.get_ylabel() == "defect images" and areas.get_xscale() == "log"
    assert counts.get_xlabel() != areas.get_xlabel() and counts.get_ylabel() != areas.get_ylabel()
    plt.close("all")
