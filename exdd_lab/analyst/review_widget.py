"""Review an archive run in JupyterLab: one image at a time with its anomaly map, verdicts by button or key.

``review(run)`` shows a :class:`~exdd_lab.analyst.review_queue.ReviewQueue` as widgets: filters (sub-folders, score
band, near the threshold, not yet reviewed), a threshold slider with how many images each folder would flag, the
image beside its map overlaid, and the verdict buttons. Keys, with the pointer over the widget (ipyevents keeps them
from JupyterLab's own shortcuts): **d** defect, **n** normal, **u** unsure, **j** / → next, **k** / ← previous.
Every verdict lands in the run's ``reviews.csv`` at once. The map is the one the run saved (``score --save-maps``),
else recomputed for the page when a detector is given, else left out (said on the page).
"""
from __future__ import annotations

import io
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from exdd_lab.analyst.review_queue import ReviewQueue
from exdd_lab.analyst.reviews import VERDICTS

KEYS = {"d": ("judge", "defect"), "n": ("judge", "normal"), "u": ("judge", "unsure"),
        "j": ("move", 1), "ArrowRight": ("move", 1), "k": ("move", -1), "ArrowLeft": ("move", -1)}
VERDICT_STYLE = {"defect": "danger", "normal": "success", "unsure": "warning"}
PICTURE_SIZE = 256


@lru_cache(maxsize=1)
def _jet() -> np.ndarray:
    """matplotlib's 'jet' as a (256, 3) uint8 lookup table, made once."""
    from matplotlib import colormaps

    return (colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def _colorize(anomaly_map: np.ndarray) -> np.ndarray:
    """A map in [0, 1] as RGB through the lookup table (no figure: fast enough for every key press)."""
    return _jet()[np.clip(np.rint(anomaly_map * 255), 0, 255).astype(np.uint8)]


def side_by_side(image: np.ndarray, anomaly_map: np.ndarray | None, size: int = PICTURE_SIZE) -> bytes:
    """PNG bytes: the image, and beside it the image with the map (scaled to [0, 1]) laid over at half strength."""
    picture = np.asarray(Image.fromarray(image).convert("RGB").resize((size, size), Image.BILINEAR))
    if anomaly_map is None:
        out = picture
    else:
        m = np.asarray(Image.fromarray(np.asarray(anomaly_map, np.float32)).resize((size, size), Image.BILINEAR))
        span = float(m.max() - m.min())
        m = (m - m.min()) / span if span > 0 else np.zeros_like(m)
        overlay = (0.5 * picture + 0.5 * _colorize(m)).astype(np.uint8)
        out = np.concatenate([picture, np.full((size, 4, 3), 255, np.uint8), overlay], axis=1)
    buffer = io.BytesIO()
    Image.fromarray(out).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class ReviewWidget:
    """The widgets over one :class:`ReviewQueue` (``.box`` is what a cell shows; ``.press(key)`` is what a key does)."""

    def __init__(self, queue: ReviewQueue, detector=None, cache_maps: int = 16) -> None:
        import ipywidgets as w

        self.queue, self.detector = queue, detector
        self._maps: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_maps = cache_maps
        lo, hi = queue.score_range
        step = (hi - lo) / 1000 or 1e-6
        self.folders = w.SelectMultiple(options=queue.folders, value=tuple(queue.folders), rows=min(6, len(queue.folders)),
                                        description="folders")
        self.band = w.FloatRangeSlider(value=(lo, hi), min=lo, max=hi, step=step, description="score band",
                                       readout_format=".4g", continuous_update=False)
        self.near = w.Checkbox(value=False, description="near the threshold", disabled=queue.threshold is None)
        self.unreviewed = w.Checkbox(value=False, description="not yet reviewed")
        start = queue.threshold if queue.threshold is not None else float(np.quantile(queue.table["score"], 0.99))
        self.threshold = w.FloatSlider(value=min(max(start, lo), hi), min=lo, max=hi, step=step, description="threshold",
                                       readout_format=".4g", continuous_update=False)
        self.counts = w.HTML()
        self.caption = w.Label()
        self.details = w.HTML()
        self.picture = w.Image(format="png")
        self.buttons = {v: w.Button(description=f"{v} ({v[0]})", button_style=VERDICT_STYLE[v]) for v in VERDICTS}
        self.previous = w.Button(description="◀ previous (k)")
        self.next = w.Button(description="next (j) ▶")
        self.tally = w.Label()
        for verdict, button in self.buttons.items():
            button.on_click(lambda _, v=verdict: self.press(v[0]))
        self.previous.on_click(lambda _: self.press("k"))
        self.next.on_click(lambda _: self.press("j"))
        for control in (self.folders, self.band, self.near, self.unreviewed):
            control.observe(self._filter, names="value")
        self.threshold.observe(lambda _: self._show_counts(), names="value")
        filters = w.VBox([w.HBox([self.folders, w.VBox([self.band, self.near, self.unreviewed])]),
                          w.HBox([self.threshold, self.counts])])
        self.box = w.VBox([filters, self.caption, self.picture, self.details,
                           w.HBox([self.previous, *self.buttons.values(), self.next]), self.tally])
        self.box.add_class("exdd-review")
        # keyboard shortcuts: ipyevents captures keys over the widget, so JupyterLab's own ('d d' deletes a cell) do not fire
        from ipyevents import Event

        self._keys = Event(source=self.box, watched_events=["keydown"], prevent_default_action=True)
        self._keys.on_dom_event(lambda event: self.press(event.get("key", "")))
        self._show_counts()
        self._show()

    def _repr_mimebundle_(self, **kwargs):  # a cell showing the widget shows its box
        return self.box._repr_mimebundle_(**kwargs)

    def press(self, key: str) -> None:
        """Do what ``key`` means (see :data:`KEYS`); other keys are ignored."""
        action = KEYS.get(key)
        if action is None:
            return
        if action[0] == "judge":
            if self.queue.current() is None:
                return
            self.queue.judge(action[1])
        else:
            self.queue.move(action[1])
        self._show()

    def _filter(self, _=None) -> None:
        self.queue.set_filters(list(self.folders.value), self.band.value, self.near.value, self.unreviewed.value)
        self._show()

    def _show_counts(self) -> None:
        counts = self.queue.flag_counts(self.threshold.value)
        rows = "".join(f"<tr><td>{r.folder}</td><td>{r.flagged:,} of {r.images:,}</td><td>{r.share:.1%}</td></tr>"
                       for r in counts.itertuples())
        self.counts.value = (f"<table><tr><th>folder</th><th>flagged at {self.threshold.value:.4g}</th><th></th></tr>"
                             f"{rows}</table>")

    def anomaly_map(self, row: dict) -> tuple[np.ndarray | None, str]:
        """The map of ``row``: saved, recomputed (cached for the last few images) or none, and which."""
        saved = self.queue.map_path(row)
        if saved is not None and saved.is_file():
            return np.asarray(Image.open(saved), np.float32) / 255.0, "saved map"
        if self.detector is None:
            return None, "no map: the run saved none (score --save-maps) and no detector was given"
        path = row["path"]
        if path not in self._maps:
            from exdd_lab.archive.demo import closer_look

            self._maps[path] = closer_look(self.detector, [path])[1][0]
            while len(self._maps) > self._cache_maps:
                self._maps.popitem(last=False)
        return self._maps[path], "map recomputed for this page"

    def _show(self) -> None:
        q, row = self.queue, self.queue.current()
        counts = q.reviews.counts()
        self.tally.value = (f"reviewed: {counts['defect']} defect, {counts['normal']} normal, {counts['unsure']} unsure "
                            f"-> {q.reviews.file}")
        if row is None:
            self.caption.value = "no image in view: widen the filters"
            self.details.value, self.picture.value = "", b""
            return
        self.caption.value = f"image {q.position + 1} of {len(q)} in view (rank {row['rank']:,} of {len(q.table):,} by score)"
        from exdd_lab.data.imageio import load_image

        anomaly_map, source = self.anomaly_map(row)
        self.picture.value = side_by_side(load_image(row["path"], PICTURE_SIZE), anomaly_map)
        flagged = "" if q.threshold is None else (" (flagged)" if row["score"] >= q.threshold else " (below threshold)")
        self.details.value = (f"<b>{row['relative_path']}</b><br>score {row['score']:.5g}{flagged}; "
                              f"verdict: <b>{row['verdict'] or 'none yet'}</b>; {source}")


def review(run: str | Path, detector=None) -> ReviewWidget:
    """The review widget over the archive run in ``run`` (``exdd-lab score --out``); a cell that ends with it shows it.

    ``detector``: a loaded detector (``exdd_lab.methods.registry.load_detector``) to recompute maps the run did not
    save. Verdicts go to ``run/reviews.csv``; reopening resumes them."""
    return ReviewWidget(ReviewQueue(Path(run)), detector)
