"""Experiment trackers (``--log tensorboard,mlflow,wandb``): one small interface, one adapter per
tracker, each an optional extra (``pip install 'ispan[tensorboard]'``).

Only rank 0 logs. A tracker that fails mid-run (a server gone, a full disk) warns once and is
dropped: training never stops for it. A resumed run continues the same tracker run: each
adapter's run id travels in the checkpoint.

At each evaluation the trackers get, besides the scalars, the confusion matrix and the attention
overlays of a few fixed validation clips (:func:`attention_clips`), drawn by the report's code
(engine/report_images.py, itself ``ispan visualize``'s drawing). MLflow without ``--mlflow-uri``
or ``MLFLOW_TRACKING_URI`` writes to ``RUN/mlruns/mlflow.db`` (SQLite; MLflow 3 refuses a plain
folder store), its artifacts beside it: ``mlflow ui --backend-store-uri sqlite:///RUN/mlruns/
mlflow.db`` shows it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import Any, Protocol

from ispan_cli.errors import UsageError

log = logging.getLogger("ispan.train")

TRACKERS = ("tensorboard", "mlflow", "wandb")
# the import name each needs, and the extra that installs it
_NEEDS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
TB_DIR = "tb"
MLRUNS_DIR = "mlruns"  # the local MLflow store without --mlflow-uri: RUN/mlruns/mlflow.db
MLFLOW_DB = "mlflow.db"
# retries with backoff 2, 4, 8, 16 s; a request that hangs gives up after a minute
MLFLOW_PATIENCE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


def parse_trackers(text: str) -> tuple[str, ...]:
    """``"tensorboard,mlflow"`` as names, each checked."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise UsageError(
            f"--log {', '.join(unknown)}: not a tracker; choose from {', '.join(TRACKERS)}"
        )
    return names


def check_installed(names: tuple[str, ...]) -> None:
    """One line naming the extra for the first tracker whose package is missing."""
    for name in names:
        if importlib.util.find_spec(_NEEDS[name]) is None:
            raise UsageError(f"--log {name} needs the {name} package: pip install 'ispan[{name}]'")


class Tracker(Protocol):
    """What the training loop tells a tracker. ``run_id`` is what a resume hands back."""

    name: str
    run_id: str

    def params(self, config: dict[str, Any]) -> None: ...
    def metrics(self, values: dict[str, float], step: int) -> None: ...
    def image(self, tag: str, png: Path, step: int) -> None: ...
    def artifacts(self, folder: Path) -> None: ...
    def close(self) -> None: ...


class Trackers:
    """Every tracker of a run behind one call each; failures are contained (see module doc)."""

    def __init__(self, trackers: list[Tracker], warn) -> None:
        self.active = list(trackers)
        self._warn = warn  # called once per failed tracker with a line for the user
        self.seconds = 0.0  # spent inside the trackers: their overhead, measured

    def run_ids(self) -> dict[str, str]:
        return {t.name: t.run_id for t in self.active}

    def _each(self, method: str, *args: Any) -> None:
        start = time.perf_counter()
        try:
            self._call(method, *args)
        finally:
            self.seconds += time.perf_counter() - start

    def _call(self, method: str, *args: Any) -> None:
        for tracker in list(self.active):
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:  # a tracker must never stop training
                self.active.remove(tracker)
                first = _first_line(exc)
                log.warning("tracker %s failed (%s); training goes on without it", tracker.name,
                            first)  # fmt: skip
                self._warn(f"warning: {tracker.name} failed ({first}); training goes on without it")

    def params(self, config: dict[str, Any]) -> None:
        self._each("params", config)

    def metrics(self, values: dict[str, float], step: int) -> None:
        finite = {k: float(v) for k, v in values.items() if _number(v)}
        if finite:
            self._each("metrics", finite, step)

    def image(self, tag: str, png: Path, step: int) -> None:
        self._each("image", tag, png, step)

    def artifacts(self, folder: Path) -> None:
        self._each("artifacts", folder)

    def close(self) -> None:
        self._each("close")


def open_trackers(
    names: tuple[str, ...],
    out: Path,
    run_ids: dict[str, str],
    step: int,
    options: dict[str, Any],
    warn,
) -> Trackers:
    """The trackers ``names`` for the run folder ``out``; ``run_ids`` from the checkpoint when
    resuming (``step``: where the run resumes, so TensorBoard drops what came after it)."""
    made: list[Tracker] = []
    for name in names:
        factory = {"tensorboard": _TensorBoard, "mlflow": _MLflow, "wandb": _WandB}[name]
        try:
            made.append(factory(out, run_ids.get(name), step, options))
        except Exception as exc:  # one that cannot start (no server, a bad URI) is left out
            first = _first_line(exc)
            log.warning("tracker %s could not start (%s); training goes on without it", name,
                        first)  # fmt: skip
            warn(f"warning: {name} could not start ({first}); training goes on without it")
    return Trackers(made, warn)


def epoch_values(row: dict[str, Any]) -> dict[str, Any]:
    """An epoch's metrics row under tracker names: ``val_top1`` -> ``val/top1``, ``train_loss``
    -> ``train_epoch/loss`` (``train/`` holds the step-level values), others under ``epoch/``."""
    values = {}
    for key, value in row.items():
        if key in ("epoch", "step"):
            continue
        for prefix, group in (("val_", "val/"), ("train_", "train_epoch/")):
            if key.startswith(prefix):
                values[group + key.removeprefix(prefix)] = value
                break
        else:
            values[f"epoch/{key}"] = value
    return values


ATTENTION_CLIPS = 3  # fixed validation clips whose attention overlays go to the trackers


def attention_clips(items, classes: tuple[str, ...] | list[str], n: int = ATTENTION_CLIPS):
    """The validation clips whose attention the trackers show at each evaluation: the first
    video of each of the first ``n`` classes that have one (``items``: VideoItems), so every
    evaluation, and a resumed run, shows the same clips."""
    from ispan_cli.engine.report_images import Video

    chosen: dict[int, Any] = {}
    for item in items:
        if item.label not in chosen:
            chosen[item.label] = Video(item.path, classes[item.label])
    return [chosen[label] for label in sorted(chosen)][:n]


def attention_images(model, spec, device, videos, reading) -> list[tuple[str, bytes]]:
    """(caption, JPEG) of each video: its K frames with the fused attention of ``model`` (in
    memory, as it is now) drawn as the report and ``ispan visualize`` draw it
    (:func:`ispan_cli.engine.report_images.attention_clip`). A video that cannot be drawn is
    left out. The model is left in eval mode."""
    from ispan_cli.engine.report_images import attention_clip
    from ispan_cli.identity import ModelIdentity
    from ispan_cli.viz.runner import torch_runner

    identity = ModelIdentity("training run", None, "", "registry")
    runner = torch_runner(model, identity, spec, device)
    pictures = [attention_clip(runner, video, reading) for video in videos]
    return [(p.caption, p.jpeg) for p in pictures if p.jpeg is not None]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _number(v: Any) -> bool:
    import math

    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class _TensorBoard:
    name = "tensorboard"

    def __init__(self, out: Path, run_id: str | None, step: int, options: dict[str, Any]):
        from torch.utils.tensorboard import SummaryWriter

        self.run_id = str(out / TB_DIR)
        # purge_step: a resumed run rewrites the steps after its checkpoint's; TensorBoard drops
        # the old events from there on
        self.writer = SummaryWriter(self.run_id, purge_step=step + 1 if run_id else None)

    def params(self, config: dict[str, Any]) -> None:
        import json

        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```", 0)

    def metrics(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def image(self, tag: str, png: Path, step: int) -> None:
        import numpy as np
        from PIL import Image

        pixels = np.asarray(Image.open(png).convert("RGB"))
        self.writer.add_image(tag, pixels, step, dataformats="HWC")
        self.writer.flush()

    def artifacts(self, folder: Path) -> None:
        pass  # the run folder is TensorBoard's own; nothing to upload

    def close(self) -> None:
        self.writer.close()


class _MLflow:
    name = "mlflow"

    def __init__(self, out: Path, run_id: str | None, step: int, options: dict[str, Any]):
        # a server gone must not hold training for MLflow's default ~4 minutes of retries per
        # call before the tracker is dropped: about 30 s, unless the user set these
        for name, value in MLFLOW_PATIENCE.items():
            os.environ.setdefault(name, value)
        from mlflow.tracking import MlflowClient

        # MLflow's own INFO lines ("Creating initial MLflow database tables...") on stderr would
        # break --quiet and the progress display; its warnings and errors still show
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        uri = options.get("mlflow_uri") or os.environ.get("MLFLOW_TRACKING_URI")
        artifacts = None
        if not uri:  # a store of the run's own; MLflow 3 refuses a plain folder, so SQLite
            store = (out / MLRUNS_DIR).resolve()
            store.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{store / MLFLOW_DB}"
            artifacts = (store / "artifacts").as_uri()
        self.client = MlflowClient(tracking_uri=uri)
        if run_id is None:
            experiment = options.get("experiment") or "ispan"
            found = self.client.get_experiment_by_name(experiment)
            exp_id = (
                found.experiment_id
                if found
                else self.client.create_experiment(experiment, artifact_location=artifacts)
            )
            run = self.client.create_run(exp_id, run_name=options.get("run_name") or out.name)
            run_id = run.info.run_id
        else:  # the resumed run goes on in the same MLflow run, running again
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id

    def params(self, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, str(v)[:500]) for k, v in config.items() if k != "origins"]
        existing = self.client.get_run(self.run_id).data.params
        new = [p for p in params if p.key not in existing]  # a resume: params are write-once
        if new:
            self.client.log_batch(self.run_id, params=new)

    def metrics(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k.replace("/", "_"), v, now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def image(self, tag: str, png: Path, step: int) -> None:
        self.client.log_artifact(self.run_id, str(png), artifact_path=f"images/{step}")

    def artifacts(self, folder: Path) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path=folder.name)

    def close(self) -> None:
        import contextlib
        import io

        said = io.StringIO()  # MLflow writes the run's web address to stdout: the log's, here
        with contextlib.redirect_stdout(said):
            self.client.set_terminated(self.run_id)
        for line in said.getvalue().splitlines():
            log.info("mlflow: %s", line.strip())


class _WandB:
    name = "wandb"

    def __init__(self, out: Path, run_id: str | None, step: int, options: dict[str, Any]):
        import wandb  # offline mode: WANDB_MODE=offline, honoured by wandb itself

        self.wandb = wandb
        self.run = wandb.init(
            project=options.get("experiment") or "ispan",
            name=options.get("run_name") or out.name,
            dir=str(out),
            id=run_id,
            resume="allow" if run_id else None,
        )
        self.run_id = self.run.id

    def params(self, config: dict[str, Any]) -> None:
        self.run.config.update(config, allow_val_change=True)

    def metrics(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def image(self, tag: str, png: Path, step: int) -> None:
        self.run.log({tag: self.wandb.Image(str(png))}, step=step)

    def artifacts(self, folder: Path) -> None:
        artifact = self.wandb.Artifact(f"{self.run.id}-{folder.name}", type="model")
        artifact.add_dir(str(folder))
        self.run.log_artifact(artifact)

    def close(self) -> None:
        self.run.finish()
