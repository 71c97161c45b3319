"""GraphSet CSR storage, persistence, subsets and batch assembly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.data import GraphSet, random_graph_set


def tiny() -> GraphSet:
    # graph 0: 2 atoms, edges given out of CSR order; graph 1: 1 atom; graph 2: 3 atoms
    return GraphSet.from_lists(
        ids=[10, 11, 12],
        species_list=[[3, 1], [0], [2, 2, 5]],
        src_list=[[1, 0, 0], [0, 0], [2, 0, 1, 0]],
        dst_list=[[0, 1, 0], [0, 0], [0, 1, 2, 2]],
        targets=[[1.0, np.nan], [2.0, 0.5], [np.nan, np.nan]],
        target_names=["a", "b"],
    )


def test_from_lists_builds_csr_arrays_with_documented_dtypes() -> None:
    gs = tiny()
    assert gs.species.dtype == np.int16 and gs.edge_src.dtype == np.int32 and gs.edge_dst.dtype == np.int32
    assert gs.node_offsets.dtype == np.int64 and gs.edge_offsets.dtype == np.int64
    assert gs.targets.dtype == np.float32 and gs.ids.dtype == np.int64
    assert gs.node_offsets.tolist() == [0, 2, 3, 6]
    assert gs.edge_offsets.tolist() == [0, 3, 5, 9]
    # stable sort by source within each graph
    assert gs.edge_src.tolist() == [0, 0, 1, 0, 0, 0, 0, 1, 2]
    assert gs.edge_dst.tolist() == [1, 0, 0, 0, 0, 1, 2, 2, 0]
    assert gs.target_names == ("a", "b")
    assert len(gs) == 3 and gs.node_counts.tolist() == [2, 1, 3]


def test_batch_offsets_indices_per_graph() -> None:
    gs = tiny()
    b = gs.batch([2, 0])
    assert b.species.tolist() == [2, 2, 5, 3, 1]
    assert b.graph_index.tolist() == [0, 0, 0, 1, 1]
    assert b.node_counts.tolist() == [3, 2]
    assert b.edge_src.tolist() == [0, 0, 1, 2, 3, 3, 4]
    assert b.edge_dst.tolist() == [1, 2, 2, 0, 4, 3, 3]
    assert b.index.tolist() == [2, 0]
    torch.testing.assert_close(b.targets, torch.tensor([[np.nan, np.nan], [1.0, np.nan]]), equal_nan=True)
    assert all(t.dtype == torch.long for t in (b.species, b.edge_src, b.edge_dst, b.graph_index, b.node_counts))


def test_vectorised_batches_equal_a_per_graph_loop() -> None:
    gs = random_graph_set(50, seed=4, n_species=9)
    idx = np.random.default_rng(0).permutation(50)[:17]
    b = gs.batch(idx)
    species, src, dst, offset = [], [], [], 0
    for g in idx:
        a0, a1 = gs.node_offsets[g], gs.node_offsets[g + 1]
        e0, e1 = gs.edge_offsets[g], gs.edge_offsets[g + 1]
        species += gs.species[a0:a1].tolist()
        src += (gs.edge_src[e0:e1] + offset).tolist()
        dst += (gs.edge_dst[e0:e1] + offset).tolist()
        offset += a1 - a0
    assert b.species.tolist() == species and b.edge_src.tolist() == src and b.edge_dst.tolist() == dst
    assert bool((b.edge_src[1:] >= b.edge_src[:-1]).all())  # CSR-sorted across the batch


@pytest.mark.parametrize("shuffle", [False, True])
def test_iter_batches_covers_every_graph_once(shuffle: bool) -> None:
    gs = random_graph_set(23, seed=1, n_species=5)
    batches = list(gs.iter_batches(5, shuffle=shuffle, seed=3))
    assert [b.num_graphs for b in batches] == [5, 5, 5, 5, 3]
    seen = torch.cat([b.index for b in batches]).tolist()
    assert sorted(seen) == list(range(23))
    assert (seen == list(range(23))) is not shuffle
    again = [b.index.tolist() for b in gs.iter_batches(5, shuffle=shuffle, seed=3)]
    assert again == [b.index.tolist() for b in batches]
    assert [b.num_graphs for b in gs.iter_batches(5, drop_last=True)] == [5] * 4
    assert gs.num_batches(5) == 5 and gs.num_batches(5, drop_last=True) == 4
    last = list(gs.iter_batches(11))[-1]
    assert last.num_graphs == 1


def test_subset_is_contiguous_and_equal(tmp_path) -> None:
    gs = tiny()
    sub = gs.subset([2, 1])
    assert sub.ids.tolist() == [12, 11]
    assert sub.node_offsets.tolist() == [0, 3, 4]
    assert sub.edge_src.tolist() == [0, 0, 1, 2, 0, 0]
    b1, b2 = gs.batch([2, 1]), sub.batch([0, 1])
    assert torch.equal(b1.edge_dst, b2.edge_dst) and torch.equal(b1.species, b2.species)


@pytest.mark.parametrize("mmap", [True, False])
def test_save_and_load_round_trip(tmp_path, mmap: bool) -> None:
    gs = random_graph_set(40, seed=2, n_species=7).with_targets(np.arange(80.0).reshape(40, 2), ["x", "y"])
    gs.save(tmp_path / "set")
    again = GraphSet.load(tmp_path / "set", mmap=mmap)
    assert isinstance(again.species, np.memmap) is mmap
    assert again.target_names == ("x", "y")
    for name in ("species", "node_offsets", "edge_src", "edge_dst", "edge_offsets", "targets", "ids"):
        a, b = getattr(gs, name), getattr(again, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    b0, b1 = gs.batch([3, 1, 39]), again.batch([3, 1, 39])
    assert torch.equal(b0.edge_src, b1.edge_src) and torch.equal(b0.targets, b1.targets)


@pytest.mark.parametrize(
    "bad",
    [
        dict(src_list=[[0, 2]], dst_list=[[0, 0]]),  # local index out of range
        dict(src_list=[[0]], dst_list=[[0, 1]]),  # ragged
    ],
)
def test_invalid_lists_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        GraphSet.from_lists([1], [[0, 1]], targets=None, **bad)


def test_unsorted_raw_arrays_are_rejected() -> None:
    with pytest.raises(ValueError, match="CSR"):
        GraphSet([0, 1], [0, 2], [1, 0], [0, 1], [0, 2], np.zeros((1, 0)), [5])


def test_bytes_per_graph_fit_oqmd_in_well_under_a_gigabyte() -> None:
    gs = random_graph_set(2000, seed=0, median_atoms=6.0)  # mean ~8 atoms, ~12 edges per atom
    gs = gs.with_targets(np.zeros((2000, 4)), ["a", "b", "c", "d"])
    per_graph = gs.nbytes / len(gs)
    assert 7.0 < gs.node_counts.mean() < 9.0
    assert per_graph < 1000
    assert per_graph * 560_000 < 0.6e9
