"""Fakes for tests, shipped so users can reuse them in their own suites."""

from runtime.testing.clock import FakeClock, GateClock, StillClock

__all__ = ["FakeClock", "GateClock", "StillClock"]
