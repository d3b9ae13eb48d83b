"""Laboratory balance speaking Mettler Toledo MT-SICS (level 0 subset): codec, driver, simulator.

The protocol subset, with example exchanges and every error reply, is described in
``docs/devices/balance.md``.
"""
