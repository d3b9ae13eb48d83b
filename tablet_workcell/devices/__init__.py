"""Instrument protocols: codecs (pure functions on bytes), drivers and simulators.

Every instrument has three modules: ``<instrument>/codec.py`` (encode requests, parse
replies into typed values or typed errors; no I/O), ``<instrument>/driver.py`` (the codec
over a :class:`~tablet_workcell.devices.transport.SerialTransport`, which opens any
``serial.serial_for_url`` URL: a device path, a pseudo-terminal, ``socket://``) and
``<instrument>/simulator.py`` (the instrument's side of the same bytes, driven by the
physics twin). The hardware path never imports a simulator (import-linter contract).
"""
