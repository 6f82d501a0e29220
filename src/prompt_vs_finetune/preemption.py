"""Moved to tracking/runs.py; this path stays until its importers use the new one."""
from .tracking.runs import (  # noqa: F401
    hold_interrupts,
    raise_if_preempted,
    sigterm_as_preemption,
    sigterm_noted,
)
