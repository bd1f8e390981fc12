import json

import numpy as np
import pytest
import torch

from exdd_lab.bank.coreset import coverage_radius, coreset_size, greedy_coreset
from exdd_lab.bank.memory import BankError, MemoryBank


def clustered(n=3000, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(30, dim, generator=g) * 5
    return centres[torch.randint(30, (n,), generator=g)] + torch.randn(n, dim, generator=g) * torch.rand(n, 1, generator=g)


def test_two_stage_greedy_covers_about_as_well_as_the_textbook_loop():
    x = clustered(6000, 16)
    exact = greedy_coreset(x, 120, projection_dim=None, seed=3, method="exact")
    two_stage = greedy_coreset(x, 120, projection_dim=None, seed=3, method="two-stage", chunk_size=1000)
    assert len(set(two_stage.tolist())) == 120, "no item is chosen twice"
    assert coverage_radius(x, two_stage) <= 1.5 * coverage_radius(x, exact)
    assert np.array_equal(two_stage, greedy_coreset(x, 120, projection_dim=None, seed=3, chunk_size=1000))
    # fewer than two chunks' worth of points: both methods are the same loop
    small = x[:1500]
    assert np.array_equal(greedy_coreset(small, 50, None, 1, "two-stage", chunk_size=1000),
                          greedy_coreset(small, 50, None, 1, "exact"))
    with pytest.raises(ValueError, match="method"):
        greedy_coreset(x, 5, method="random")


def test_streaming_coreset_splits_big_chunks_into_cache_sized_pieces():
    from exdd_lab.bank.coreset import StreamingCoreset

    x = clustered(6000, 16, seed=2)
    whole = StreamingCoreset(len(x), 90, 16, projection_dim=None, seed=4, chunk_patches=1000)
    whole.add(x[:3000])  # one group of "images" arrives, the first stage runs on 1000-patch pieces
    whole.add(x[3000:])
    pieces = StreamingCoreset(len(x), 90, 16, projection_dim=None, seed=4, chunk_patches=None)
    for start in range(0, len(x), 1000):
        pieces.add(x[start : start + 1000])
    a, b = whole.finish_indices(), pieces.finish_indices()
    assert np.array_equal(a, b), "splitting inside add() is the same as feeding the pieces one by one"
    assert len(set(a.tolist())) == 90
    one_piece = StreamingCoreset(len(x), 90, 16, projection_dim=None, seed=4, chunk_patches=None)
    one_piece.add(x[:3000])
    one_piece.add(x[3000:])
    assert not np.array_equal(one_piece.finish_indices(), a), "the piece size changes the first stage"


def test_greedy_is_farthest_point_and_seeded():
    x = torch.tensor([[0.0], [1.0], [10.0], [4.0], [9.0]])
    chosen = greedy_coreset(x, 3, projection_dim=None, seed=0, method="exact")
    first = chosen[0]
    # each next pick is the point farthest from all picks so far
    picked = [first]
    for step in range(1, 3):
        d = torch.cdist(x, x[picked]).min(1).values
        assert chosen[step] == int(d.argmax())
        picked.append(chosen[step])
    assert np.array_equal(chosen, greedy_coreset(x, 3, projection_dim=None, seed=0, method="exact"))


def test_greedy_covers_better_than_random():
    x = clustered(4000, 8, seed=1)
    k = 60
    greedy = greedy_coreset(x, k, projection_dim=None, seed=0)
    rand = np.random.default_rng(0).choice(len(x), k, replace=False)
    assert coverage_radius(x, greedy) < coverage_radius(x, rand)


def test_coreset_size_and_bad_ratio():
    assert coreset_size(409_600, 0.01) == 4096 and coreset_size(3, 0.01) == 1
    with pytest.raises(ValueError):
        coreset_size(10, 0.0)


def test_bank_add_search_subsample_and_errors():
    bank = MemoryBank(16, {"backbone": "b"})
    with pytest.raises(BankError, match="empty"):
        bank.search(torch.zeros(1, 16))
    x = clustered(2000, 16)
    bank.add(x[:1000]).add(x[1000:].reshape(10, 10, 10, 16))  # flat and grid input
    assert len(bank) == 2000 and bank.size_mb == pytest.approx(2000 * 16 * 4 / 2**20)
    d, i = bank.search(x[:5], k=2)
    assert i[:, 0].tolist() == [0, 1, 2, 3, 4] and np.allclose(d[:, 0], 0, atol=1e-3)
    with pytest.raises(BankError, match="16-dimensional"):
        bank.search(torch.zeros(3, 8))
    bank.subsample(0.05, seed=0)
    assert len(bank) == 100 and bank.metadata["coreset"]["ratio"] == 0.05


def test_bank_save_load_round_trip_and_mismatch(tmp_path):
    bank = MemoryBank(4, {"backbone": "tf_efficientnet_lite0", "image_size": 256}).add(torch.randn(50, 4))
    bank.save(tmp_path / "bank")
    again = MemoryBank.load(tmp_path / "bank", expect={"backbone": "tf_efficientnet_lite0"})
    assert torch.equal(again.items, bank.items) and again.metadata == bank.metadata
    with pytest.raises(BankError, match="built with backbone='tf_efficientnet_lite0', not 'resnet18'"):
        MemoryBank.load(tmp_path / "bank", expect={"backbone": "resnet18"})
    with pytest.raises(BankError, match="no saved memory bank"):
        MemoryBank.load(tmp_path / "absent")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("name", ["ivf", "hnsw"])
def test_approximate_index_finds_exact_neighbours_mostly_and_never_closer(name):
    x = clustered(3000, 16, seed=2)
    exact, approx = MemoryBank(16, index="flat").add(x), MemoryBank(16, index=name).add(x)
    q = x[:200] + 0.01
    (d_exact, i_exact), (d_approx, i_approx) = exact.search(q, k=3), approx.search(q, k=3)
    assert (i_exact[:, 0] == i_approx[:, 0]).mean() > 0.9
    assert (d_approx >= d_exact - 1e-4).all()  # a missed neighbour can only make a distance larger
    assert approx.index_in_use == name and not approx.exact and exact.exact
    assert exact.use_index(name).index_in_use == name and np.array_equal(exact.search(q, k=3)[1], i_approx)
    with pytest.raises(BankError, match="unknown bank index 'kdtree'"):
        MemoryBank(4, index="kdtree")


def test_auto_index_is_exact_up_to_the_limit_and_approximate_above(monkeypatch):
    from exdd_lab.bank import index as bank_index

    x = clustered(2000, 8, seed=3)
    assert MemoryBank(8).add(x).index_in_use == "flat"  # the default: a bank this size is searched exactly
    monkeypatch.setattr(bank_index, "AUTO_EXACT_LIMIT", 1000)
    big = MemoryBank(8).add(x)
    assert big.index_in_use == "ivf" and big.index().ntotal == 2000
    assert MemoryBank(8).add(x[:1000]).index_in_use == "flat"


def test_a_saved_approximate_index_answers_as_the_fitted_one(tmp_path):
    x = clustered(4000, 16, seed=5)
    bank = MemoryBank(16, {"backbone": "b"}, index="ivf", seed=3).add(x)
    q = x[::7] + 0.05
    before = bank.search(q, k=2)
    bank.save(tmp_path / "bank")
    again = MemoryBank.load(tmp_path / "bank")
    assert again._index is not None and again.index_in_use == "ivf" and again.index_seed == 3
    after = again.search(q, k=2)
    assert np.array_equal(before[1], after[1]) and np.allclose(before[0], after[0])
    # an index saved with other items is refused, naming the mix-up
    from exdd_lab.bank.index import BankIndexError, index_from_bytes, index_to_bytes

    other = MemoryBank(16, index="ivf").add(x[:3000])
    with pytest.raises(BankIndexError, match="mixed from two saves"):
        index_from_bytes(index_to_bytes(other.index()), "ivf", len(again), again.dim)


def test_the_same_items_and_seed_build_the_same_approximate_index():
    x = clustered(3000, 16, seed=6)
    q = x[::5] + 0.02
    first = MemoryBank(16, index="ivf", seed=1).add(x).search(q, k=4)
    second = MemoryBank(16, index="ivf", seed=1).add(x).search(q, k=4)
    assert np.array_equal(first[1], second[1])
    graph_a, graph_b = MemoryBank(16, index="hnsw").add(x).search(q, k=4), MemoryBank(16, index="hnsw").add(x).search(q, k=4)
    assert np.array_equal(graph_a[1], graph_b[1])


def test_streaming_coreset_matches_the_requested_size_and_covers():
    from exdd_lab.bank.coreset import StreamingCoreset

    x = clustered(5000, 16, seed=4)
    stream = StreamingCoreset(len(x), 100, 16, projection_dim=None, seed=0)
    for part in torch.split(x, 700):
        stream.add(part)
    chosen = stream.finish()
    assert chosen.shape == (100, 16)
    rows = {tuple(r) for r in x.numpy().round(5).tolist()}
    assert all(tuple(r) in rows for r in chosen.numpy().round(5).tolist()), "the coreset holds original items"
    rand = x[np.random.default_rng(0).choice(len(x), 100, replace=False)]
    from exdd_lab.components.neighbours import knn

    assert knn(x, chosen)[0].max() < knn(x, rand)[0].max()

def test_streaming_coreset_skips_a_too_costly_final_pass(monkeypatch):
    import exdd_lab.bank.coreset as cs

    x = clustered(5000, 16, seed=5)
    monkeypatch.setattr(cs, "FINAL_STAGE_BUDGET", 1.0)  # any final pass is "too costly"
    stream = cs.StreamingCoreset(len(x), 500, 16, projection_dim=None, seed=0)
    assert not stream.final_pass and stream.keep_share == pytest.approx(0.1)
    for part in torch.split(x, 1000):
        stream.add(part)
    chosen = stream.finish()
    assert chosen.shape == (500, 16), "chunks of 1000 each give exactly 100"


def test_exact_coreset_keeps_features_on_disk_and_removes_them(tmp_path, monkeypatch):
    from exdd_lab.bank.coreset import ExactCoreset

    monkeypatch.setenv("EXDD_LAB_CACHE", str(tmp_path))
    x = clustered(3000, 16, seed=8)
    chunks = torch.tensor_split(x, 5)
    items, keep = ExactCoreset(None, seed=2).run(iter(chunks), len(x), 60)
    assert np.array_equal(keep, np.sort(greedy_coreset(x, 60, None, 2, method="exact")))
    assert torch.equal(items, x[torch.from_numpy(keep)])
    assert list((tmp_path / "scratch").iterdir()) == []  # the disk-backed array is gone
    with pytest.raises(ValueError, match="promised 4000 features and given 3000"):
        ExactCoreset(None).run(iter(chunks), 4000, 60)
    assert list((tmp_path / "scratch").iterdir()) == []  # also after a failure


@pytest.mark.parametrize("name", ["ivf", "hnsw"])
def test_refining_makes_each_images_largest_distance_exact(name):
    from exdd_lab.bank.index import HnswIndex, IvfIndex

    x = clustered(6000, 16, seed=9)
    exact = MemoryBank(16, index="flat").add(x[1000:])
    approx = MemoryBank(16, index=name).add(x[1000:])
    # a deliberately poor approximate index (one list probed, a narrow beam) so that it misses often
    approx._index = (IvfIndex(nprobe=1) if name == "ivf" else HnswIndex(links=4, ef_construction=8, ef_search=1)).build(
        x[1000:].numpy())
    approx._index_built = name
    queries = (x[:1000] * 1.3).reshape(20, 50, 16)  # 20 "images" of 50 patches, some far from the bank
    true_d, _ = exact.search(queries.reshape(-1, 16))
    true_max = true_d[:, 0].reshape(20, 50).max(1)
    d, i = approx.search(queries.reshape(-1, 16))
    d, i = d[:, 0].reshape(20, 50).copy(), i[:, 0].reshape(20, 50).copy()
    assert (d >= true_d[:, 0].reshape(20, 50) - 1e-4).all() and not np.allclose(d.max(1), true_max)  # misses happen
    searched = approx.refine_worst(queries, d, i, start=2)
    assert np.allclose(d.max(1), true_max, atol=1e-4)  # every image's largest distance is now the exact one
    assert 0 < searched < 1000  # fewer than all patches were searched again
    assert exact.refine_worst(queries, d.copy(), i.copy()) == 0  # nothing to do for an exact index


def test_a_grouped_final_pass_keeps_k_and_covers_better_than_no_final_pass(monkeypatch):
    import exdd_lab.bank.coreset as cs

    x = clustered(20000, 16, seed=11)
    monkeypatch.setattr(cs, "FINAL_STAGE_BUDGET", 1.0)  # a global final pass is never affordable here
    picked = {}
    for groups in (None, 2000):
        stream = cs.StreamingCoreset(len(x), 500, 16, projection_dim=None, seed=0, group_candidates=groups)
        assert stream.grouped == bool(groups) and stream.final_pass == bool(groups)
        for part in torch.split(x, 1000):
            stream.add(part)
        picked[groups] = stream.finish_indices()
        assert len(picked[groups]) == 500 and len(np.unique(picked[groups])) == 500
    assert coverage_radius(x, picked[2000]) < 0.8 * coverage_radius(x, picked[None])
