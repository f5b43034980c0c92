"""Elexirion runtime: the framework that the application actors build on."""

from runtime.errors import ElexirionError

__all__ = ["ElexirionError"]
