"""The thread plan counts the cores this process may use: its affinity mask and cgroup quota."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ispan_cli.runtime.threads import (
    cgroup_cpu_limit,
    local_processes,
    plan_threads,
    usable_cores,
)


def test_the_affinity_mask_limits_the_cores():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores to restrict to one")
    code = (
        "from ispan_cli.runtime.threads import usable_cores, plan_threads, apply_torch_threads\n"
        "import torch; p = plan_threads(); apply_torch_threads(p)\n"
        "print(usable_cores(), p.model_threads, p.decode_workers, torch.get_num_threads())"
    )
    one = {min(os.sched_getaffinity(0))}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: os.sched_setaffinity(0, one),
    )  # fmt: skip
    assert done.stdout.split() == ["(1,", "'affinity')", "1", "1", "1"], done.stderr


@pytest.mark.parametrize(
    ("files", "want"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_quotas_are_read(tmp_path, files, want):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == want


def test_a_quota_below_the_mask_wins(tmp_path):
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU: one thread
    assert usable_cores(tmp_path) == (1, "cgroup")


def test_the_plan_gives_the_model_the_cores_and_the_user_the_last_word():
    assert plan_threads(cores=16).model_threads == 16
    assert plan_threads(cores=16).decode_workers == 2
    assert plan_threads(cores=2).decode_workers == 1
    assert plan_threads(True, cores=8).decode_workers == 7  # a GPU model needs one CPU thread
    assert plan_threads(cores=8, workers=0, threads=3).decode_workers == 0
    assert plan_threads(cores=8, workers=0, threads=3).model_threads == 3


def test_a_model_spins_unless_other_processes_share_the_node(monkeypatch):
    # alone on the machine, spinning is faster end to end (see runtime/threads.py's figures)
    assert plan_threads(cores=2).spin is True
    assert plan_threads(True, cores=8).spin is True
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun: two processes on this node
    assert plan_threads().spin is False and plan_threads().processes == 2


def test_decode_workers_share_the_cores_the_model_leaves_for_ffmpeg():
    assert plan_threads(cores=2).codec_threads == 1  # the model holds both cores
    assert plan_threads(cores=16).codec_threads == 1
    assert plan_threads(cores=8, threads=4, workers=2).codec_threads == 2  # 4 free, 2 workers
    assert plan_threads(True, cores=16, workers=3).codec_threads == 5  # GPU: 15 free, 3 workers
    assert plan_threads(cores=4, threads=3, workers=0).codec_threads == 1


def test_a_reader_decodes_with_the_plans_codec_threads(tmp_path):
    from ispan_cli.video.decoder import open_video
    from tests.video.videogen import write_pattern_video

    video = write_pattern_video(tmp_path / "v.mp4", "libx264", 8, width=64, height=48)
    for threads, want in ((1, 1), (3, 3)):
        with open_video(video, "pyav", threads=threads) as reader:
            reader.read([0, 7], None)  # opens the decoder
            assert reader._stream.thread_count == want


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({}, 1),
        ({"LOCAL_WORLD_SIZE": "8"}, 8),  # torchrun
        ({"SLURM_STEP_TASKS_PER_NODE": "4(x2)"}, 4),  # srun: 4 tasks on each of 2 nodes
        ({"SLURM_NTASKS_PER_NODE": "2"}, 2),
        ({"LOCAL_WORLD_SIZE": "zero"}, 1),
        ({"LOCAL_WORLD_SIZE": "0"}, 1),
    ],
)
def test_the_launcher_says_how_many_processes_share_the_node(env, want):
    assert local_processes(env) == want


def _plan_in_child(env: dict, cpus: set[int] | None = None) -> list[str]:
    code = (
        "import os\n"
        "from ispan_cli.runtime.threads import plan_threads, apply_torch_threads\n"
        "p = plan_threads(); apply_torch_threads(p)\n"
        "import torch\n"
        "print(p.cores, p.source, p.processes, p.spin, torch.get_num_threads(),"
        " os.environ.get('OMP_WAIT_POLICY'))"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "LOCAL_", "OMP_"))}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**base, **env},
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_processes_side_by_side_share_the_cores():
    cores = len(os.sched_getaffinity(0))
    if cores < 2 or cores != os.cpu_count():
        pytest.skip("needs two cores and an affinity mask of the whole machine")
    share = str(cores // 2)
    # torchrun --nproc-per-node 2: half the cores each, threads sized to them
    assert _plan_in_child({"LOCAL_WORLD_SIZE": "2"})[:5] == [share, "shared", "2", "False", share]
    # a launcher that already bound the process to one core: the mask is its share
    one = {min(os.sched_getaffinity(0))}
    assert _plan_in_child({"LOCAL_WORLD_SIZE": "2"}, one)[:2] == ["1", "affinity"]


def test_torch_is_told_not_to_spin_before_it_is_imported():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores")
    # two processes of the job on this node: passive OpenMP waiting
    assert _plan_in_child({"LOCAL_WORLD_SIZE": "2"})[-1] == "PASSIVE"
    assert _plan_in_child({})[-1] == "None"  # alone: OpenMP's own (spinning) default
    # the user's own policy wins
    assert _plan_in_child({"LOCAL_WORLD_SIZE": "2", "OMP_WAIT_POLICY": "ACTIVE"})[-1] == "ACTIVE"


def test_onnx_runtime_sessions_follow_the_plans_spin(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from ispan_cli.runtime.onnx import create_session

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "relu.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    onnx.save(model, path)
    for spin, want in ((False, "0"), (True, "1")):
        session, chosen = create_session(path, "cpu", threads=2, spin=spin)
        options = session.get_session_options()
        assert chosen.name == "CPUExecutionProvider"
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == want
        assert options.intra_op_num_threads == 2
