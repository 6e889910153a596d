"""Check a generated Axolotl config against Axolotl's own pydantic model, key by key.

Axolotl's ``AxolotlInputConfig`` silently drops keys it does not know, so a typo under the
recipe's ``axolotl:`` section (or a key renamed between Axolotl releases) would vanish without a
word. Every key is looked up in the model's fields (nested models included), then Axolotl's own
validation runs on the whole config.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Mapping
from typing import Any

from runner.registry import did_you_mean

# Dataset lists hold a union of dataset models; the runner only emits supervised chat datasets.
_DATASET_LISTS = ("datasets", "test_datasets")


def _field_names(model: type) -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        names.add(name)
        if info.alias:
            names.add(info.alias)
        alias = info.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        for choice in getattr(alias, "choices", ()) or ():
            if isinstance(choice, str):
                names.add(choice)
    return names


def _nested_model(annotation: Any) -> type | None:
    """The single pydantic model a field holds, when its value is a mapping of known keys."""
    from pydantic import BaseModel

    args = [annotation]
    models, free_form = [], False
    while args:
        arg = args.pop()
        origin = typing.get_origin(arg)
        if origin in (typing.Union, types.UnionType) or origin is typing.Annotated:
            args.extend(
                typing.get_args(arg)[:1] if origin is typing.Annotated else typing.get_args(arg)
            )
        elif isinstance(arg, type) and issubclass(arg, BaseModel):
            models.append(arg)
        elif arg is dict or origin is dict or arg is Any:
            free_form = True
    return models[0] if len(models) == 1 and not free_form else None


def _check_mapping(data: Mapping[str, Any], model: type, where: str, version: str) -> list[str]:
    problems = []
    known = _field_names(model)
    for key, value in data.items():
        path = f"{where}{key}"
        if key not in known:
            problems.append(
                f"{path}: not a key Axolotl {version} knows{did_you_mean(key, sorted(known))} "
                "(Axolotl would silently ignore it)"
            )
            continue
        info = model.model_fields.get(key)
        if info is None or not isinstance(value, Mapping):
            continue
        nested = _nested_model(info.annotation)
        if nested is not None:
            problems.extend(_check_mapping(value, nested, f"{path}.", version))
    return problems


def check_axolotl_keys(cfg: Mapping[str, Any]) -> list[str]:
    """Every problem Axolotl's config model finds in ``cfg``: unknown keys, then its validation.

    Returns messages naming the key path; an empty list means Axolotl accepts every key.
    Imports Axolotl (several seconds), so it runs in the train stage and in tests, not in plan.
    """
    import axolotl
    from axolotl.utils.schemas.config import AxolotlInputConfig
    from axolotl.utils.schemas.datasets import SFTDataset

    version = axolotl.__version__
    top = {k: v for k, v in cfg.items() if k not in _DATASET_LISTS}
    problems = _check_mapping(top, AxolotlInputConfig, "", version)
    for list_key in _DATASET_LISTS:
        for index, entry in enumerate(cfg.get(list_key) or ()):
            problems.extend(_check_mapping(entry, SFTDataset, f"{list_key}[{index}].", version))
    if problems:
        return problems
    return _validate(cfg)


def _validate(cfg: Mapping[str, Any]) -> list[str]:
    """Axolotl's own validation of the whole config (cross-key rules, types)."""
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault
    from pydantic import ValidationError

    try:
        validate_config(DictDefault(copy.deepcopy(dict(cfg))))
    except ValidationError as exc:
        return [
            f"{'.'.join(str(p) for p in err['loc']) or '(config)'}: {err['msg']}"
            for err in exc.errors()
        ]
    except (ValueError, TypeError) as exc:
        return [f"(config): {exc}"]
    return []
