"""Tidemark shared library: everything services share lives here once."""

__version__ = "0.1.0"
