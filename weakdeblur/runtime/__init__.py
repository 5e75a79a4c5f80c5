"""Run infrastructure around the method: what a run needs that the deblurring does not.

- :mod:`~weakdeblur.runtime.preflight`: checks before the run folder exists (a Hydra callback)
- :mod:`~weakdeblur.runtime.tracking`: local artefacts, W&B and the progress bar behind one interface
- :mod:`~weakdeblur.runtime.resume`: the configuration fingerprint and skipping completed images
- :mod:`~weakdeblur.runtime.locks`: per-image locks for concurrent runners
- :mod:`~weakdeblur.runtime.secrets`: scrubbing secrets from what is logged
- :mod:`~weakdeblur.runtime.faults`: fault injection for the reliability tests

The method modules (physics, losses, stopping, solver, ...) never import this package.
"""
