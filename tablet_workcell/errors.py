"""Typed exceptions of the tablet_workcell library.

Every error carries a sentence a technician understands: what was wrong, the limit or
expectation it broke, and how to fix it. Callers show ``str(error)``; no traceback needed.
"""


class WorkcellError(Exception):
    """Base class of every error raised on purpose by tablet_workcell."""


class ConfigError(WorkcellError):
    """A configuration file or value is invalid; the message names the value and the fix."""


class LaunchError(WorkcellError):
    """The node graph could not be started or stopped as described."""
