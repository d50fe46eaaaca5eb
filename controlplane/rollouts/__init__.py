"""Rollouts: a model version to a fleet's matching devices in gated batches.

Public modules:

* ``policy`` (with ``strategy``): the pure decisions, ``decide(rollout, devices, now)``;
* ``selectors``: label checks and ``k=v,k2=v2`` selectors (pure);
* ``create``: ``create_rollout`` and ``rollback``; ``control``: pause, resume, abort;
* ``step``: one driver step of a rollout (views from the database, decision applied);
* ``driver``: ``RolloutDriver``, the thread that steps running rollouts every tick;
* ``public``: the ``RolloutPublic`` answers.

``rows`` holds what they share (the rollout lock, history entries, figures).
"""
