"""W&B sweeps for Flyte 2."""

from __future__ import annotations

from .__about__ import __version__

__all__ = ["__version__"]
