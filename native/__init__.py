"""Optional native (Cython) hot paths; pure-Python fallbacks live in ``applier``."""
