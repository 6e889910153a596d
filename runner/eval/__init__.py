"""Evaluation: does the fine-tune beat its base on the run's held-out test split?

``stage.run`` is the pipeline entry. ``loss`` measures held-out loss with the training masking
(transformers), ``generate`` answers the test prompts from GGUF files (llama.cpp), ``checks``
holds the registered generation checks (``CHECKS``), ``score`` and ``gate`` turn results into pass
rates and a verdict, ``plots`` and ``report`` write ``eval/report.md`` and ``eval/report.html``.
"""
