"""Bring-up of the cell's node graph from one declarative description (no ROS imports).

``config/workcell.yaml`` says which nodes run with which parameters. Both the ROS 2
launch file (``launch/workcell.launch.py``) and the ``workcell`` command read it through
:func:`tablet_workcell.bringup.description.load_graph`, so they cannot drift.
"""
