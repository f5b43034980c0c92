"""Step families, one module per family."""
