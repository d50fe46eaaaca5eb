"""Rollouts: a model version to a fleet's matching devices in gated batches.

Public modules:

* ``policy`` (with ``strategy`` and ``plan``): the pure decisions,
  ``decide(rollout, devices, now)``;
* ``states``: the table of rollout states, the operator actions and the driver's moves
  each allows (pure);
* ``create``: ``create_rollout`` and ``rollback``; ``control``: pause, resume, abort;
* ``step``: one driver step of a rollout (views from the database, decision applied);
* ``driver``: ``RolloutDriver``, the thread that steps running rollouts every tick;
* ``public``: the ``RolloutPublic`` answers;
* ``late``: a completed rollout's device that activates after all (called by ingestion).

``rows`` holds what they share (the rollout lock, history entries, figures). Label
selectors are :mod:`controlplane.selectors` (``crud`` uses them too).
"""
