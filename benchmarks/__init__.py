"""Benchmarks: programs, not tests. ``python benchmarks/run.py`` is the entry point.

Every figure is printed next to a baseline measured in the same run (the raw driver
running the same SQL, a peer library, the SDK without an event store), so the ratio is
what to read: the machine is small and shared, and absolute times move with its load.
"""
