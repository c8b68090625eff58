"""The real Hub server of tests/hub (olah on 127.0.0.1) for the Hub routes of the import."""

from tests.hub.conftest import hub_server  # noqa: F401  (a fixture, used by name)
