"""Frozen deblurring networks g used as supervisors."""

from weakdeblur.supervisors.base import IdentitySupervisor, Supervisor
from weakdeblur.supervisors.errors import SupervisorError
from weakdeblur.supervisors.map import MAPSupervisor
from weakdeblur.supervisors.nafnet import NAFNet, NAFNetSupervisor
from weakdeblur.supervisors.oracle import NoisyOracleSupervisor, OracleSupervisor
from weakdeblur.supervisors.pretrained import PretrainedSupervisor
from weakdeblur.supervisors.restormer import Restormer, RestormerSupervisor
from weakdeblur.supervisors.synthetic import SyntheticNet, SyntheticSupervisor

__all__ = [
    "IdentitySupervisor",
    "MAPSupervisor",
    "NAFNet",
    "NAFNetSupervisor",
    "NoisyOracleSupervisor",
    "OracleSupervisor",
    "PretrainedSupervisor",
    "Restormer",
    "RestormerSupervisor",
    "Supervisor",
    "SupervisorError",
    "SyntheticNet",
    "SyntheticSupervisor",
]
