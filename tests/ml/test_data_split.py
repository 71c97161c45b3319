"""Grouped train/val/test split by reduced formula."""

from __future__ import annotations

import numpy as np
import pytest

from ml.split import grouped_split, is_unary


def formulas(n_formulas: int = 2000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    names = np.array([f"Li{k}O{k % 7 + 1}" for k in range(n_formulas)] + ["Fe", "O2", "Cu"])
    counts = rng.integers(1, 6, names.size)  # polymorphs per formula
    out = np.repeat(names, counts)
    return out[rng.permutation(out.size)]


def test_formulas_stay_together_and_fractions_are_80_10_10() -> None:
    f = formulas()
    split = grouped_split(f)
    assert split.shape == f.shape and set(split.tolist()) == {"train", "val", "test"}
    for name in np.unique(f):
        assert len(set(split[f == name].tolist())) == 1
    frac = {s: float(np.mean(split == s)) for s in ("train", "val", "test")}
    assert frac["train"] == pytest.approx(0.8, abs=0.02)
    assert frac["val"] == pytest.approx(0.1, abs=0.015)
    assert frac["test"] == pytest.approx(0.1, abs=0.015)


def test_elements_go_to_training_and_the_split_is_seeded() -> None:
    f = formulas()
    split = grouped_split(f, seed=12345)
    assert set(split[np.isin(f, ["Fe", "O2", "Cu"])].tolist()) == {"train"}
    assert np.array_equal(split, grouped_split(f, seed=12345))
    assert not np.array_equal(split, grouped_split(f, seed=1))


def test_reference_rule_on_a_small_example() -> None:
    # 10 compound formulas in order of first appearance, shuffled by RandomState(12345)
    f = np.array([f"A{k}B" for k in range(10)] + ["C"])
    shuffled = np.array([f"A{k}B" for k in range(10)])
    np.random.RandomState(12345).shuffle(shuffled)
    split = dict(zip(f.tolist(), grouped_split(f).tolist(), strict=True))
    assert split[shuffled[0]] == "test" and split[shuffled[1]] == "val"
    assert [split[x] for x in shuffled[2:]] == ["train"] * 8
    assert split["C"] == "train"


def test_invalid_fractions_and_unary_detection() -> None:
    with pytest.raises(ValueError):
        grouped_split(["A"], fractions=(0.5, 0.2, 0.2))
    assert is_unary("Fe") and is_unary("O2") and not is_unary("FeO") and not is_unary("Fe2O3")
    assert grouped_split([]).shape == (0,)
