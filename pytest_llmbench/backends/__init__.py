"""Engine adapters behind one protocol (see base.py) and their lazy registry."""
