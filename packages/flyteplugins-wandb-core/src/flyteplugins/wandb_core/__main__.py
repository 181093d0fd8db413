"""Entry points of the plan command line.

``flyteplugins-wandb-plan`` (the console script) runs :func:`main`; ``python -m
flyteplugins.wandb_core`` runs this module. Each names itself in its usage line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from . import _cli

__all__ = ["main"]

MODULE_PROG = "python -m flyteplugins.wandb_core"


def main(argv: Sequence[str] | None = None) -> int:
    """The ``flyteplugins-wandb-plan`` console script."""
    return _cli.main(argv, prog=_cli.PROG)


if __name__ == "__main__":
    sys.exit(_cli.main(prog=MODULE_PROG))
