"""Moved to tracking/provenance.py; this path stays until its importers use the new one."""
from .tracking.provenance import code_version, config_hash  # noqa: F401
