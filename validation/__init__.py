"""Validation studies of simmargins' intervals (run on demand; see docs/validation.md)."""
