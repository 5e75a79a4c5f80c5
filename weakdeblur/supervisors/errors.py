"""Errors a user can cause when choosing or configuring a supervisor."""

from weakdeblur.data.sample import DataError


class SupervisorError(DataError):
    """Missing checkpoint, a checkpoint of the wrong layout, or an oracle without ground truth."""
