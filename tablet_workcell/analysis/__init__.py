"""Analyses of measured records; pure functions on records, no ROS, no twin imports.

Compaction (Heckel, Kawakita, work, elastic recovery) lives in
``tablet_workcell.analysis.compaction``; diametral breaking tests in
``tablet_workcell.analysis.breaking``; the record shapes they take in
``tablet_workcell.analysis.records`` (the twin produces the same types).
"""
