"""Provider implementations behind one protocol."""
