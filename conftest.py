"""Settings for every pytest run in this repository (the packages' tests and the integration
tests load this file: it sits in their rootdir)."""

from hypothesis import settings

# Hypothesis fails an example that takes longer than its deadline (200 ms by default): a timing
# assertion, which a shared 2-core machine fails now and then while other sessions run beside
# it. Speed is measured by the benchmarks, never asserted by tests.
settings.register_profile("flyteplugins-wandb", deadline=None)
settings.load_profile("flyteplugins-wandb")
