"""The drivers' errors, under cellseq's one root (:class:`core.errors.CellseqError`)."""

from __future__ import annotations

from core.errors import CellseqError

__all__ = ["CapabilityError", "CellseqError", "DriverError", "TransportError"]


class TransportError(CellseqError, IOError):
    """A link to an instrument failed: not connected, timed out, or closed under us."""


class DriverError(CellseqError):
    """An instrument refused a command, or answered something the driver cannot read."""


class CapabilityError(DriverError):
    """A request is outside what the instrument can do (range, channel, technique)."""
