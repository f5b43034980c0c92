"""Elexirion application actors: thin wrappers around runtime logic behind messages."""
