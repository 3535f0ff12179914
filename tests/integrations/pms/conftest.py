"""The device tests' bridge fixture, for the FIAS tests that write keys on a simulated encoder."""

from tests.devices.conftest import encoder_bridge  # noqa: F401
