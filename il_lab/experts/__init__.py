"""Experts: trainers that produce a ``Policy`` and can save and load it for the cache."""
