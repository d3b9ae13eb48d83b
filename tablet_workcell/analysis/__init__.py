"""Analyses of measured records; pure functions on records, no ROS, no twin imports.

Compaction (Heckel, Kawakita, work, elastic recovery) lives in
``tablet_workcell.analysis.compaction``; diametral breaking tests in
``tablet_workcell.analysis.breaking``. Only ``tablet_workcell.twin.records`` (the record
shapes) is imported from the twin.
"""
