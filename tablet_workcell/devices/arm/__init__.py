"""Desktop robot arm speaking Marlin G-code over serial: codec, driver, simulator, layout.

The arm carries the die and tablets between the cell's stations. The G-code subset,
Marlin's replies and the cell layout are described in ``docs/devices/arm.md``.
"""
