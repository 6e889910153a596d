"""Per-source caps, balance by a metadata field, the grouped split and source weights.

Every choice here is a pure function of the examples' keys and a seed, so the same inputs give
the same dataset on any machine, and adding an unrelated file does not reshuffle other groups.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from runner.recipe.fields import Section, Seed

SPLITS = ("train", "val", "test")


class SplitSection(Section):
    """`split:`: a deterministic grouped train/val/test split."""

    train: float = Field(0.9, ge=0, le=1)
    """Share of the examples trained on."""
    val: float = Field(0.05, ge=0, le=1)
    """Share held out for the validation loss during training."""
    test: float = Field(0.05, ge=0, le=1)
    """Share held out for evaluation and the smoke test."""
    seed: Seed = 42
    group_by: str = "source_file"
    """Metadata field that keeps related examples in one split; `none` puts every example in
    a group of its own."""
    decontaminate: bool = True
    """Drop train examples that are near duplicates of val/test ones."""
    decontaminate_threshold: float = Field(0.8, ge=0, le=1)
    """Jaccard similarity at which a train example counts as a copy of a held-out one."""

    def fractions(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in SPLITS}


class BalanceSection(Section):
    """`balance:`: balance the dataset by a metadata field."""

    by: str
    """Metadata field to balance on (e.g. difficulty, version)."""
    max_per_value: int | None = Field(None, ge=1)
    """At most this many examples per value."""
    mode: Literal["equal", "cap"] = "cap"
    """`equal` downsamples every value to the rarest one's count; `cap` only applies
    max_per_value."""
    seed: Seed = 42


@dataclass
class Kept:
    """What the main process remembers about an example written to the spool."""

    index: int
    id: str
    source: int
    group: str
    value: Any  # the balance field's value (None when not balancing or missing)
    tokens: int | None = None  # chat-template tokens, when counted (see build.token_sample)
    split: str = ""
    copies: int = 1
    dropped: tuple[str, str, str] | None = None  # (stage, reason, detail)
    text_hash: bytes | None = None  # leak check's hash, when exact dedupe's key is it
    task: int = -1  # the ledger entry of the file it came from (``accounting.Ledger``)
    fim: bool = False  # an infill row (``meta.format: fim``), written to ``<split>.fim.jsonl``


def rank(seed: int, key: str) -> int:
    """A deterministic pseudo-random rank of ``key`` under ``seed``."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big")


def cap_sources(kept: list[Kept], caps: dict[int, int], seed: int) -> Counter[int]:
    """Apply per-source ``max_examples``: keep a seeded sample of that size. Returns drops."""
    dropped: Counter[int] = Counter()
    by_source: dict[int, list[Kept]] = defaultdict(list)
    for item in kept:
        if item.dropped is None:
            by_source[item.source].append(item)
    for source, items in by_source.items():
        cap = caps.get(source)
        if cap is None or len(items) <= cap:
            continue
        for item in sorted(items, key=lambda k: rank(seed, k.id))[cap:]:
            item.dropped = ("balance", "over source max_examples", f"max_examples is {cap}")
            dropped[source] += 1
    return dropped


def balance(
    kept: list[Kept], field: str, mode: str, max_per_value: int | None, seed: int
) -> dict[str, Any]:
    """Downsample so each value of ``field`` has at most the target count.

    ``equal``: every value down to the rarest value's count (and ``max_per_value``);
    ``cap``: only ``max_per_value``. Examples without the field form their own value.
    """
    by_value: dict[str, list[Kept]] = defaultdict(list)
    for item in kept:
        if item.dropped is None:
            by_value[_label(item.value)].append(item)
    before = {value: len(items) for value, items in sorted(by_value.items())}
    target = None
    if mode == "equal" and by_value:
        target = min(before.values())
    if max_per_value is not None:
        target = max_per_value if target is None else min(target, max_per_value)
    if target is not None:
        for value, items in by_value.items():
            for item in sorted(items, key=lambda k: rank(seed, k.id))[target:]:
                item.dropped = (
                    "balance",
                    f"over target for {field}",
                    f"{field}={value}: {len(items)} > {target}",
                )
    after = {
        value: min(count, target) if target is not None else count
        for value, count in before.items()
    }
    return {"by": field, "mode": mode, "target": target, "before": before, "after": after}


def _label(value: Any) -> str:
    return "(missing)" if value is None else str(value)


def assign_splits(kept: list[Kept], fractions: dict[str, float], seed: int) -> dict[str, Any]:
    """Assign whole groups to splits: groups in seeded order, each to the split furthest below
    its target share; then no split asked for is left empty while another has groups to spare.
    Deterministic; a group never straddles splits."""
    groups: dict[str, list[Kept]] = defaultdict(list)
    for item in kept:
        if item.dropped is None:
            groups[item.group].append(item)
    total = sum(len(items) for items in groups.values())
    wanted = {name: fractions.get(name, 0.0) for name in SPLITS}
    share = sum(wanted.values()) or 1.0
    targets = {name: total * wanted[name] / share for name in SPLITS}
    counts = dict.fromkeys(SPLITS, 0)
    group_counts = dict.fromkeys(SPLITS, 0)
    for group in sorted(groups, key=lambda g: rank(seed, g)):
        items = groups[group]
        # Largest deficit first; ties go to train, then val, then test.
        name = max(
            SPLITS,
            key=lambda s: (
                (targets[s] - counts[s], -SPLITS.index(s)) if wanted[s] > 0 else (float("-inf"), 0)
            ),
        )
        for item in items:
            item.split = name
        counts[name] += len(items)
        group_counts[name] += 1
    _fill_empty_splits(groups, wanted, counts, group_counts, seed)
    return {
        "examples": counts,
        "groups": group_counts,
        "targets": {k: round(v, 2) for k, v in targets.items()},
    }


def _fill_empty_splits(
    groups: dict[str, list[Kept]],
    wanted: dict[str, float],
    counts: dict[str, int],
    group_counts: dict[str, int],
    seed: int,
) -> None:
    """A split with a share above 0 that got no group takes the smallest group of the split
    with the most groups, while that split keeps at least one (test first, then val): with few
    groups (five files at 0.8/0.1/0.1), the deficit order alone leaves test empty. As
    scikit-learn's ``GroupShuffleSplit`` rounds the number of test groups up, a split asked for
    is not empty while there are groups to give it."""
    for name in reversed(SPLITS):
        if wanted[name] <= 0 or group_counts[name] > 0:
            continue
        donor = max(SPLITS, key=lambda s: (group_counts[s], -SPLITS.index(s)))
        if group_counts[donor] < 2:
            return
        group = min(
            (g for g, items in groups.items() if items[0].split == donor),
            key=lambda g: (len(groups[g]), rank(seed, g)),
        )
        for item in groups[group]:
            item.split = name
        moved = len(groups[group])
        counts[donor] -= moved
        counts[name] += moved
        group_counts[donor] -= 1
        group_counts[name] += 1


def apply_weights(
    kept: list[Kept], weights: dict[int, float], seed: int
) -> dict[int, dict[str, int]]:
    """Scale each source's share of the train split: a weight below 1 keeps a seeded sample,
    above 1 repeats examples (whole copies, then a seeded sample for the fraction)."""
    summary: dict[int, dict[str, int]] = {}
    by_source: dict[int, list[Kept]] = defaultdict(list)
    for item in kept:
        if item.dropped is None and item.split == "train":
            by_source[item.source].append(item)
    for source, items in by_source.items():
        weight = weights.get(source, 1.0)
        if weight == 1.0:
            continue
        whole, fraction = int(weight), weight - int(weight)
        ordered = sorted(items, key=lambda k: rank(seed, k.id))
        extra = round(len(items) * fraction)
        for position, item in enumerate(ordered):
            item.copies = whole + (1 if position < extra else 0)
            if item.copies == 0:
                item.dropped = ("weight", "source weight below 1", f"weight {weight}")
        summary[source] = {"before": len(items), "after": sum(i.copies for i in items)}
    return summary


def split_problems(
    spec: SplitSection,
    assigned: dict[str, Any],
    written: dict[str, int],
    evaluates: bool,
    max_prompts: int,
) -> tuple[list[str], str | None]:
    """What is wrong with the splits as written: ``(problems, why the run must stop)``.

    A split with a share above 0 that came out empty is a problem; so is a test split with
    fewer examples than the evaluation would answer (``eval.max_prompts``). Each message gives
    the group counts and what to change. The run stops (here, before training) when the
    evaluation would run on an empty test split: it would fail after training otherwise. A
    test split that is only smaller than ``max_prompts`` is evaluated on what it holds, so it
    is reported without stopping the run.
    """
    groups = assigned.get("groups", {})
    total_groups = sum(groups.values())
    by = f"`split.group_by: {spec.group_by}`"
    layout = ", ".join(f"{groups.get(n, 0)} to {n}" for n in SPLITS)
    smaller = (
        "smaller groups (`split.group_by: none` puts each example in a group of its own)"
        if spec.group_by != "none"
        else "more data"
    )
    problems: list[str] = []
    for name in SPLITS:
        share = getattr(spec, name)
        if share > 0 and not written.get(name):
            problems.append(
                f"split.{name} is {share:g} but the {name} split is empty: the {total_groups} "
                f"group(s) by {by} went {layout}. Change: a larger split.{name}, or {smaller}"
            )
    test = written.get("test", 0)
    if not evaluates or test >= max_prompts:
        return problems, None
    change = f"a larger split.test (now {spec.test:g}), {smaller}, or eval.enabled: false"
    went = f"{groups.get('test', 0)} of {total_groups} group(s) by {by} went to test"
    if test:
        problems.append(
            f"the test split holds {test} example(s), fewer than eval.max_prompts "
            f"({max_prompts}): the evaluation answers only those; {went}. Change: "
            f"eval.max_prompts: {test}, {change}"
        )
        return problems, None
    stop = (
        f"the test split is empty and the evaluation needs test prompts; {went}. Change: {change}"
    )
    problems.append(stop)
    return problems, stop
