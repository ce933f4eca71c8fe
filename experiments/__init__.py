"""Reproduction scripts, one module per figure or table: ``python -m experiments.<name>``."""
