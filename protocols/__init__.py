"""The protocol language: campaigns of cells and experiments, with units resolved at load time."""

from protocols.campaign import Campaign, Experiment
from protocols.cells import Cathode, Cell, CellKind, Limits
from protocols.errors import Problem, ProtocolError
from protocols.loader import load_campaign, load_model
from protocols.types import CurrentSetpoint

__all__ = ["Campaign", "Cathode", "Cell", "CellKind", "CurrentSetpoint", "Experiment", "Limits",
           "Problem", "ProtocolError", "load_campaign", "load_model"]
