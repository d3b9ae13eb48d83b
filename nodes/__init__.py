"""ROS 2 nodes of the cell: thin adapters, one file per node, each with a ``main()``.

This folder installs as ``tablet_workcell.nodes``; every module not starting with an
underscore becomes an executable of the same name (``lib/tablet_workcell/<name>`` for
ROS 2 launch, ``tablet_workcell_<name>`` on PATH).
"""
