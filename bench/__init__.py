"""interpserve's benchmark suite: `python -m bench` (or `bench/run`); see bench/README.md.

Kept empty on purpose: bench.apps is imported inside subinterpreters, and importing it imports
this package first.
"""
