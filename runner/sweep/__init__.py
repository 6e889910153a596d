"""Sweeps: several runs of one recipe with different values of some of its keys, ranked by a
metric the evaluation reports (``recipe sweep``). The `sweep:` section is declared in
``section.py``; ``run.py`` drives Optuna."""
