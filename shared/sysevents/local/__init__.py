"""The local stack: real emulators and functions on free ports (used by `sysevents dev` and the tests)."""
