"""The one chat template of a recipe and everything derived from it (training text, Ollama TEMPLATE)."""

from runner.prompt.system import render_system, system_variables
from runner.prompt.template import ChatTemplate, load_template, template_names

__all__ = ["ChatTemplate", "load_template", "render_system", "system_variables", "template_names"]
