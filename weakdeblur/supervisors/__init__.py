"""Frozen deblurring networks g used as supervisors."""

from weakdeblur.supervisors.base import IdentitySupervisor, Supervisor

__all__ = ["IdentitySupervisor", "Supervisor"]
