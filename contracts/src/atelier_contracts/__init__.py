"""Atelier's contracts: everything that crosses a process boundary.

Messages are frozen, keyword-only, tagged ``msgspec.Struct`` types. Evolve them only by
adding fields with defaults; never retype or rename a field — add a new type instead.
"""

SCHEMA_VERSION = 1
