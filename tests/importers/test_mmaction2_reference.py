"""ispan's import checked against MMAction2 1.2 itself (`make test-mmaction2`; else skipped).

MMAction2 builds its TSN R50 Kinetics-400 recognizer from its own config, with seeded random
weights and BN statistics, and saves it as mmengine saves a published checkpoint; ispan imports
that file. Then (1) the two models score the same preprocessed frames, and (2) each tool runs its
own pipeline (decoding, sampling, resizing, cropping, normalising) on real decoded clips.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.importers import mmaction2_reference as ref

pytestmark = [
    pytest.mark.mmaction2,
    pytest.mark.slow,
    pytest.mark.skipif(
        not ref.available(), reason="mmaction2 is not installed (make test-mmaction2)"
    ),
]

ROOT = Path(__file__).resolve().parents[2]
UCF_CLIP = ROOT / "tests" / "video" / "real" / "v_ApplyEyeMakeup_g01_c01.avi"


def _frames(video: Path, indices) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB frames of ``video`` at ``indices``, decoded by PyAV."""
    import av

    wanted = set(indices)
    with av.open(str(video)) as container:
        frames = {i: f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(video=0))
                  if i in wanted}  # fmt: skip
    return np.stack([frames[i] for i in indices])


def _input(frames: np.ndarray) -> torch.Tensor:
    """ispan's preprocessing of ``frames`` for MMAction2's TSN recipe: (1, N, 3, 224, 224)."""
    from ispan_cli.video.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec, preprocess

    spec = PreprocessSpec(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return torch.from_numpy(preprocess(frames, spec))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(MMAction2's config and recognizer, its published checkpoint, ispan's import of it,
    labels, the clips)."""
    from ispan_cli.importers import ImportOptions, import_model
    from ispan_cli.importers.labels import label_set
    from tests.video.videogen import write_pattern_video

    folder = tmp_path_factory.mktemp("mmaction2")
    # larger than 256 on the short side, so both tools shrink it (the UCF101 clip is enlarged)
    pattern = write_pattern_video(folder / "pattern.mp4", "libx264", 45, width=400, height=300)
    clips = {"ucf101": UCF_CLIP, "pattern": pattern}
    # the BN statistics are measured on frames of both clips (mmaction2_reference.build_tsn)
    calibration = torch.cat(
        [
            _input(_frames(UCF_CLIP, range(5, 164, 20)))[0],
            _input(_frames(pattern, range(3, 45, 6)))[0],
        ]
    )
    classes = label_set("kinetics400")
    cfg, model = ref.build_tsn(calibration, seed=0)
    checkpoint = ref.save_published_checkpoint(model, cfg, folder, classes)
    imported = folder / "imported"
    import_model(ImportOptions(source=str(checkpoint), output=imported))
    return cfg, model, checkpoint, imported, classes, clips


def test_the_checkpoint_is_mmaction2s_own(reference):
    # MMAction2 reads its file back (through the weights_only shim) into an identical model
    from mmaction.apis import init_recognizer

    cfg, model, checkpoint, *_ = reference
    with ref.mmengine_loads_full_pickles():
        loaded = init_recognizer(cfg, str(checkpoint), device="cpu")
    theirs, ours = loaded.state_dict(), model.state_dict()
    assert theirs.keys() == ours.keys()
    assert all(torch.equal(theirs[k], ours[k]) for k in ours)
    # and torch's default loader refuses it, which is why ispan reads it without either
    with pytest.raises(Exception, match="weights_only"):
        torch.load(checkpoint)


def test_same_logits_on_the_same_frames(reference):
    from mmaction.structures import ActionDataSample

    from ispan_cli.nn import load_model, read_config

    cfg, model, _, imported, classes, clips = reference
    config, doc = read_config(imported)
    assert (config.backbone, config.num_classes, config.labels) == ("resnet50", 400, classes)
    assert (config.num_segments, config.input_size, config.dropout) == (8, 224, 0.4)
    # the peer's 0-255 normalisation, as ours on [0, 1]
    assert doc["preprocessing"]["mean"] == pytest.approx(
        [m / 255 for m in cfg.model.data_preprocessor.mean], abs=1e-6
    )
    assert doc["preprocessing"]["std"] == pytest.approx(
        [s / 255 for s in cfg.model.data_preprocessor.std], abs=1e-6
    )
    # frames of both clips at other indices than the calibration's, preprocessed once
    frames = torch.cat([_input(_frames(clips["ucf101"], [27, 82, 136])),
                        _input(_frames(clips["pattern"], [8, 23, 38]))])  # fmt: skip
    ours = load_model(imported).eval()
    with torch.no_grad():
        our_logits = ours(frames)
        feats, kwargs = model.extract_feat(frames, test_mode=True)  # kwargs: num_segs = K
        their_logits = model.cls_head(feats, **kwargs)  # AvgConsensus over K, then fc_cls
        samples = model(frames, [ActionDataSample(), ActionDataSample()], mode="predict")
    their_probs = torch.stack([s.pred_score for s in samples])  # average_clips='prob'
    our_probs = our_logits.softmax(-1)
    # neither flat nor one-hot, and input-dependent: the comparison means something
    assert 0.05 < our_probs.max() < 0.9 and our_probs[0].argmax() != our_probs[1].argmax()
    logit_diff = (our_logits - their_logits).abs().max()
    prob_diff = (our_probs - their_probs).abs().max()
    print(f"\nmax |logit diff| {logit_diff:.3g} (logits up to {their_logits.abs().max():.3g}), "
          f"max |prob diff| {prob_diff:.3g}")  # fmt: skip
    assert (our_logits - their_logits).abs().max().item() < 1e-3
    assert (our_probs - their_probs).abs().max().item() < 1e-5


def _ispan_classify(video: Path, model: Path, k: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "ispan_cli", "classify", str(video), "--model", str(model),
         "--segments", str(k), "--topk", "5", "--format", "json", "--decoder", "pyav"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[0]


def _their_pipeline(cfg) -> list[dict]:
    return ref.single_view_pipeline(cfg.val_pipeline[1]["num_clips"], resize=256, crop=224)


@pytest.mark.parametrize("clip", ["ucf101", "pattern"])
def test_end_to_end_top5_through_each_tools_pipeline(reference, clip):
    """``ispan classify`` against MMAction2's init_recognizer + inference_recognizer on the same
    file: the same frame indices and the same top-1. The top-5 and the scores are printed, not
    held equal: ispan's decoder scales frames while converting them to RGB (swscale), MMAction2
    resizes them afterwards (cv2 bilinear), which moves pixels by about one level, and a network
    with random weights is far more sensitive to that than a trained one."""
    from mmaction.apis import inference_recognizer, init_recognizer
    from mmengine.dataset import Compose

    cfg, _, checkpoint, imported, classes, clips = reference
    video, pipeline = clips[clip], _their_pipeline(cfg)
    with ref.mmengine_loads_full_pickles():
        recognizer = init_recognizer(cfg, str(checkpoint), device="cpu")
    their_scores = inference_recognizer(recognizer, str(video), Compose(pipeline)).pred_score
    their_top5 = their_scores.topk(5).indices.tolist()

    k = cfg.val_pipeline[1]["num_clips"]  # the config's K = 3
    record = _ispan_classify(video, imported, k)
    assert record["frames"]["indices"] == ref.frame_indices(pipeline, video)
    our_top5 = [t["index"] for t in record["topk"]]
    assert our_top5[0] == their_top5[0], (our_top5, their_top5)
    assert record["topk"][0]["label"] == classes[their_top5[0]]
    ours = {t["index"]: t["score"] for t in record["topk"]}
    diff = max(abs(ours[i] - their_scores[i].item()) for i in our_top5)
    shared = len(set(our_top5) & set(their_top5))
    print(f"\n{clip}: frames {record['frames']['indices']}; top-5 ispan {our_top5}, mmaction2 "
          f"{their_top5} ({shared} shared); max |p_ispan - p_mmaction2| over ispan's top-5 "
          f"{diff:.3g}")  # fmt: skip


@pytest.mark.parametrize("clip", ["ucf101", "pattern"])
def test_the_preprocessing_on_the_same_decoded_frames(reference, clip):
    """MMAction2's test pipeline (Resize to 256, CenterCrop 224, its 0-255 normalisation) and
    ispan's one preprocessing definition on the same PyAV frames. Enlarging (the 320x240 UCF101
    clip), both resize bilinearly: the same tensor to float rounding, so the same
    probabilities. Shrinking (400x300), ispan averages areas (cv2.INTER_AREA, no aliasing) where
    MMAction2 stays bilinear: about a pixel level apart on average, by design."""
    from mmengine.dataset import Compose

    from ispan_cli.nn import load_model

    cfg, model, _, imported, _, clips = reference
    video, pipeline = clips[clip], _their_pipeline(cfg)
    packed = Compose(pipeline)({"filename": str(video), "label": -1, "start_index": 0,
                                "modality": "RGB"})  # fmt: skip
    batch = model.data_preprocessor({"inputs": [packed["inputs"]],
                                     "data_samples": [packed["data_samples"]]})  # fmt: skip
    theirs = batch["inputs"]  # (1, K, 3, 224, 224), normalised by MMAction2
    ours = _input(_frames(video, ref.frame_indices(pipeline, video)))
    std = torch.tensor(cfg.model.data_preprocessor.std).view(3, 1, 1)
    levels = ((ours - theirs) * std).abs()  # in 0-255 pixel levels
    print(f"\n{clip}: |ispan - mmaction2| input, pixel levels: mean {levels.mean():.3g}, "
          f"max {levels.max():.3g}")  # fmt: skip
    if clip == "pattern":
        assert 0 < levels.mean().item() < 2.0
        return
    assert levels.max().item() < 1e-3
    with torch.no_grad():
        our_probs = load_model(imported).eval()(ours).softmax(-1)
        samples = model(theirs, batch["data_samples"], mode="predict")
    assert (our_probs[0] - samples[0].pred_score).abs().max().item() < 1e-5
