"""Drawing: heatmaps blended over frames, top-k and attention-share annotations, contact sheets.

Heatmaps cover the model's input crop (the part of the frame the model saw); the rest of the
frame is dimmed. Within one clip every heatmap is scaled by the clip's largest value, so frames
that received less attention look cooler: the colours compare across the clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ispan_cli.video.preprocess import PreprocessSpec, crop_boxes, scaled_size
from ispan_cli.viz.colormaps import cv2_colormap


def crop_box(width: int, height: int, spec: PreprocessSpec) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the model's centre crop in original frame pixels."""
    rw, rh = scaled_size(width, height, spec.resize)
    top, left, _ = crop_boxes(rh, rw, spec.crop, 1)[0]
    sx, sy = width / rw, height / rh
    return (left * sx, top * sy, (left + spec.crop) * sx, (top + spec.crop) * sy)


@dataclass(frozen=True)
class Caption:
    """What is written on one rendered frame."""

    segment: int  # k
    segments: int  # K
    frame_index: int
    timestamp: float
    share: np.ndarray  # (K,) attention share of each segment
    topk: list[tuple[str, float]]
    titles: list[str]  # one per panel ("fused", "level 0 (layer2)", ...)
    window: str | None = None  # "window 3: 6.0-10.0 s" in window mode


def overlay(
    frame: np.ndarray,
    heat: np.ndarray,
    box: tuple[float, float, float, float],
    alpha: float,
    colormap: str,
) -> np.ndarray:
    """Blends ``heat`` ((h, w) in [0, 1]) over the ``box`` region of ``frame`` (RGB uint8)."""
    import cv2

    out = (frame.astype(np.float32) * 0.55).astype(np.uint8)  # dim what the model did not see
    x0, y0, x1, y1 = (round(v) for v in box)
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, frame.shape[1]), min(y1, frame.shape[0])
    if x1 <= x0 or y1 <= y0:
        return out
    grey = np.clip(heat * 255.0, 0, 255).astype(np.uint8)
    grey = cv2.resize(grey, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
    colour = cv2.applyColorMap(grey, cv2_colormap(colormap))[..., ::-1]  # BGR -> RGB
    region = frame[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip((1 - alpha) * region + alpha * colour, 0, 255).astype(np.uint8)
    cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 255), 1)
    return out


def render_frame(
    frame: np.ndarray,
    heats: list[np.ndarray],
    box: tuple[float, float, float, float],
    caption: Caption,
    alpha: float = 0.5,
    colormap: str = "turbo",
) -> np.ndarray:
    """One output frame: a panel per heatmap side by side, annotated. RGB uint8."""
    panels = []
    for n, (heat, title) in enumerate(zip(heats, caption.titles, strict=True)):
        panel = overlay(frame, heat, box, alpha, colormap)
        _text_block(panel, [title] if len(heats) > 1 else [], corner="top-right")
        if n == 0:
            lines = [f"{label}  {score:.3f}" for label, score in caption.topk]
            _text_block(panel, lines, corner="top-left")
        _share_strip(panel, caption)
        panels.append(panel)
    return np.concatenate(panels, axis=1)


def _scale(img: np.ndarray) -> tuple[float, int]:
    h = img.shape[0]
    return max(0.35, h / 720), 1 if h < 540 else 2


def _text_block(img: np.ndarray, lines: list[str], corner: str) -> None:
    import cv2

    if not lines:
        return
    font, (scale, thick) = cv2.FONT_HERSHEY_SIMPLEX, _scale(img)
    sizes = [cv2.getTextSize(line, font, scale, thick)[0] for line in lines]
    step = max(s[1] for s in sizes) + 6
    width = max(s[0] for s in sizes) + 8
    x = 2 if corner == "top-left" else max(img.shape[1] - width - 2, 0)
    shade = img[2 : 2 + step * len(lines) + 4, x : x + width]
    shade[:] = (shade * 0.35).astype(np.uint8)
    for i, line in enumerate(lines):
        y = 2 + step * (i + 1)
        cv2.putText(img, line, (x + 4, y), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


def _share_strip(img: np.ndarray, caption: Caption) -> None:
    """Bars of each segment's attention share along the bottom; the current one highlighted."""
    import cv2

    h, w = img.shape[:2]
    strip = max(12, h // 8)
    top = h - strip
    img[top:] = (img[top:] * 0.3).astype(np.uint8)
    k_total = caption.segments
    peak = float(caption.share.max()) or 1.0
    label_w = w // 2
    bar_w = max(1, (w - label_w - 4) // k_total)
    for k in range(k_total):
        height = int((strip - 4) * float(caption.share[k]) / peak)
        x0 = label_w + k * bar_w
        colour = (255, 210, 60) if k == caption.segment else (150, 150, 150)
        cv2.rectangle(img, (x0 + 1, h - 2 - height), (x0 + bar_w - 1, h - 2), colour, -1)
    text = (
        f"seg {caption.segment + 1}/{k_total} frame {caption.frame_index} "
        f"{caption.timestamp:.2f}s attn {100 * float(caption.share[caption.segment]):.1f}%"
    )
    if caption.window:
        text = f"{caption.window} | {text}"
    font, (scale, thick) = cv2.FONT_HERSHEY_SIMPLEX, _scale(img)
    scale = min(scale, 0.9 * strip / 22)
    while scale > 0.25 and cv2.getTextSize(text, font, scale, thick)[0][0] > label_w - 4:
        scale *= 0.9
    cv2.putText(img, text, (3, h - strip // 3), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


def thumbnail(img: np.ndarray, height: int = 160) -> np.ndarray:
    """``img`` scaled to ``height`` pixels high, aspect kept."""
    import cv2

    h, w = img.shape[:2]
    size = (max(1, round(w * height / h)), height)
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def contact_sheet(views: list[list[np.ndarray]], per_line: int = 4) -> np.ndarray:
    """A grid of thumbnails (same height): each view (clip or window) starts a new line and
    wraps after ``per_line`` frames."""
    rows = [view[i : i + per_line] for view in views for i in range(0, len(view), per_line)]
    lines = [np.concatenate(row, axis=1) for row in rows]
    width = max(line.shape[1] for line in lines)
    padded = [np.pad(line, ((0, 2), (0, width - line.shape[1]), (0, 0))) for line in lines]
    return np.concatenate(padded, axis=0)
