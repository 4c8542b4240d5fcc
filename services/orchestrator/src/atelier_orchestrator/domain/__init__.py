"""The job aggregate: pure ``decide`` and ``evolve``. No I/O, no clock, no randomness here."""
