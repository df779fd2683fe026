"""Entities and rules. Pure: no I/O and no framework imports."""
