"""Simulated cells and instruments: physics models behind the driver interfaces."""
