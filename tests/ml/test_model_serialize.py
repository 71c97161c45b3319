"""Model serialisation round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.data import random_graph_set
from ml.model import CGNN, preset_config
from ml.serialize import model_from_bytes, model_to_bytes
from ml.train import predict


@pytest.mark.parametrize("preset", ["no-edgenet", "complete"])
def test_round_trip_gives_identical_predictions(preset: str) -> None:
    config = preset_config(preset, n_node_features=11, targets=["formation_energy", "band_gap"])
    torch.manual_seed(0)
    model = CGNN(config)
    model.set_target_stats([0.5, 1.0], [2.0, 0.7])
    gs = random_graph_set(30, seed=1, n_species=11)
    model.train()
    predict(model, gs)  # eval mode inside: running statistics untouched
    for batch in gs.iter_batches(10):  # move BN running statistics away from their initial values
        model(batch)
    blob = model_to_bytes(model, config, {"model_tag": "v3", "recipe": {"name": "cgnn", "version": 1}})
    again, config2, extra = model_from_bytes(blob)
    assert config2 == config and extra == {"model_tag": "v3", "recipe": {"name": "cgnn", "version": 1}}
    assert not again.training
    assert np.array_equal(predict(model, gs), predict(again, gs))


def test_garbage_is_rejected() -> None:
    import io

    buf = io.BytesIO()
    torch.save({"format": "other"}, buf)
    with pytest.raises(ValueError):
        model_from_bytes(buf.getvalue())
