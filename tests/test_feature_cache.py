import shutil

import numpy as np
import torch
from PIL import Image

from exdd_lab.features import FeatureCache, FeatureConfig, PatchFeatureExtractor, extract_features


def tiny_extractor(**kw):
    return PatchFeatureExtractor(FeatureConfig("test_efficientnet", "random", (1, 2), 64, **kw))


def images(tmp_path, n=5):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (70, 60, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_second_run_reuses_the_cache_and_gives_identical_features(tmp_path, monkeypatch):
    monkeypatch.setenv("EXDD_LAB_CACHE", str(tmp_path / "cache"))
    paths = images(tmp_path)
    fx = tiny_extractor()
    first = extract_features(fx, paths, batch_size=2)
    store = FeatureCache(fx.config, fx.weights_source)
    assert len(list(store.folder.glob("*.safetensors"))) == 5 and (store.folder / "config.json").is_file()
    second_store = FeatureCache(fx.config, fx.weights_source)
    from exdd_lab.features import extract_with_cache

    second = extract_with_cache(fx, paths, second_store, batch_size=2)
    assert second_store.hits == 5 and second_store.misses == 0
    assert torch.equal(first, second)
    assert torch.equal(first, extract_features(fx, paths, cache=False, batch_size=2))
    # another batch size may change the last float bits (CPU kernels differ by batch), nothing more
    assert torch.allclose(first, extract_features(fx, paths, cache=False, batch_size=5), atol=1e-5)
    assert not list(store.folder.glob(".*")), "no temporary files left behind"


def test_key_is_image_content_not_path(tmp_path, monkeypatch):
    monkeypatch.setenv("EXDD_LAB_CACHE", str(tmp_path / "cache"))
    paths = images(tmp_path, 2)
    fx = tiny_extractor()
    extract_features(fx, paths)
    copy = tmp_path / "renamed.png"
    shutil.copy(paths[0], copy)
    from exdd_lab.features import extract_with_cache

    store = FeatureCache(fx.config, fx.weights_source)
    extract_with_cache(fx, [copy], store)
    assert store.hits == 1
    Image.fromarray(np.zeros((70, 60, 3), np.uint8)).save(copy)  # edited content: a miss
    store = FeatureCache(fx.config, fx.weights_source)
    extract_with_cache(fx, [copy], store)
    assert store.misses == 1


def test_configuration_changes_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EXDD_LAB_CACHE", str(tmp_path / "cache"))
    a, b = tiny_extractor(), tiny_extractor(projection_dim=8)
    assert FeatureCache(a.config, a.weights_source).folder != FeatureCache(b.config, b.weights_source).folder
    c = PatchFeatureExtractor(FeatureConfig("test_efficientnet", "random", (1, 2), 96))
    assert FeatureCache(a.config, a.weights_source).folder != FeatureCache(c.config, c.weights_source).folder


def test_damaged_cache_entry_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv("EXDD_LAB_CACHE", str(tmp_path / "cache"))
    paths = images(tmp_path, 1)
    fx = tiny_extractor()
    good = extract_features(fx, paths)
    store = FeatureCache(fx.config, fx.weights_source)
    entry = next(store.folder.glob("*.safetensors"))
    entry.write_bytes(entry.read_bytes()[:50])
    assert torch.equal(extract_features(fx, paths), good)
