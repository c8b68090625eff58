"""RAFT's plumbing on the CPU: torchvision's raft_small/raft_large with random weights (no
download, no GPU), checked on what does not depend on the weights: padding to RAFT's stride and
minimum size and cropping back, chunked extraction equal to one pass, the output's shape and
dtype, the quantised JPEGs and their layout, and strict loading of a weights file.

Users still cannot run RAFT on the CPU (``create_method("raft")`` refuses it: about 7 CPU s a
flow at 320x240, 5x TV-L1); the tests build the same FlowMethod through ``raft_method``."""

from __future__ import annotations

import numpy as np
import pytest

from ispan_cli.errors import ISpanError
from tests.flow.clips import decode_independently, shifted_frames, write_clip

torch = pytest.importorskip("torch")
optical_flow = pytest.importorskip("torchvision.models.optical_flow")


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return optical_flow.raft_small(weights=None).eval()


def _by_hand(model, frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """RAFT on edge-padded frames (numpy's padding, not the code under test), cropped back."""
    h, w = frames.shape[1:3]
    padded = np.pad(frames, ((0, 0), (0, height - h), (0, width - w), (0, 0)), mode="edge")
    x = torch.from_numpy(padded).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    with torch.inference_mode():
        out = model(x[:-1], x[1:], num_flow_updates=12)[-1]
    return out[:, :, :h, :w].permute(0, 2, 3, 1).numpy()


def test_frames_are_padded_to_the_stride_and_minimum_size_and_cropped_back(small):
    from ispan_cli.flow.methods import RAFT_ITERATIONS, raft_flows

    assert RAFT_ITERATIONS == 12  # _by_hand's
    frames = shifted_frames(3, width=134, height=100)  # W: 134 -> 136 (stride 8); H: -> 128
    seen = []
    hook = small.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    try:
        flows = raft_flows(small, torch.device("cpu"))(frames)
    finally:
        hook.remove()
    assert seen == [(2, 3, 128, 136)]  # both pairs in one batch, padded
    assert flows.shape == (2, 100, 134, 2) and flows.dtype == np.float32
    expected = _by_hand(small, frames, 128, 136)
    assert np.allclose(flows, expected, atol=1e-4)
    assert np.abs(flows).max() > 1  # random weights still give flow worth comparing


@pytest.mark.slow  # 16 RAFT flows on the CPU: about 13 CPU s
def test_the_extract_pipeline_writes_raft_flow_as_one_pass_would(small, tmp_path):
    # 9 frames in chunks of 4: the chunks overlap by one frame, and together give the 8 flows
    # one pass over all frames gives, quantised and JPEG-encoded in the rawframes layout
    import cv2

    from ispan_cli.data.flow_format import JPEG_QUALITY, FlowSpec, quantise, read_meta
    from ispan_cli.flow.extract import FlowJob, extract_video
    from ispan_cli.flow.methods import raft_flows, raft_method

    video = write_clip(tmp_path / "clip.mkv", shifted_frames(9, width=100, height=90))
    assert raft_method(small, torch.device("cpu")).batch == 16  # the CLI's chunk
    method = raft_method(small, torch.device("cpu"), batch=4)
    spec = FlowSpec("raft", 20.0, "rawframes", None, False, tuple(sorted(method.params)))
    result = extract_video(FlowJob(str(video), "clip"), tmp_path / "out", spec, method)
    assert result.status == "done", result.message
    folder = tmp_path / "out" / "clip"
    names = sorted(p.name for p in folder.glob("flow_*.jpg"))
    assert names == [f"flow_{a}_{i:05d}.jpg" for a in "xy" for i in range(1, 9)]
    meta = read_meta(folder)
    assert meta.frames == 9 and (meta.width, meta.height) == (100, 90)
    assert meta.spec.method == "raft" and dict(meta.spec.params)["iterations"] == 12
    one_pass = raft_flows(small, torch.device("cpu"))(decode_independently(video))
    assert one_pass.shape == (8, 90, 100, 2)
    for i, flow in enumerate(one_pass):
        for c, axis in enumerate("xy"):
            _, data = cv2.imencode(
                ".jpg", quantise(flow[..., c], 20.0), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
            )
            expected = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE).astype(int)
            got = cv2.imread(str(folder / f"flow_{axis}_{i + 1:05d}.jpg"), 0).astype(int)
            # batches of other sizes round differently (about 1e-5 px): a grey level at most,
            # at a handful of pixels
            diff = np.abs(got - expected)
            assert diff.max() <= 2 and diff.mean() < 0.01, (i, axis, diff.max(), diff.mean())
    assert len(set(np.unique(quantise(one_pass, 20.0)))) > 20  # not all one grey


def test_a_weights_file_is_loaded_strictly(tmp_path):
    from ispan_cli.flow.methods import load_raft

    torch.manual_seed(1)
    saved = optical_flow.raft_large(weights=None).state_dict()
    path = tmp_path / "raft_large.pth"
    torch.save(saved, path)
    model = load_raft(path)
    assert not model.training
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    small_state = optical_flow.raft_small(weights=None).state_dict()
    torch.save(small_state, tmp_path / "small.pth")
    with pytest.raises(ISpanError, match="is not torchvision's raft_large weights"):
        load_raft(tmp_path / "small.pth")
    (tmp_path / "damaged.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ISpanError, match="download them again"):
        load_raft(tmp_path / "damaged.pth")


def test_raft_is_refused_on_the_cpu_even_when_asked(tmp_path):
    from ispan_cli.flow.methods import create_method

    for device in ("cpu", "auto"):
        if device == "auto" and torch.cuda.is_available():
            continue
        with pytest.raises(ISpanError, match="--method raft runs on a CUDA GPU"):
            create_method("raft", device)
