"""The microscale tablet press (TWC-MP20 protocol, docs/devices/press.md).

``codec`` frames and parses the press's CRC-checked ASCII lines, ``codes`` lists its
error codes, ``driver`` runs compaction, ejection and breaking cycles over a serial
port, and ``simulator`` is the press's side of the same bytes, driven by the twin.
"""
