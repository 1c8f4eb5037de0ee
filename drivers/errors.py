"""The one error tree of cellseq, rooted here because every other package may import drivers."""

from __future__ import annotations


class CellseqError(Exception):
    """Anything cellseq reports to a user as a problem with their input, station or instruments."""


class TransportError(CellseqError, IOError):
    """A link to an instrument failed: not connected, timed out, or closed under us."""


class DriverError(CellseqError):
    """An instrument refused a command, or answered something the driver cannot read."""


class CapabilityError(DriverError):
    """A request is outside what the instrument can do (range, channel, technique)."""
