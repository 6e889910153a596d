"""Property-based fuzzing of the loader over the shipped recipes (a few hundred cases here;
``make bench`` runs 10,000): whatever the mutation, ``recipe validate`` exits 0 or 2, never with
a traceback, and every error names the file it is about."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tests.recipe.fuzzing import mutated_recipe, validate, workspace


def test_shipped_recipes_validate_unmutated(tmp_path):
    from tests.recipe.fuzzing import SHIPPED

    root = workspace(tmp_path)
    for name, text in SHIPPED.items():
        result = validate(root, name, text)
        assert result.problem() is None, result.output
        # recipes/base/ holds fragments that full recipes extend; alone they lack sections.
        assert result.status == (2 if "/base/" in name else 0), result.output


@settings(
    max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutated_recipe())
def test_no_mutation_crashes_the_loader(tmp_path, case):
    name, text = case
    result = validate(workspace(tmp_path), name, text)
    assert result.problem() is None, f"{name}:\n{text}\n---\n{result.problem()}"
