"""Synthesis: grammar, enumeration, oracles, search."""
