"""The training loop: data, model, optimizer, DDP, checkpoints, evaluation and exports.

One function, :func:`train`, runs in every process of a run (a single process, or each worker
started by torchrun, SLURM or :func:`ispan_cli.engine.launch.launch_training`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ispan_cli.data import load_dataset
from ispan_cli.data.catalog import check_training_classes
from ispan_cli.data.clips import ClipSettings, GlobalBatchSampler, collate
from ispan_cli.data.flow_clips import clips_for, flow_spec_for, with_flow
from ispan_cli.data.skips import RunSkips, write_summary
from ispan_cli.engine import checkpoint as ckpt
from ispan_cli.engine.config import TrainConfig
from ispan_cli.engine.distributed import (
    World,
    all_gather_objects,
    all_reduce_sum,
    setup_world,
    teardown,
)
from ispan_cli.engine.events import Reporter, TrainEvent
from ispan_cli.engine.export import export_best, write_card
from ispan_cli.engine.html_report import RUN_CONFUSION_CSV, write_confusion_csv, write_report
from ispan_cli.engine.init_from import InitReport, freeze, frozen_modules, init_from
from ispan_cli.engine.metrics import video_loss, video_metrics
from ispan_cli.engine.optim import freeze_partial_bn, make_optimizer, make_scheduler
from ispan_cli.engine.precise_bn import recompute_bn_stats
from ispan_cli.engine.recipes import describe as describe_recipe
from ispan_cli.engine.report import plot_curves, write_metrics
from ispan_cli.engine.report_images import Reading
from ispan_cli.engine.scoring import score_videos
from ispan_cli.engine.stopping import Budget, Monitor, StopSignals
from ispan_cli.engine.tracker_images import EvaluationImages
from ispan_cli.engine.trackers import (
    Trackers,
    check_installed,
    epoch_values,
    open_trackers,
    parse_trackers,
)
from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.video.preprocess import default_spec

log = logging.getLogger("ispan.train")
RUN_LOG = "train.log"
BEST_MODEL = "best"
TRACK_EVERY = 5  # steps between the trackers' step-level scalars


@dataclass(frozen=True)
class TrainResult:
    output: Path
    best_model: Path
    best_top1: float
    history: list[dict[str, Any]]
    skipped_videos: int
    resumed: bool
    skipped: dict[str, Any] = field(default_factory=dict)  # SkipReport.to_dict()
    stopped: str = ""  # why the run ended before its last epoch; "" when it ran them all
    resumable: bool = False  # stopped by the time limit or a signal: the same command continues


def train(
    cfg: TrainConfig, report: Reporter | None = None, resume: bool | None = None
) -> TrainResult:
    """Trains as ``cfg`` says, in this process's place of the process group (if any).

    resume: None resumes automatically when ``cfg.output`` holds a run; True requires one;
    False refuses to touch an existing run.
    """
    world = setup_world(cfg.device)
    try:
        run = _Run(cfg, world, report if world.main else None, resume)
        with run.signals.installed():
            return run.run()
    finally:
        teardown()


class _Run:
    def __init__(
        self, cfg: TrainConfig, world: World, report: Reporter | None, resume: bool | None
    ) -> None:
        self.cfg, self.world, self.report, self.resume = cfg, world, report, resume
        self.out = Path(cfg.output)
        # every listed video the run does not use, and why
        self.skips = RunSkips(cfg.max_skipped, self._message, self._warn, log, RUN_LOG)
        self.budget = Budget(cfg.time_limit_s)  # counted from here: the data check counts too
        self.signals = StopSignals()
        self.monitor = Monitor(cfg.monitor)
        self.stopped, self.resumable = "", False
        self.init: InitReport | None = None  # what --init-from loaded

    # -- setup -----------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        # first: a resume may give the run its own recipe values, which the model is built with
        state, self.cfg = ckpt.resume_state(self.out, self.cfg, self.resume)
        cfg, world = self.cfg, self.world
        self.tracker_names = parse_trackers(cfg.log) if world.main else ()
        check_installed(self.tracker_names)  # before any work: a missing extra is one line
        if world.main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._log_to_file()
        _determinism(cfg)
        torch.manual_seed(cfg.seed)
        self.data = load_dataset(
            cfg.dataset, cfg.data_root, cfg.split, (cfg.synthetic_train, cfg.synthetic_val)
        )
        warning = check_training_classes(self.data, cfg.dataset, cfg.data_root)
        if warning:
            self._message(warning)
        overrides = {
            "dropout": cfg.dropout,
            "beta": cfg.beta,
            "gamma": cfg.gamma,
            "interaction_loss": cfg.interaction_loss,
            "diversity_loss": cfg.diversity_loss,
            "output_norm": cfg.output_norm,
            "num_segments": cfg.segments,
        }
        if cfg.input_size:
            overrides["input_size"] = cfg.input_size
        from ispan_cli.nn import create_model

        # the weights come from the resumed state, or from --init-from
        pretrained = "none" if state is not None or cfg.init_from else cfg.pretrained
        # --modality flow: the flow the model trains on says how it was made (its FlowSpec)
        self.flow = flow_spec_for(cfg, self.data)
        self.model = create_model(
            cfg.arch, labels=self.data.classes, pretrained=pretrained, modality=cfg.modality,
            flow_length=cfg.flow_length, **overrides,
        )  # fmt: skip
        self.frozen = frozen_modules(self.model, cfg.freeze_backbone)
        if cfg.init_from and state is None:
            self.init = init_from(self.model, cfg.init_from, self.data.classes)
            self._message(self.init.describe())
            if world.main:  # every tensor by name, for whoever wants to check
                log.info("--init-from in full: %s", json.dumps(self.init.to_dict()))
        self.spec = default_spec(self.model.config)
        self._check_data()  # before any training step: a split that lost too much stops here
        self.model.to(world.device)
        if world.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        self._freeze_bn()  # also marks the frozen parameters for the optimizer
        self.net = self.model
        if world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            if world.device.type == "cuda":  # one set of batch statistics across the GPUs
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
                self.net = self.model

            ids = [world.device.index] if world.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        settings = ClipSettings(
            cfg.segments, self.spec, True, cfg.seed, cfg.decoder, cfg.flip, synthetic_seed=cfg.split
        )
        settings = with_flow(settings, self.flow, cfg.flow_root, cfg.data_root)
        self.train_data = clips_for(self.data.train, settings)
        self.sampler = GlobalBatchSampler(
            len(self.data.train), cfg.batch_size, world.rank, world.size, cfg.seed
        )
        self.steps = self.sampler.steps()
        if cfg.amp == "fp16" and world.device.type != "cuda":
            raise UsageError("--amp fp16 needs a GPU; use --amp bf16 or off on the CPU")
        self.amp = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.amp]
        if cfg.lr_find and state is None:
            self._lr_find()
            cfg = self.cfg
        self._message(describe_recipe(cfg))
        self.optimizer = make_optimizer(self.model, cfg)
        self.scheduler = make_scheduler(self.optimizer, cfg, self.steps)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16")
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best = -math.inf  # validation top-1 of the best model (chosen by --monitor)
        self.history: list[dict[str, Any]] = []
        self.partial = _zero_sums()
        if state is not None:
            ckpt.restore(self, state)
            if self.epoch >= cfg.epochs:  # was "resumed ... at epoch 3" of a 2-epoch run
                self._message(
                    f"{self.out} holds a finished run (--epochs {cfg.epochs}, {self.epoch} "
                    "done): nothing to train, best/ stays as it is; raise --epochs to train "
                    "on, or give another --output"
                )
            else:
                self._message(
                    f"resumed from {ckpt.state_path(self.out)} at epoch {self.epoch + 1}, step "
                    f"{self.step_in_epoch}/{self.steps}"
                )
        self.trackers = Trackers([], self._warn)
        self._images: EvaluationImages | None = None  # the trackers' pictures, once evaluated
        if self.tracker_names:
            ids = ckpt.tracker_ids(state)
            options = {"mlflow_uri": cfg.mlflow_uri, "experiment": cfg.experiment,
                       "run_name": cfg.run_name}  # fmt: skip
            try:
                self.trackers = open_trackers(
                    self.tracker_names, self.out, ids, self.global_step, options, self._warn
                )
            except Exception as exc:  # a tracker that cannot start does not stop training
                self._warn(f"warning: --log {cfg.log}: could not start ({exc}); training without")
            self.trackers.params(self.cfg.to_dict())
        try:
            return self._loop(resumed=state is not None)
        finally:
            self.trackers.close()

    # -- the loop --------------------------------------------------------------------------------
    def _loop(self, resumed: bool) -> TrainResult:
        cfg, world = self.cfg, self.world
        self._emit(
            "start",
            data={
                "epochs": cfg.epochs,
                "steps": self.steps,
                "start_epoch": self.epoch,
                "start_step": self.step_in_epoch,
                "world": world.size,
                "device": str(world.device),
                "train_videos": len(self.data.train),
                "val_videos": len(self.data.test),
                "resumed": resumed,
            },
        )
        from ispan_cli.data.loader import data_loader

        while self.epoch < cfg.epochs and not self._finished():
            epoch = self.epoch
            self.sampler.set_epoch(epoch, self.step_in_epoch)
            loader = data_loader(
                self.train_data,
                batch_sampler=self.sampler,
                num_workers=cfg.workers,
                collate_fn=collate,
                pin_memory=world.device.type == "cuda",
                # the loader's own generator: creating an iterator must not consume the global
                # RNG, or a resumed run would draw different dropout masks
                generator=torch.Generator().manual_seed(cfg.seed + epoch),
            )
            self.net.train()
            self._freeze_bn()
            t_epoch = time.perf_counter()
            tracked = self.trackers.seconds
            wait = compute = 0.0
            t0 = time.perf_counter()
            for batch in loader:
                t1 = time.perf_counter()
                self._train_step(batch)
                t2 = time.perf_counter()
                wait += t1 - t0
                compute += t2 - t1
                self.budget.record("step", t2 - t0)
                t0 = t2
                self.step_in_epoch += 1
                self.global_step += 1
                if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0:
                    self._save_last()
                if cfg.max_steps and self.global_step >= cfg.max_steps:
                    break  # the epoch ends here: evaluated and exported as the run's last
                if self._interrupted(last_step=self.step_in_epoch == self.steps):
                    break
            if self.stopped:
                self._save_last()  # mid-epoch: the partial sums travel with it
                break
            row = self._end_epoch(epoch, time.perf_counter() - t_epoch, wait, compute)
            if self.tracker_names:  # the trackers' share of step time, measured in the steps
                row["tracker_share"] = (self.trackers.seconds - tracked) / max(wait + compute, 1e-9)
            self._track_epoch(row)  # before the row is written: it adds its own time
            self.epoch, self.step_in_epoch = epoch + 1, 0
            self.partial = _zero_sums()
            self.history.append(row)
            if world.main:
                write_metrics(self.out, self.history)
                write_summary(self.out, self.skips.report, cfg.segments, cfg.decoder)
            self._save_last()
            if self.improved:
                self._save_last(best=True)
            self._emit("epoch", epoch=epoch, data=row)
        if not self.stopped:
            self.stopped = self._stop_reason()
        if world.main:
            plot_curves(self.out, self.history)
            if not (self.out / BEST_MODEL / "model.safetensors").is_file():
                if not self.resumable:
                    self._export(self.history[-1] if self.history else {})
            elif self.stopped:
                self._write_card()
        best = self.out / BEST_MODEL
        if world.main and best.is_dir() and not self.resumable:
            self.trackers.artifacts(best)
        if world.main and self.history:
            write_report(self.out)
        if self.stopped and world.main:  # the command says it on the terminal
            log.info("stopped: %s", self.stopped)
        self._emit(
            "done",
            data={"best_model": str(best), "best_top1": self.best, "stopped": self.stopped},
        )
        return TrainResult(
            self.out,
            best,
            self.best,
            self.history,
            len(self.skips.report.skipped),
            resumed,
            self.skips.report.to_dict(),
            self.stopped,
            self.resumable,
        )

    def _lr_find(self) -> None:
        """--lr auto: the range test (engine/lr_find.py) on the training data."""
        from ispan_cli.engine import lr_find

        def forward(batch: dict[str, Any]) -> tuple[torch.Tensor, bool]:
            loss, _, _, _, _, empty = self._forward(batch)
            return loss, empty

        def train_mode() -> None:
            self.net.train()
            self._freeze_bn()

        def shown(done: int, loss: float, lr: float) -> None:
            self._emit("step", step=done, steps=lr_find.STEPS, data={"loss": loss, "lr": lr})

        test = lr_find.find_lr(
            self.model, self.net, self.cfg, self.train_data, self.world, forward, train_mode, shown
        )
        if self.world.main:
            lr_find.plot(self.out / lr_find.LR_FIND_PNG, test)
        self.cfg = self.cfg.replace(lr=test.chosen)
        self._message(test.describe())

    def _forward(self, batch: dict[str, Any]):
        """(loss, cross-entropy, auxiliary loss, logits, labels, empty) of a training batch."""
        device = self.world.device
        for index, message in batch["failed"]:
            self.skips.fail(self.data.train[index].path, message)
        clips = batch["clips"]
        empty = clips is None
        if empty:  # every video of this rank's share failed: a zero-weight step keeps DDP in step
            s, c = self.spec.crop, self.model.config.in_channels
            clips = torch.zeros(1, self.cfg.segments, c, s, s)
            labels = torch.zeros(1, dtype=torch.long)
        else:
            labels = batch["labels"]
        clips = clips.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        autocast = (
            torch.autocast(device.type, dtype=self.amp) if self.amp is not None else nullcontext()
        )
        with autocast:
            logits = self.net(clips)  # (B, K, 3, S, S) -> (B, C)
            ce = F.cross_entropy(logits.float(), labels)
            aux = self.model.auxiliary_loss().float()
            loss = ce + aux
        if empty:
            loss = loss * 0.0
        return loss, ce, aux, logits, labels, empty

    def _train_step(self, batch: dict[str, Any]) -> None:
        loss, ce, aux, logits, labels, empty = self._forward(batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.trackers.active and (self.global_step + 1) % TRACK_EVERY == 0 and not empty:
            lrs = self.scheduler.get_last_lr()
            values = {"train/loss": float(loss.detach()), "train/ce": float(ce.detach()),
                      "lr/main": lrs[0], "lr/attention": lrs[2]}  # fmt: skip
            values.update(
                {
                    f"train/aux_{k}": float(v.detach())
                    for k, v in self.model.auxiliary_losses().items()
                }
            )
            self.trackers.metrics(values, self.global_step + 1)
        if not empty:
            n = len(labels)
            p = self.partial
            p["loss"] += float(loss.detach()) * n
            p["ce"] += float(ce.detach()) * n
            p["aux"] += float(aux.detach()) * n
            p["correct"] += float((logits.argmax(1) == labels).sum())
            p["count"] += n
            if self.report is not None:
                self._emit(
                    "step",
                    step=self.step_in_epoch + 1,
                    steps=self.steps,
                    data={"loss": float(loss.detach()), "lr": self.scheduler.get_last_lr()[0]},
                )

    def _end_epoch(self, epoch: int, seconds: float, wait: float, compute: float) -> dict[str, Any]:
        cfg = self.cfg
        p = self.partial
        totals = all_reduce_sum(
            [p["loss"], p["ce"], p["aux"], p["correct"], p["count"]], self.world
        )
        count = max(totals[4], 1.0)
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": self.global_step,
            "lr": self.scheduler.get_last_lr()[0],
            "train_loss": totals[0] / count,
            "train_ce": totals[1] / count,
            "train_aux": totals[2] / count,
            "train_top1": totals[3] / count,
            "train_clips": int(totals[4]),
            "epoch_s": seconds,
            "clips_per_s": totals[4] / seconds if seconds > 0 else float("nan"),
            "data_wait_share": wait / (wait + compute) if wait + compute > 0 else float("nan"),
        }
        row.update(
            val_videos=0, val_top1=float("nan"), val_top5=float("nan"), val_mean_class=float("nan")
        )
        last = epoch + 1 == cfg.epochs or self._finished()
        if self.data.test and ((epoch + 1) % cfg.eval_every == 0 or last):
            t0 = time.perf_counter()
            self._precise_bn(epoch)
            row.update(self._evaluate(epoch))
            self.budget.record("eval", time.perf_counter() - t0)
        row["skipped_videos"] = len(self.skips.report.skipped)
        self.improved = self.monitor.update(row)
        if self.improved:
            self.best = row["val_top1"]
            if self.world.main:
                self._export(row)
                write_confusion_csv(
                    self.out / RUN_CONFUSION_CSV, self._confusion[1], self.data.classes
                )
        return row

    def _precise_bn(self, epoch: int) -> None:
        if not self.cfg.precise_bn:
            return
        from ispan_cli.data.loader import data_loader

        # a fixed set of training clips (the order of a far-away epoch), the same in every run
        sampler = GlobalBatchSampler(
            len(self.data.train),
            self.cfg.batch_size,
            self.world.rank,
            self.world.size,
            self.cfg.seed + 1,
        )
        sampler.set_epoch(epoch)
        loader = data_loader(
            self.train_data,
            batch_sampler=sampler,
            num_workers=self.cfg.workers,
            collate_fn=collate,
            generator=torch.Generator().manual_seed(0),
        )
        limit = min(self.cfg.precise_bn, sampler.steps())

        def batches():
            for i, batch in enumerate(loader):
                if i >= limit:
                    break
                if batch["clips"] is not None:
                    yield batch["clips"].to(self.world.device)

        self.net.train()
        self._freeze_bn()
        recompute_bn_stats(self.model, batches(), self.world)

    def _track_epoch(self, row: dict[str, Any]) -> None:
        """An epoch's metrics (and, when it was evaluated, the confusion matrix and attention
        overlays, within their share of the run) to the trackers, at the epoch's last step. The
        time it takes, drawing included, goes into the row as ``tracker_eval_s``."""
        if not self.trackers.active:
            return
        start = time.perf_counter()
        self.trackers.metrics(epoch_values(row), row["step"])
        confusion = getattr(self, "_confusion", None)
        if self._images is None:
            reading = Reading(synthetic_seed=self.cfg.split, decoder=self.cfg.decoder)
            self._images = EvaluationImages(
                self.trackers, self.data.test, self.data.classes, reading, self._warn
            )
        evaluated = confusion is not None and confusion[0] == row["epoch"]
        if evaluated and self._images.due(last=row["epoch"] >= self.cfg.epochs):
            # istpan models on RGB frames: a flow stream attends over flow stacks
            draws = self.model.attention is not None and self.flow is None
            attention = (self.model, self.spec, self.world.device) if draws else None
            self._images.log(row["step"], confusion[1], attention)
        row["tracker_eval_s"] = time.perf_counter() - start

    def _warn(self, text: str) -> None:
        self._emit("message", data={"text": text})

    def _evaluate(self, epoch: int) -> dict[str, Any]:
        cfg = self.cfg
        settings = ClipSettings(
            cfg.segments, self.spec, False, cfg.seed, cfg.decoder, synthetic_seed=cfg.split
        )
        settings = with_flow(settings, self.flow, cfg.flow_root, cfg.data_root)
        total = len(self.data.test)

        def progress(done: int, mine: int) -> None:
            self._emit("eval", epoch=epoch, step=done, steps=mine)

        scores = score_videos(
            self.model,
            self.data.test,
            settings,
            max(cfg.batch_size // self.world.size, 1),
            self.world,
            cfg.workers,
            self.amp,
            progress,
        )
        for index, message in scores.failed:
            self.skips.fail(self.data.test[index].path, message)
        m = video_metrics(scores.logits, scores.labels, len(self.data.classes))
        if m.videos == 0 and total:
            raise ISpanError(f"none of the {total} validation videos could be read; see {RUN_LOG}")
        self._confusion = (epoch + 1, m.confusion)  # for the trackers' image
        return {
            "val_videos": m.videos,
            "val_top1": m.top1,
            "val_top5": m.top5,
            "val_mean_class": m.mean_class,
            "val_loss": video_loss(scores.logits, scores.labels),
        }

    def _freeze_bn(self) -> None:
        if self.cfg.frozen_bn or self.cfg.use_partial_bn:
            freeze_partial_bn(self.model, all_layers=self.cfg.frozen_bn)
        freeze(self.frozen)  # --freeze-backbone: parameters and BN statistics

    # -- outputs ---------------------------------------------------------------------------------
    def _export(self, row: dict[str, Any]) -> None:
        export_best(
            self.model, self.out / BEST_MODEL, self.cfg, self.data, self.spec, row,
            self.skips.report, self._notes(), flow=self.flow,
        )  # fmt: skip

    def _write_card(self) -> None:
        """The best model's card again, now that the run knows why it stopped."""
        rows = [r for r in self.history if r["epoch"] == self.monitor.best_epoch]
        if rows:
            write_card(self.out / BEST_MODEL, self.cfg, self.data, rows[0], self.skips.report,
                       self._notes())  # fmt: skip

    def _notes(self) -> dict[str, str]:
        notes = {"Recipe": describe_recipe(self.cfg)}
        if self.init is not None:
            notes["Initialised from"] = self.init.describe()
        if self.cfg.freeze_backbone:
            what = self.cfg.freeze_backbone
            held = "the whole backbone" if what == "all" else f"the backbone up to {what}"
            notes["Frozen"] = f"{held} held still (--freeze-backbone {what})"
        if self.stopped:
            notes["Why training stopped"] = self.stopped
        return notes

    # -- stopping --------------------------------------------------------------------------------
    def _finished(self) -> bool:
        """The run is over before its last epoch: --max-steps reached or --patience spent."""
        cfg = self.cfg
        return bool(cfg.max_steps and self.global_step >= cfg.max_steps) or (
            self.monitor.exhausted(cfg.patience)
        )

    def _stop_reason(self) -> str:
        cfg, m = self.cfg, self.monitor
        if m.exhausted(cfg.patience):
            return (
                f"early stopping: validation {m.name} did not improve in {cfg.patience} "
                f"evaluation(s) after epoch {m.best_epoch} (best {m.best_value:.4g}), at epoch "
                f"{self.epoch} of {cfg.epochs}"
            )
        if cfg.max_steps and self.global_step >= cfg.max_steps and self.epoch < cfg.epochs:
            return f"--max-steps {cfg.max_steps} reached in epoch {self.epoch} of {cfg.epochs}"
        return ""

    def _interrupted(self, last_step: bool) -> bool:
        """At a step boundary: stop here when a stop signal came or the time left would not
        hold another step (or, after an epoch's last step, its evaluation) and a checkpoint.
        Every process decides the same (the reasons are summed across the group)."""
        signalled = self.signals.received
        kinds = ("step", "eval") if last_step else ("step",)
        late = not self.budget.room_for(*kinds)
        if self.world.distributed:
            signalled_n, late_n = all_reduce_sum([float(bool(signalled)), float(late)], self.world)
            signalled = signalled or ("a stop signal" if signalled_n else None)
            late = late_n > 0
        if not (signalled or late):
            return False
        why = f"{signalled} received" if signalled else f"--time-limit {self.cfg.time_limit}"
        self.stopped = (
            f"{why}: stopped at epoch {self.epoch + 1}, step {self.step_in_epoch}/{self.steps} "
            f"with a checkpoint; run the same command to resume"
        )
        self.resumable = True
        return True

    def _save_last(self, best: bool = False) -> None:
        if not self.world.main:
            return
        state = ckpt.run_state(self)
        t0 = time.perf_counter()
        ckpt.save_state(state, ckpt.state_path(self.out, best))
        self.budget.record("checkpoint", time.perf_counter() - t0)

    def _check_data(self) -> None:
        """Every listed video checked once before training (data/skips.py)."""
        cfg = self.cfg
        self.data = self.skips.check(
            self.data, f"{cfg.dataset} split {cfg.split}", cfg.segments, cfg.decoder,
            self.spec.resize, cfg.workers, self.out, self.world.main,
            lambda obj: all_gather_objects(obj, self.world),
            lambda done, total: self._emit("check", step=done, steps=total),
        )  # fmt: skip

    def _message(self, text: str) -> None:
        if self.world.main:
            log.info(text)
        self._emit("message", data={"text": text})

    def _emit(self, kind: str, **fields: Any) -> None:
        if self.report is not None:
            self.report(TrainEvent(kind, **fields))  # type: ignore[arg-type]

    def _log_to_file(self) -> None:
        path = str((self.out / RUN_LOG).resolve())
        if not any(getattr(h, "baseFilename", None) == path for h in log.handlers):
            handler = logging.FileHandler(path)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
            log.propagate = False


def _zero_sums() -> dict[str, float]:
    return {"loss": 0.0, "ce": 0.0, "aux": 0.0, "correct": 0.0, "count": 0.0}


def _determinism(cfg: TrainConfig) -> None:
    if not cfg.deterministic:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
