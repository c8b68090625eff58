"""An exported file carries its model's sampling in the metadata, read back without torch."""

from __future__ import annotations

from ispan_cli.runtime.loading import load_model
from ispan_cli.video.sampling import SamplingSpec


def test_onnx_metadata_carries_the_sampling(exported) -> None:
    loaded = load_model(str(exported["plain"]), runtime="onnx", device="cpu")
    assert loaded.sampling == SamplingSpec(8)
    assert loaded.session.info.sampling == SamplingSpec(8).to_dict()  # the new vocabulary
