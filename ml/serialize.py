"""Models to bytes and back: ``torch.save`` of the state dict and the JSON config.

The payload is a plain dict of tensors, strings, numbers and lists, so it loads with
``torch.load(weights_only=True)``: no pickled code runs when a stored model is read.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import torch

from ml.model import CGNN, CGNNConfig

__all__ = ["model_from_bytes", "model_to_bytes"]

_FORMAT = "matplat-cgnn-1"


def model_to_bytes(model: CGNN, config: CGNNConfig | None = None, extra: Mapping[str, Any] | None = None) -> bytes:
    """Serialise ``model`` (CPU copy of its state dict), its config and JSON-safe ``extra``."""
    cfg = model.config if config is None else config
    payload = {
        "format": _FORMAT,
        "config": json.dumps(cfg.to_dict()),
        "extra": json.dumps(dict(extra or {})),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def model_from_bytes(data: bytes, map_location: str | torch.device = "cpu") -> tuple[CGNN, CGNNConfig, dict[str, Any]]:
    """Inverse of :func:`model_to_bytes`: ``(model in eval mode, config, extra)``."""
    payload = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError("not a serialised matplat CGNN")
    config = CGNNConfig.from_dict(json.loads(payload["config"]))
    model = CGNN(config)
    model.load_state_dict(payload["state_dict"])
    model.to(map_location).eval()
    return model, config, json.loads(payload["extra"])
