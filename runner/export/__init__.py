"""Export targets: merge, GGUF, LoRA GGUF, Ollama Modelfile, Hugging Face Hub.

Each target's options are declared in the module of the stage that handles it and registered
under the `type:` users write; ``ExportList`` is the type of the recipe's ``export:`` key.
"""

from runner.registry import Registry

EXPORTS = Registry("export target")

# Importing the modules registers their targets.
from runner.export import gguf, hub, merge, ollama  # noqa: E402, F401

ExportList = tuple[EXPORTS.union(), ...]
