"""Local data kept beside the mirror: overrides, custom groups and people.

The API writes it; syncs never change it (they only read it: a sync warns when Clever's value
moves under an override, and links staff records into people).
"""
