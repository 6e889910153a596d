"""What the train stage and its Axolotl plugin (``runner.train.plugin``) exchange: the plugin's
import path, the settings file the stage writes before ``axolotl train``, the verdict file the
plugin writes back, and the progress line it prints after every optimizer step.

Kept apart from the plugin because the plugin imports Axolotl (about 12 s on 2 cores), which
only Axolotl's own process should pay for; the stage needs these names alone.
"""

from __future__ import annotations

PLUGIN = "runner.train.plugin.RecipeRunnerChecks"
SETTINGS = "runner_checks.json"
RESULT = "runner_checks.result.json"
# What the step callback prints; runner.train.progress reads it.
STEP_LINE = "recipe-runner: step {step}/{total} eta {eta}"
