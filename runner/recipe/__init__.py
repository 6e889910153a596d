"""Recipes: load YAML (with `extends:` and `--set`), validate, resolve into an immutable `Recipe`."""
