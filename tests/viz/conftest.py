"""The exported-model fixtures are shared with tests/export."""

from tests.export.conftest import export_videos, exported  # noqa: F401
