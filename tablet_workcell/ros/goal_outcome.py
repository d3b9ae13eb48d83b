"""How an instrument node ends an action goal: one rule for every node.

Succeeded when the work is done; canceled when the client asked for it (and nothing
else, such as an e-stop, stopped the goal first); aborted otherwise. The message goes
to the node's log at a level that matches, as the operator reads it there too.
"""

from __future__ import annotations

from typing import Any

from rclpy.action.server import ServerGoalHandle
from rclpy.impl.rcutils_logger import RcutilsLogger


def end_goal(
    goal_handle: ServerGoalHandle[Any, Any, Any],
    logger: RcutilsLogger,
    success: bool,
    message: str,
    estopped: bool,
) -> None:
    """Move the goal to its terminal state and log ``message``."""
    if success:
        goal_handle.succeed()
        logger.info(message)
    elif goal_handle.is_cancel_requested and not estopped:
        goal_handle.canceled()
        logger.warning(message)
    else:
        goal_handle.abort()
        logger.error(message)
