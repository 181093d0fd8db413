"""``python -m flyteplugins.wandb_core``: the plan command line; ``main`` is the console script."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m flyteplugins.wandb_core"))
