"""Typed error of the analyses: a record that cannot give a trustworthy result."""

from __future__ import annotations

from tablet_workcell.errors import WorkcellError


class AnalysisError(WorkcellError):
    """A measured record is unusable for an analysis; the message says why and what to check."""
