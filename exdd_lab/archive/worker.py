"""The one unit of work both engines run: a saved detector, loaded once, turning a shard of paths into rows.

``ShardScorer(model_dir, ...)`` loads the detector once (per process, or per Ray actor) and pins the numeric
libraries to ``threads`` threads, so that N workers on one machine do not oversubscribe its cores.
``decode(shard)`` reads the files (in parallel threads: Pillow releases the GIL while decoding) and
``score(decoded)`` runs the detector on the readable ones, keeps what the table needs from each anomaly
map (peak location and value, optionally a small PNG) and drops the maps: nothing grows with the archive.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from exdd_lab.archive.decode import SCORED, DecodedFile, decode_file
from exdd_lab.archive.store import ROW_SCHEMA, Shard


def pin_threads(threads: int) -> None:
    """Limit torch, its inter-op pool and faiss to ``threads`` threads in this process."""
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


@dataclass
class DecodedShard:
    shard: Shard
    files: list[DecodedFile]


class ShardScorer:
    """Scores shards with the detector saved in ``model_dir``. ``threshold`` (a number or ``None``) makes the
    decision column; ``map_folder`` (with ``map_size``) writes each scored image's map as a uint8 PNG."""

    def __init__(self, model_dir: str | Path, threshold: float | None = None, threads: int | None = None,
                 decode_threads: int = 2, map_folder: str | Path | None = None, map_size: int = 64,
                 runtime: str = "torch") -> None:
        from exdd_lab.export.accelerate import load_for_scoring

        if threads:
            pin_threads(threads)
        # runtime: auto (the fastest installed, the graph cached), torch, onnx or openvino (an export's own, or traced)
        self.detector, self.acceleration = load_for_scoring(model_dir, runtime, threads)
        self.size = self.detector.input_size
        self.threshold = threshold
        self.map_folder = Path(map_folder) if map_folder else None
        self.map_size = map_size
        self._pool = ThreadPoolExecutor(max_workers=max(1, decode_threads), thread_name_prefix="decode")

    def decode(self, shard: Shard) -> DecodedShard:
        return DecodedShard(shard, list(self._pool.map(lambda p: decode_file(p, self.size), shard.paths)))

    def score(self, decoded: DecodedShard) -> pa.Table:
        """One row per file of the shard (:data:`~exdd_lab.archive.store.ROW_SCHEMA`)."""
        shard, files = decoded.shard, decoded.files
        ok = [i for i, f in enumerate(files) if f.status == SCORED]
        rows = {name: [None] * len(files) for name in ROW_SCHEMA.names}
        rows.update(index=shard.indices, shard=[shard.shard] * len(files), path=shard.paths,
                    relative_path=shard.relative_paths, status=[f.status for f in files], error=[f.error for f in files],
                    image_height=[f.height for f in files], image_width=[f.width for f in files],
                    file_size=[f.file_size for f in files], mtime=[f.mtime for f in files])
        if ok:
            prediction = self.detector.predict_images(np.stack([files[i].image for i in ok]), keep_maps=True)
            flat = prediction.maps.reshape(len(ok), -1)
            peaks = flat.argmax(axis=1)
            for j, i in enumerate(ok):
                score = float(prediction.scores[j])
                y, x = divmod(int(peaks[j]), prediction.maps.shape[-1])
                rows["score"][i] = score
                rows["decision"][i] = None if self.threshold is None else int(score >= self.threshold)
                rows["peak_y"][i], rows["peak_x"][i] = y, x
                rows["peak_value"][i], rows["map_min"][i] = float(flat[j, peaks[j]]), float(flat[j].min())
                if self.map_folder is not None:
                    rows["map_file"][i] = self._save_map(prediction.maps[j], shard.indices[i])
            del prediction, flat
        return pa.table(rows, schema=ROW_SCHEMA)

    def __call__(self, shard: Shard) -> pa.Table:
        return self.score(self.decode(shard))

    def _save_map(self, anomaly_map: np.ndarray, index: int) -> str:
        """The map, min-max scaled to uint8 at ``map_size`` (``map_min`` and ``peak_value`` in the row undo the
        scaling), as ``maps/<index // 1000>/<index>.png``; returns the path relative to the output folder."""
        from PIL import Image

        from exdd_lab.storage import atomic_path

        lo, hi = float(anomaly_map.min()), float(anomaly_map.max())
        scaled = np.zeros_like(anomaly_map) if hi <= lo else (anomaly_map - lo) / (hi - lo)
        image = Image.fromarray(np.rint(scaled * 255).astype(np.uint8)).resize((self.map_size, self.map_size), Image.BILINEAR)
        relative = Path("maps") / f"{index // 1000:05d}" / f"{index:08d}.png"
        target = self.map_folder.parent / relative
        with atomic_path(target) as tmp:
            image.save(tmp, format="PNG")
        return relative.as_posix()

    def close(self) -> None:
        self._pool.shutdown(wait=False)


@dataclass(frozen=True)
class ScoringJob:
    """What every worker needs to build its :class:`ShardScorer` (plain values: it travels to Ray actors)."""

    model_dir: str
    threshold: float | None = None
    map_folder: str | None = None
    map_size: int = 64
    threads: int | None = None  # numeric threads per worker (None: the library default, all cores)
    decode_threads: int = 2
    runtime: str = "torch"  # what runs the front-end: auto, torch, onnx or openvino (exdd_lab.export.accelerate)

    def scorer(self) -> ShardScorer:
        return ShardScorer(**asdict(self))
