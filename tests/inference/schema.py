"""An independent check of the documented classify record schema (README, "Output schema")."""

from __future__ import annotations

MODEL_KEYS = {"id", "revision", "sha256", "source"}


def check_record(rec: dict, topk: int | None = None, segments: int | None = None) -> None:
    base = {"input", "model", "runtime", "device", "precision", "settings", "error"}
    assert base <= set(rec), set(rec)
    assert set(rec["model"]) == MODEL_KEYS
    assert {"segments", "crops", "topk", "decoder", "stream"} <= set(rec["settings"])
    assert isinstance(rec["input"], str)
    if rec["error"] is not None:
        assert isinstance(rec["error"], str) and rec["error"]
        assert rec["topk"] == [] and rec["frames"] is None and rec["timings_ms"] is None
        return
    assert set(rec) == base | {"topk", "frames", "timings_ms"} | ({"window"} & set(rec))
    scores = [t["score"] for t in rec["topk"]]
    assert scores == sorted(scores, reverse=True)
    assert [t["rank"] for t in rec["topk"]] == list(range(1, len(scores) + 1))
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all(isinstance(t["label"], str) and isinstance(t["index"], int) for t in rec["topk"])
    if topk is not None:
        assert len(scores) == topk
    frames = rec["frames"]
    assert set(frames) == {"segments", "crops", "indices", "timestamps", "repeated"}
    assert len(frames["indices"]) == len(frames["timestamps"]) == frames["segments"]
    if segments is not None:
        assert frames["segments"] == segments
    assert frames["indices"] == sorted(frames["indices"])
    assert isinstance(frames["repeated"], bool)
    assert set(rec["timings_ms"]) == {"decode", "preprocess", "model"}
    assert all(v >= 0 for v in rec["timings_ms"].values())
    if "window" in rec:
        assert set(rec["window"]) == {"index", "start", "end"}
        assert rec["window"]["start"] < rec["window"]["end"]
