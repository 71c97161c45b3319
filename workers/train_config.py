"""One validation of a training request, whichever way its settings came in.

``platform train`` takes settings from options (``--epochs``, ``--lr``…) and from a
``--config`` file (``{"training": {...}, "model": {...}, "targets": [...], ...}``). Both end
up in a :class:`workers.training.TrainRequest`, and :func:`check_request` checks that request
before any work: types, ranges and finiteness of the optimisation settings, the architecture
(by building the model once, without data), targets, preset and tag. Each problem is one
line naming where the value came from (``--lr`` or ``--config FILE: training.lr``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from matplat.errors import InputError
from matplat.names import check_tag

#: training key -> (kind, lower bound, bound inclusive?, None allowed?)
_RULES: dict[str, tuple[str, float, bool, bool]] = {
    "epochs": ("int", 1, True, False),
    "batch_size": ("int", 1, True, False),
    "patience": ("int", 1, True, True),
    "eval_batch_size": ("int", 1, True, True),
    "seed": ("int", -math.inf, True, False),
    "lr": ("float", 0.0, False, False),
    "weight_decay": ("float", 0.0, True, False),
    "gamma": ("float", 0.0, False, False),
}
_CHOICES = {"amp": ("auto", "bf16", "off")}
_BOOLS = ("compile", "deterministic", "standardize")


def _label(where: Mapping[str, str], key: str) -> str:
    return where.get(key, f"training.{key}")


def _number(value: Any, kind: str, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{label}: expected a{'n integer' if kind == 'int' else ' number'}, "
                         f"got {value!r}")
    if kind == "int" and not float(value).is_integer():
        raise InputError(f"{label}: expected an integer, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{label}: expected a finite number, got {value!r}")
    return value


def check_training(values: Mapping[str, Any], where: Mapping[str, str] | None = None
                   ) -> dict[str, Any]:
    """The training overrides, checked (integers made ``int``); ``where[key]`` names the
    source of a key in messages (default ``training.<key>``)."""
    from ml.train import TrainConfig

    names = {f for f in TrainConfig.__dataclass_fields__ if f != "device"}
    where = where or {}
    out: dict[str, Any] = {}
    for key, value in values.items():
        label = _label(where, key)
        if key not in names:
            raise InputError(f"{label}: unknown training setting; known: "
                             f"{', '.join(sorted(names))}")
        if key in _RULES:
            kind, low, inclusive, nullable = _RULES[key]
            if value is None and nullable:
                out[key] = None
                continue
            v = _number(value, kind, label)
            if v < low or (v == low and not inclusive):
                bound = f">= {low:g}" if inclusive else f"> {low:g}"
                raise InputError(f"{label}: must be {bound}, got {value!r}")
            out[key] = int(v) if kind == "int" else float(v)
        elif key in _CHOICES:
            if value not in _CHOICES[key]:
                raise InputError(f"{label}: expected one of {', '.join(_CHOICES[key])}, "
                                 f"got {value!r}")
            out[key] = value
        elif key in _BOOLS:
            if not isinstance(value, bool):
                raise InputError(f"{label}: expected true or false, got {value!r}")
            out[key] = value
        elif key == "milestones":
            if not isinstance(value, (list, tuple)):
                raise InputError(f"{label}: expected a list of epochs, got {value!r}")
            out[key] = [int(_number(m, "int", label)) for m in value]
        else:  # pragma: no cover - every TrainConfig field has a rule above
            out[key] = value
    try:
        TrainConfig(**out)
    except (TypeError, ValueError) as e:
        raise InputError(f"training settings: {e}") from None
    return out


def check_request(req: Any, where: Mapping[str, str] | None = None) -> None:
    """Check a :class:`~workers.training.TrainRequest` completely, without touching data.

    ``where`` maps ``training.<key>``, ``model``, ``targets``, ``preset``, ``seed`` and
    ``ensemble`` to how the user gave them (an option or a place in the config file).
    """
    from ml.model import CGNN, PRESETS, preset_config
    from workers.datasets import check_targets

    where = dict(where or {})
    check_tag(req.tag, where.get("tag", "model tag"))
    if not isinstance(req.targets, list) or not all(isinstance(t, str) for t in req.targets):
        raise InputError(f"{where.get('targets', 'targets')}: expected a list of target names, "
                         f"got {req.targets!r}")
    if len(set(req.targets)) != len(req.targets):
        raise InputError(f"{where.get('targets', 'targets')}: a target is named twice "
                         f"({', '.join(req.targets)})")
    check_targets(req.targets)
    if req.preset not in PRESETS:
        raise InputError(f"{where.get('preset', 'preset')}: unknown preset {req.preset!r}; "
                         f"choose one of {', '.join(sorted(PRESETS))}")
    _number(req.seed, "int", where.get("seed", "seed"))
    if _number(req.ensemble, "int", where.get("ensemble", "ensemble")) < 1:
        raise InputError(f"{where.get('ensemble', 'ensemble')}: must be >= 1")
    training_where = {k[len("training."):]: v for k, v in where.items()
                      if k.startswith("training.")}
    req.train_overrides = check_training(req.train_overrides, training_where)
    label = where.get("model", "model")
    if not isinstance(req.model_overrides, dict):
        raise InputError(f"{label}: expected an object of architecture settings")
    fixed = {"n_node_features", "targets"} & set(req.model_overrides)
    if fixed:
        raise InputError(f"{label}: {', '.join(sorted(fixed))} cannot be set (given by the "
                         "data and --targets)")
    try:
        cfg = preset_config(req.preset, n_node_features=89, targets=req.targets,
                            **req.model_overrides)
        CGNN(cfg)  # the architecture builds: a few MB of parameters, no data
    except Exception as e:  # noqa: BLE001 - any failure means the settings are unusable
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{label}: invalid architecture settings ({reason})") from None
