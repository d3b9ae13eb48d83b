"""Where the package's share files (config/, launch/, models/) are.

An editable (developer) install runs from the source tree, where config/ sits next to
the ``tablet_workcell`` package: use it, so edits take effect without re-installing.
A regular install (pip, colcon) has them under ``<prefix>/share/tablet_workcell``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tablet_workcell.errors import ConfigError

PACKAGE = "tablet_workcell"
DEFAULT_GRAPH = Path("config") / "workcell.yaml"


def share_directory() -> Path:
    source_tree = Path(__file__).resolve().parents[2]
    if (source_tree / "package.xml").is_file() and (source_tree / DEFAULT_GRAPH).is_file():
        return source_tree
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in [*prefixes, sys.prefix]:
        candidate = Path(prefix) / "share" / PACKAGE
        if (candidate / DEFAULT_GRAPH).is_file():
            return candidate
    raise ConfigError(
        f"cannot find the {PACKAGE} share directory (looked in {source_tree}, "
        f"{sys.prefix}/share/{PACKAGE} and AMENT_PREFIX_PATH); re-install the package "
        "(make setup) or pass --config PATH."
    )


def default_graph_path() -> Path:
    return share_directory() / DEFAULT_GRAPH
