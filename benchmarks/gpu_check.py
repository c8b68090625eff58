"""GPU validation in one command, for the rare session that is lent a GPU machine (issue 19).

    python3 benchmarks/gpu_check.py [--out DIR] [--wheels .whl] [--dry-run] [--budget 480]

Runs, each step in a subprocess with its own time limit, every step recorded even when an
earlier one failed:
  environment   torch/CUDA/device/cores, PyAV, ONNX Runtime providers
  pytest-gpu    pytest -m gpu over the test files that have gpu tests
  doctor        ispan doctor --format json
  benchmark     ispan benchmark istpan_resnet50 on generated UCF-like AVIs, torch fp32 and bf16
                and ONNX Runtime (TensorRT, then CUDA): model and end-to-end videos/s, and
                decode-only videos/s (the bound; one decode worker per core)
  train         benchmarks/train.py: fp32 vs bf16 + channels_last, istpan_resnet50 at 224, K=8
                (target 1.8x), with the data-wait share
  nccl          a 1-process `ispan train --gpus 1` run (NCCL)
  flow          RAFT (raft_large) flows/s at 320x240 and 224x224 in chunks of 16 frames, and
                `flow extract` frames/s with it (random weights when torchvision's are absent)
Writes DIR/gpu_check.json (every figure) and prints a summary table. DIR: --out, else $OUT,
else ./gpu_check_out.

On the GPU machine ispan is used from this checkout (PYTHONPATH), and packages missing there
(PyAV) are installed from --wheels. Prepare them here first (the machine reaches no registry):

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        -d .whl av==18.1.0

then run there with `carry: [".whl"]`: `python3 benchmarks/gpu_check.py --wheels .whl`.
onnxruntime-gpu (about 300 MB) is over what a call may carry (64 MiB), so ONNX Runtime runs
with whatever build the machine has; the summary's note column names the provider used.

--dry-run does the same steps with tiny sizes on the CPU (CUDA-only steps report "skipped"):
tests/test_gpu_check.py runs it so the script cannot rot between GPU sessions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _env(extra_path: str | None) -> dict[str, str]:
    paths = [str(ROOT)] + ([extra_path] if extra_path else [])
    old = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths + ([old] if old else [])),
        "PYTHONUNBUFFERED": "1",
    }


def _run(cmd: list[str], env: dict, timeout: float) -> tuple[int, str, str]:
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=max(timeout, 1)
        )
    except subprocess.TimeoutExpired as exc:
        return 124, _text(exc.stdout), _text(exc.stderr) + f"\n(timed out after {timeout:.0f} s)"
    return done.returncode, done.stdout, done.stderr


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _json_out(stdout: str):
    """The last JSON document a command printed (benchmarks print one at the end)."""
    start = stdout.find("{")
    return json.loads(stdout[start:]) if start >= 0 else None


def install_missing(wheels: Path | None) -> tuple[str | None, str]:
    """Installs the wheels when PyAV is missing; returns (folder to add to the path, note)."""
    try:
        import av  # noqa: F401

        return None, "PyAV already installed"
    except ImportError:
        pass
    if wheels is None or not any(wheels.glob("*.whl")):
        return None, "PyAV is missing and no wheels were given (--wheels)"
    target = Path(tempfile.gettempdir()) / "ispan-gpu-site"
    found = sorted(map(str, wheels.glob("*.whl")))
    cmd = [PY, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--upgrade", "--target", str(target), *found]  # fmt: skip
    code, _out, err = _run(cmd, dict(os.environ), 300)
    if code:
        return None, f"pip install of {wheels} failed: {_tail(err, 3)}"
    return str(target), f"installed {len(list(wheels.glob('*.whl')))} wheel(s) into {target}"


# -- steps: each returns (status, figures, note) ------------------------------------------------
def step_environment(ctx):
    code = (
        "import json, os, torch\n"
        "out = {'torch': torch.__version__, 'cuda': torch.cuda.is_available(),\n"
        "       'cores': len(os.sched_getaffinity(0))}\n"
        "if out['cuda']:\n"
        "    out['device'] = torch.cuda.get_device_name(0)\n"
        "    out['memory_gib'] = round(torch.cuda.get_device_properties(0).total_memory/2**30,1)\n"
        "try:\n"
        "    import av; out['pyav'] = av.__version__\n"
        "except ImportError as e: out['pyav'] = None\n"
        "try:\n"
        "    import onnxruntime as ort; out['onnxruntime'] = ort.__version__\n"
        "    out['ort_providers'] = ort.get_available_providers()\n"
        "except ImportError: out['onnxruntime'] = None\n"
        "print(json.dumps(out))\n"
    )
    rc, out, err = _run([PY, "-c", code], ctx["env"], 120)
    if rc:
        return "failed", {}, _tail(err)
    figures = json.loads(out)
    ctx["cuda"] = figures["cuda"]
    ctx["cores"] = figures["cores"]
    return "ok", figures, ""


def step_pytest_gpu(ctx):
    files = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("test_*.py")
        if "mark.gpu" in p.read_text(errors="replace") and p.name != "test_gpu_check.py"
    )
    cmd = [PY, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *files]
    rc, out, err = _run(cmd, ctx["env"], ctx["limit"](240))
    summary = _tail(out, 1)
    status = "ok" if rc in (0, 5) else "failed"  # 5: every gpu test deselected or skipped
    return status, {"files": files, "summary": summary}, "" if status == "ok" else _tail(out + err)


def step_doctor(ctx):
    rc, out, err = _run([PY, "-m", "ispan_cli", "doctor", "--format", "json"], ctx["env"], 180)
    doc = _json_out(out) if out.strip() else None
    # exit 1 only means a required part is broken; the report says which
    return ("ok" if rc == 0 else "failed"), {"report": doc}, _tail(err) if rc else ""


def _videos(ctx) -> list[Path]:
    """UCF-like AVIs (MPEG-4 part 2, 320x240, 25 fps): one encoded, copied N times (decoding
    cost is the same, and encoding hundreds would eat the time budget)."""
    if "videos" in ctx:
        return ctx["videos"]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from synth_videos import encode

    folder = Path(tempfile.mkdtemp(prefix="ispan-gpu-videos-"))
    seconds, count = (1.0, 4) if ctx["dry"] else (7.0, 256)
    first = encode(folder / "v000.avi", seconds, 320, 240, "mpeg4")
    videos = [first]
    for i in range(1, count):
        videos.append(folder / f"v{i:03d}.avi")
        shutil.copyfile(first, videos[-1])
    ctx["videos"] = videos
    return videos


def step_benchmark(ctx):
    videos = _videos(ctx)
    cuda = ctx.get("cuda")
    arch = "istpan_resnet50" if not ctx["dry"] else "istpan_tiny"
    device = "cuda" if cuda else "cpu"
    batch = "32" if cuda else "2"
    runs = {}
    notes = []
    for precision in ("fp32", "bf16") if cuda else ("fp32",):
        runtime = "all" if precision == "fp32" else "torch"
        cmd = [PY, "-m", "ispan_cli", "benchmark", *map(str, videos), "--model", arch,
               "--device", device, "--precision", precision, "--runtime", runtime,
               "--batch-size", batch, "--format", "json"]  # fmt: skip
        rc, out, err = _run(cmd, ctx["env"], ctx["limit"](240))
        if rc:
            notes.append(f"{precision}: {_tail(err, 3)}")
            continue
        doc = _json_out(out)
        runs[precision] = doc
    if not runs:
        return "failed", {}, "; ".join(notes)
    first = next(iter(runs.values()))
    per_video_ms = first["decode_ms"] + first["preprocess_ms"]
    cores = ctx.get("cores") or 1
    figures = {
        "videos": len(videos),
        "decode_only_videos_per_s": _decode_only(ctx, videos, cores),
        "decode_preprocess_ms_per_video": round(per_video_ms, 2),
        "cores": cores,
        "runtimes": [
            {
                k: r[k]
                for k in (
                    "runtime",
                    "device",
                    "precision",
                    "model_videos_per_s",
                    "end_to_end_videos_per_s",
                    "note",
                )
            }
            for doc in runs.values()
            for r in doc["runtimes"]
        ],
        "raw": runs,
    }
    if not cuda:
        notes.append("CUDA unavailable: CPU sizes only")
    return "ok", figures, "; ".join(notes)


DECODE_ONLY = """
import json, sys, time
from concurrent.futures import ProcessPoolExecutor
from ispan_cli.video.clip import load_clip
from ispan_cli.video.preprocess import PreprocessSpec

def one(path):
    return load_clip(path, 8, PreprocessSpec(resize=256, crop=224), "auto").data.shape

videos, workers = sys.argv[2:], int(sys.argv[1])
with ProcessPoolExecutor(workers) as pool:
    list(pool.map(one, videos[:workers]))  # start-up and imports, not timed
    start = time.perf_counter()
    list(pool.map(one, videos, chunksize=4))
    print(json.dumps(len(videos) / (time.perf_counter() - start)))
"""


def _decode_only(ctx, videos: list[Path], workers: int) -> float | None:
    """Videos/s of decoding + preprocessing alone (K=8 at 224), one process per core: the bound
    on end-to-end throughput."""
    cmd = [PY, "-c", DECODE_ONLY, str(workers), *map(str, videos)]
    rc, out, _err = _run(cmd, ctx["env"], ctx["limit"](120))
    return round(json.loads(out), 1) if rc == 0 else None


def step_train(ctx):
    cuda = ctx.get("cuda")
    if cuda:
        args = ["--arch", "istpan_resnet50", "--dataset", "synthetic", "--input-size", "224",
                "--segments", "8", "--amp", "off", "bf16", "--device", "cuda", "--videos", "512",
                "--batch-size", "32", "--workers", str(min(ctx.get("cores") or 1, 16)),
                "--epochs", "2"]  # fmt: skip
    else:
        args = ["--arch", "istpan_tiny", "--dataset", "synthetic", "--input-size", "64",
                "--segments", "2", "--amp", "off", "--device", "cpu", "--videos", "16",
                "--batch-size", "8", "--workers", "0", "--epochs", "1"]  # fmt: skip
    rc, out, err = _run([PY, "benchmarks/train.py", *args], ctx["env"], ctx["limit"](240))
    if rc:
        return "failed", {}, _tail(err)
    doc = _json_out(out)
    figures = {"results": doc["results"], "device": doc["device"]}
    if cuda and len(doc["results"]) == 2:
        figures["bf16_speedup"] = doc["results"][1]["speedup_vs_first"]
        figures["target_1_8x_met"] = figures["bf16_speedup"] >= 1.8
    return "ok", figures, "" if cuda else "CUDA unavailable: CPU sizes, fp32 only"


def step_nccl(ctx):
    if not ctx.get("cuda"):
        return "skipped", {}, "needs CUDA"
    out_dir = Path(tempfile.mkdtemp(prefix="ispan-gpu-nccl-"))
    cmd = [PY, "-m", "ispan_cli", "train", "--dataset", "synthetic", "--arch", "istpan_tiny",
           "--pretrained", "none", "--segments", "2", "--input-size", "64", "--batch-size", "8",
           "--epochs", "1", "--gpus", "1", "--workers", "2", "--output", str(out_dir),
           "--quiet"]  # fmt: skip
    rc, _out, err = _run(cmd, ctx["env"], ctx["limit"](180))
    rows = out_dir / "metrics.jsonl"
    figures = {"metrics": rows.read_text().splitlines()[-1:] if rows.exists() else []}
    return ("ok" if rc == 0 else "failed"), figures, _tail(err) if rc else ""


RAFT_CHECK = """
import json, sys, tempfile, time
from pathlib import Path
import numpy as np, torch
from torchvision.models.optical_flow import raft_large
from ispan_cli.flow.methods import RAFT_BATCH, load_raft, raft_method, raft_weights_file

dry = sys.argv[1] == "dry"
device = torch.device("cuda" if torch.cuda.is_available() and not dry else "cpu")
weights = raft_weights_file()
if weights.is_file():
    model, note = load_raft(weights), f"torchvision's weights ({weights.name})"
else:
    torch.manual_seed(0)
    model = raft_large(weights=None)
    note = f"random weights ({weights} absent): speed only, the flows mean nothing"
batch = 2 if dry else RAFT_BATCH  # frames per forward pass: batch - 1 pairs
method = raft_method(model.eval(), device, batch=batch)
sizes = [(64, 48)] if dry else [(320, 240), (224, 224)]  # dry: padded to 128x128
rng = np.random.default_rng(0)
out = {"device": str(device), "weights": note, "batch_frames": batch, "iterations": 12,
       "sizes": {}}
for w, h in sizes:
    frames = rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
    if not dry:
        method.flows(frames)  # warm-up: cuDNN autotuning, allocations
    times = []
    while len(times) < (1 if dry else 10) and sum(times) < 5:
        t = time.perf_counter()
        method.flows(frames)  # returns numpy: the GPU work is finished
        times.append(time.perf_counter() - t)
    best = min(times)
    out["sizes"][f"{w}x{h}"] = {"flows_per_s": round((batch - 1) / best, 2),
                                "ms_per_batch": round(best * 1e3, 1), "repeats": len(times)}

def extract():  # the whole pipeline on one clip: decode, RAFT, quantise, JPEG, record
    from ispan_cli.data.flow_format import FlowSpec
    from ispan_cli.flow.extract import FlowJob, extract_video
    from ispan_cli.video.synthetic import write_synthetic_video

    tmp = tempfile.mkdtemp()
    w, h = sizes[0]
    clip = write_synthetic_video(Path(tmp) / "clip.mp4", (3 if dry else 65) / 25, w, h, fps=25)
    spec = FlowSpec("raft", 20.0, params=tuple(sorted(method.params)))
    t = time.perf_counter()
    result = extract_video(FlowJob(str(clip), "clip"), Path(tmp) / "out", spec, method)
    seconds = time.perf_counter() - t
    if result.status != "done":
        return {"error": result.message}
    return {"size": f"{w}x{h}", "frames": result.frames,
            "frames_per_s": round(result.frames / seconds, 2)}


try:
    out["extract"] = extract()
except ImportError as exc:  # PyAV or OpenCV absent there: the RAFT figures still count
    out["extract"] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


def step_flow(ctx):
    """RAFT flows/s (raft_large, 12 updates, chunks of 16 frames = 15 pairs a forward pass) at
    320x240 and 224x224, and `flow extract`'s frames/s on one clip; --dry-run: tiny sizes on
    the CPU. Real weights when torch hub has them, else random ones (the figures say which)."""
    if not ctx.get("cuda") and not ctx["dry"]:
        return "skipped", {}, "needs CUDA"
    # the GPU run's step is kept under a minute of the session's GPU time; the dry run's RAFT
    # on a (shared) CPU takes 3-6 s a flow
    limit = ctx["limit"](180 if ctx["dry"] else 60)
    rc, out, err = _run([PY, "-c", RAFT_CHECK, "dry" if ctx["dry"] else "gpu"], ctx["env"], limit)
    if rc and "No module named 'torchvision'" in err:
        return "skipped", {}, "torchvision is not installed here (RAFT is torchvision's)"
    if rc:
        return "failed", {}, _tail(err)
    figures = json.loads(out.strip().splitlines()[-1])
    note = f"raft_large on {figures['device']}, {figures['weights']}"
    return "ok", figures, note if ctx.get("cuda") else f"CUDA unavailable: tiny sizes; {note}"


STEPS = [
    ("environment", step_environment),
    ("pytest-gpu", step_pytest_gpu),
    ("doctor", step_doctor),
    ("benchmark", step_benchmark),
    ("train", step_train),
    ("nccl", step_nccl),
    ("flow", step_flow),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--wheels", type=Path, default=ROOT / ".whl")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--budget", type=float, default=480, help="seconds for all steps")
    parser.add_argument("--only", nargs="+", choices=[n for n, _ in STEPS], help="these steps")
    args = parser.parse_args(argv)
    out = args.out or Path(os.environ.get("OUT") or "gpu_check_out")
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    site, install_note = install_missing(args.wheels)

    def limit(want: float) -> float:
        """A step's time limit: what it wants, within what is left of the budget."""
        return max(1.0, min(want, args.budget - (time.monotonic() - start)))

    ctx = {"dry": args.dry_run, "env": _env(site), "limit": limit}
    report = {"dry_run": args.dry_run, "install": install_note, "steps": {}}
    for name, step in STEPS:
        if args.only and name not in args.only and name != "environment":
            continue
        t0 = time.monotonic()
        if time.monotonic() - start > args.budget:
            status, figures, note = "skipped", {}, "time budget spent"
        else:
            try:
                status, figures, note = step(ctx)
            except Exception as exc:  # a broken step must not lose the others' figures
                status, figures, note = "failed", {}, f"{type(exc).__name__}: {exc}"
        report["steps"][name] = {
            "status": status,
            "seconds": round(time.monotonic() - t0, 1),
            "note": note,
            "figures": figures,
        }
        (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
        print(f"{name:12s} {status:8s} {report['steps'][name]['seconds']:7.1f}s  {note[:90]}",
              flush=True)  # fmt: skip
    _summary(report)
    return 1 if any(s["status"] == "failed" for s in report["steps"].values()) else 0


def _summary(report: dict) -> None:
    bench = report["steps"].get("benchmark", {}).get("figures", {})
    print("\nruntime      device  precision  model v/s  end-to-end v/s  note")
    for r in bench.get("runtimes", []):
        print(f"{r['runtime']:12s} {r['device']:7s} {r['precision']:9s} "
              f"{r['model_videos_per_s']:10.1f} {r['end_to_end_videos_per_s']:15.1f}  "
              f"{r['note']}")  # fmt: skip
    if bench:
        print(f"decode + preprocess only: {bench['decode_only_videos_per_s']} videos/s with "
              f"{bench['cores']} worker process(es)")  # fmt: skip
    flow = report["steps"].get("flow", {}).get("figures", {})
    if flow.get("sizes"):
        print(f"raft_large on {flow['device']}, {flow['batch_frames']} frames a batch, "
              f"{flow['weights']}:")  # fmt: skip
    for size, r in flow.get("sizes", {}).items():
        print(f"  raft {size:8s} {r['flows_per_s']:8.2f} flows/s")
    e = flow.get("extract") or {}
    if "frames_per_s" in e:
        print(f"  flow extract --method raft at {e['size']}: {e['frames_per_s']} frames/s")
    elif e:
        print(f"  flow extract --method raft: {e['error']}")
    train = report["steps"].get("train", {}).get("figures", {})
    for r in train.get("results", []):
        print(f"train {r['amp']:5s} {r['clips_per_s']:8.2f} clips/s, data wait "
              f"{r['data_wait_share']:.1%}, x{r['speedup_vs_first']}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
