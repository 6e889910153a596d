"""`eval.group_by`: every pass rate broken down by the value of one metadata key.

ZigNet asks for "version-specific accuracy > 90 %": one overall pass rate can hide a version the
model fails. With ``group_by: meta.version`` the report shows each version's pass rates and
``eval.gate.min_pass_rate_per_group`` holds every group to the bar.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

MISSING = "(missing)"


def group_key(group_by: str) -> str:
    """The metadata key ``group_by`` names (``meta.version`` and ``version`` both mean
    ``version``)."""
    return group_by.removeprefix("meta.")


def group_of(meta: Mapping[str, Any], key: str) -> str:
    """The group of one example: its value of ``key`` (dotted for nested metadata) as text."""
    node: Any = meta
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return MISSING
        node = node[part]
    return MISSING if node is None else str(node)


def by_group(samples: Sequence[Any], results: Sequence[Any], key: str) -> dict[str, list[int]]:
    """Indexes of the samples of each group, groups sorted by name."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, sample in enumerate(samples):
        groups[group_of(sample.meta, key)].append(index)
    return dict(sorted(groups.items()))


def group_rates(
    samples: Sequence[Any], results: Sequence[Any], labels: Sequence[str], key: str
) -> dict[str, dict[str, Any]]:
    """Per group: ``pass_rates`` of its samples (overall, per check, count)."""
    from runner.eval.score import pass_rates

    return {
        group: pass_rates([results[i] for i in indexes], labels)
        for group, indexes in by_group(samples, results, key).items()
    }
