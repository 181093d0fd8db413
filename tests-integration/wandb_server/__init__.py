"""A W&B-compatible server for the integration tests, on loopback only.

It answers the GraphQL operations and file-stream requests that the real wandb 0.31.0 client
sends to create, log to, resume and finish runs, to read them back through ``wandb.Api``, and to
run sweeps with agents (trials proposed by W&B's open-source ``sweeps`` engine). It is a test
tool: no authentication, no UI, no artifacts. Start it with
``python -m wandb_server --port P --data-dir D`` from ``tests-integration/``.
"""

from .app import WandbTestServer

__all__ = ["WandbTestServer"]
