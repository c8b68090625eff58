"""The documented bounds on sizes that come from untrusted input (videos, config.json, options).

Each bound is checked before anything of that size is allocated: a 3 MB MJPEG that claims
16000x16000 pixels per frame made ``ispan frames`` use 8.3 GB, ``"resize": 40000`` or
``num_segments`` 1e18 in a config.json would ask for terabytes. The README's "Limits" section
lists them. Imports nothing heavy: the CLI's options, the torch-free ONNX path and ``nn`` use it.
"""

from __future__ import annotations

import os

# Decoded frames: 8192 x 8192 (67 megapixels) takes every real format up to DCI 8K (8192 x 4320)
# and a square 8K picture; one such frame is 100 MB as YUV 4:2:0 and 200 MB as RGB.
MAX_FRAME_PIXELS = 8192 * 8192
MAX_FRAME_PIXELS_ENV = "ISPAN_MAX_FRAME_PIXELS"
# What frame-threaded decoding may hold in flight (one frame per thread), in bytes.
DECODE_BUDGET_BYTES = 1 << 30

# Preprocessing: the short side frames are scaled to (crop <= resize). Models see 112 to 448
# pixels; at 2048 one 10-crop, 8-segment clip is already 4 GB of float32.
MAX_RESIZE = 2048
# Segments (K) per view: TSN uses 3 to 25; dense clips 32 or 64.
MAX_SEGMENTS = 1024
# Model config sizes: classes (ImageNet-21k has 21,841) and attention rows d (H*W of the
# attention layer: 49 at 224 px, 16384 for a 128 x 128 map).
MAX_CLASSES = 100_000
MAX_D = 16_384
MAX_INPUT_SIZE = MAX_RESIZE
# Channels of an input frame: 3 for RGB, 2L for a stack of L optical-flow fields (L <= 64).
MAX_IN_CHANNELS = 128
# Processes one `ispan train --devices N` starts on one machine.
MAX_PROCESSES = 256
# Options: videos (or windows) per model call, and decoding/model threads or worker processes.
MAX_BATCH = 4096
MAX_WORKERS = 256


def max_frame_pixels() -> int:
    """The frame size limit in pixels: ``ISPAN_MAX_FRAME_PIXELS`` if set, else 8192 * 8192."""
    raw = os.environ.get(MAX_FRAME_PIXELS_ENV, "").strip()
    if not raw:
        return MAX_FRAME_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        from ispan_cli.errors import UsageError

        raise UsageError(
            f"{MAX_FRAME_PIXELS_ENV}={raw!r} is not a positive whole number of pixels "
            f"(default {MAX_FRAME_PIXELS}); unset it or give e.g. {MAX_FRAME_PIXELS}"
        )
    return value


def decode_threads(width: int, height: int, requested: int, cores: int | None = None) -> int:
    """Decoder threads for frames of width x height: ``requested`` (0: one per core, as FFmpeg
    picks), fewer where that many frames in flight would pass DECODE_BUDGET_BYTES (frame
    threading holds one frame per thread; 1.5 bytes a pixel as YUV 4:2:0, 3 to be safe)."""
    cores = cores or os.cpu_count() or 1
    wanted = requested or cores + 1
    frame_bytes = max(1, width * height * 3)
    fits = max(1, DECODE_BUDGET_BYTES // frame_bytes)
    if wanted <= fits:
        return requested
    return int(fits)


# Seconds a video URL or live stream may take to connect or stay silent when --timeout is not
# given (ispan_cli.video.sources; here so that classify's --help needs no decoder import)
VIDEO_TIMEOUT = 10.0
