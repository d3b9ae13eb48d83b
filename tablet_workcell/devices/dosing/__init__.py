"""Powder dosing heads on one addressed serial bus, and gravimetric dosing on a balance.

The dosing-head protocol is ours (no public one fits); ``docs/devices/dosing_head.md``
defines it. ``gravimetric`` closes the dosing loop over the balance and head drivers;
``simulator`` serves the whole dispensing station (balance + heads) on one physics world.
"""
