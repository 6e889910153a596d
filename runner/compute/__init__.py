"""Where a run goes: `compute.target` names a profile, and the profile's engine runs the recipe.

- ``profiles``: the typed profiles of ``compute.yaml`` (local, ray, slurm, skypilot) and how a
  recipe's target is found.
- ``nodes``: what every node of a run is told (the command it runs, its rank, the job it belongs
  to) and how the nodes other than the first join its training.
- ``ray``, ``slurm``, ``skypilot``: each engine's submission, rendered by a pure function (pinned
  by golden files), submitted with the engine's own client, and its reachability check.
- ``submit``: the one entry the ``recipe`` command (and the job API) calls to send a recipe to its
  target.
"""
