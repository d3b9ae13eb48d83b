"""New Era NE-1000 syringe pump (RS-232 basic mode): codec, driver and simulator.

The pump places the water droplet on a tablet for the sessile-drop disintegration test.
The protocol subset and its sources are described in ``docs/devices/syringe_pump.md``.
"""
