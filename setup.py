"""The optional compiled module (interpserve/_speedups.c); everything else is in pyproject.toml.
Without a C compiler the install still succeeds, and the pure-Python code it replaces runs."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("interpserve._speedups", ["interpserve/_speedups.c"], optional=True),
    ]
)
