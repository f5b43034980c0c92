"""OTP supervision semantics over Pykka."""
