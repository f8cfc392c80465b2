"""sysevents: capture system events and run export and alert jobs on them."""

__version__ = "0.1.0"
