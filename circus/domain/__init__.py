"""The vocabulary every part of Circus shares, with no I/O."""
