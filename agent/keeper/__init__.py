"""The keeper: every public-key operation of the agent, kept out of its long-lived process.

``cryptography`` holds about 11 MB of the agent's resident memory for good once it is
imported (its Rust extension's pages; Python cannot unload a module), and the agent needs
it only now and then: to verify a deployment command, a trust document or a bundle's
signature, and to enroll or renew its certificate. So the agent's own process never
imports it; the keeper does those operations (issue 18: the agent's own share of memory).

- ``api``: what the agent asks of a keeper (``Keeper``) and the settings it needs;
- ``local.LocalKeeper``: the operations themselves, in the calling process (the
  simulators, whose agents share one process, and ``edge-agent enroll``);
- ``child.ChildKeeper``: the same operations in a child process (``python -m
  agent.keeper``) started when one is needed and closed after ``idle_s`` without one, so
  that an agent at rest holds no keeper; what ``edge-agent run`` uses;
- ``wire``: the child's requests and answers (JSON lines), ``serve``: its loop.

The child is stateless between runs: the trust chain it verifies lives in
``data_dir/trust.json`` and the identity in ``data_dir/identity``, as before; each start
re-verifies the chain from the pinned roots.
"""

from agent.keeper.api import Keeper, KeeperSettings

__all__ = ["Keeper", "KeeperSettings"]
