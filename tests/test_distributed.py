"""Distributed training: torchrun + DDP on CPU (gloo), with real 2-process jobs.

The slow tests launch real jobs with ``elman train --nproc 2``; they compare a 2-process run
with a 1-process run of the same global batch and seed, and kill a worker with SIGKILL to
check that the job fails with one clear line and resumes from rank 0's checkpoint.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from conftest import run_cli, run_cli_many
from safetensors.torch import load_file
from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

from elman.cli.launcher import _next_step
from elman.errors import ConfigError
from elman.forecaster import Forecaster
from elman.training import distributed
from elman.training.launch import describe_failure, launcher_argv, strip_launcher_flags
from elman.training.resume import Checkpointer

# same global batch and seed in every run; an odd batch splits 23 + 22 across two ranks, so
# the weighting of unequal slices is exercised at every step
TRAIN = [
    "train",
    "--data",
    "builtin:us_macro",
    "--horizon",
    "4",
    "--hidden-size",
    "16",
    "--batch-size",
    "45",
    "--seed",
    "3",
    "--threads",
    "1",
]
# float sums run in a different order across ranks; after 3 epochs of Adam the weights
# measured here differ by ~1e-7
WEIGHT_ATOL = 1e-5


# -- pure pieces ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("device", "cuda", "backend"),
    [
        ("auto", True, "nccl"),
        ("auto", False, "gloo"),
        ("cuda", True, "nccl"),
        ("cuda:1", True, "nccl"),
        ("cpu", True, "gloo"),
        ("cpu", False, "gloo"),
    ],
)
def test_backend_is_nccl_on_cuda_and_gloo_on_cpu(device, cuda, backend):
    assert distributed.choose_backend(device, cuda) == backend


def test_world_comes_from_torchrun_variables():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert distributed.world_from_env(env) == distributed.World(3, 4, 1, 2)
    assert distributed.world_from_env({}) is None
    assert distributed.world_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None
    with pytest.raises(ConfigError, match="malformed torchrun environment variable"):
        distributed.world_from_env({"RANK": "x", "WORLD_SIZE": "2"})


def test_rank_zero_and_share_of_cores_follow_the_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.is_main() and distributed.local_share() == 1
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert not distributed.is_main() and distributed.local_share() == 2


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_rank_slices_rebuild_the_global_batch(world):
    for size in range(12):
        batch = torch.arange(100, 100 + size)
        parts = [distributed.shard_slice(batch, r, world) for r in range(world)]
        assert torch.equal(torch.cat(parts), batch)
        lengths = [len(p) for p in parts]
        assert max(lengths) - min(lengths) <= 1


def test_timeout_from_option_then_environment_then_default():
    assert distributed.timeout_seconds(7.5, {}) == 7.5
    assert distributed.timeout_seconds(None, {distributed.ENV_TIMEOUT: "12"}) == 12.0
    assert distributed.timeout_seconds(None, {}) == distributed.DEFAULT_TIMEOUT_S
    with pytest.raises(ConfigError, match=r"--dist-timeout \(0.0\) must be > 0"):
        distributed.timeout_seconds(0.0, {})
    with pytest.raises(ConfigError, match="ELMAN_DIST_TIMEOUT='soon' is not a number"):
        distributed.timeout_seconds(None, {distributed.ENV_TIMEOUT: "soon"})


def test_launcher_flags_are_removed_from_the_worker_command():
    argv = ["-v", "train", "--nproc", "2", "--data", "x.csv", "--nnodes=1", "--npr", "3"]
    argv += ["--rdzv-endpoint", "h:1", "--out", "run", "--no-progress-bar"]
    assert strip_launcher_flags(argv) == [
        "-v",
        "train",
        "--data",
        "x.csv",
        "--out",
        "run",
        "--no-progress-bar",
    ]


def test_torchrun_arguments_run_elman_as_a_module_without_restarts():
    argv = launcher_argv(["train", "--out", "r"], 2, "2", "host:29400")
    assert argv[:6] == ["--nproc-per-node", "2", "--nnodes", "2", "--max-restarts", "0"]
    assert argv[6:10] == ["--rdzv-backend", "c10d", "--rdzv-endpoint", "host:29400"]
    assert argv[10:] == ["-m", "elman", "train", "--out", "r"]


def test_failure_names_the_killed_worker_not_the_ones_stopped_after_it():
    failures = {
        0: ProcessFailure(local_rank=0, pid=100, exitcode=-15, error_file="<none>"),
        1: ProcessFailure(local_rank=1, pid=101, exitcode=-9, error_file="<none>"),
        2: ProcessFailure(local_rank=2, pid=102, exitcode=2, error_file="<none>"),
    }
    line = describe_failure(failures)
    assert line.startswith("worker rank 1 (pid 101) was killed by signal SIGKILL")
    assert "(3 workers failed)" in line
    one = {0: ProcessFailure(local_rank=0, pid=7, exitcode=2, error_file="<none>")}
    assert describe_failure(one).startswith("worker rank 0 (pid 7) exited with code 2")
    # a rank aborted by the collective library after its peer was killed is a consequence
    aborted = {
        0: ProcessFailure(local_rank=0, pid=200, exitcode=-6, error_file="<none>"),
        1: ProcessFailure(local_rank=1, pid=201, exitcode=-9, error_file="<none>"),
    }
    aborted[0].timestamp, aborted[1].timestamp = 10, 11  # the abort was recorded first
    assert describe_failure(aborted).startswith("worker rank 1 (pid 201) was killed by signal")
    errored = {
        0: ProcessFailure(local_rank=0, pid=300, exitcode=-6, error_file="<none>"),
        1: ProcessFailure(local_rank=1, pid=301, exitcode=1, error_file="<none>"),
    }
    assert describe_failure(errored).startswith("worker rank 1 (pid 301) exited with code 1")


# -- one process, real process group -----------------------------------------------------------
def test_ddp_wrapper_state_dict_has_no_module_prefix(tmp_path):
    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        world = distributed.World(0, 1, 0, 1)
        ctx = distributed.Distributed(world, "gloo", torch.device("cpu"), 30.0)
        model = torch.nn.Linear(3, 2)
        wrapped = ctx.wrap(model)
        assert list(wrapped.state_dict()) == ["weight", "bias"]
        zeros = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
        wrapped.load_state_dict(zeros)
        assert float(model.weight.detach().abs().sum()) == 0.0
        assert distributed.unwrap(wrapped) is model
    finally:
        torch.distributed.destroy_process_group()


def test_follower_hook_restores_a_checkpoint_but_writes_nothing(tmp_path):
    opts = dict(horizon=4, hidden_size=8, epochs=2, threads=1, max_batches=2, progress=False)
    Forecaster("gru", **opts).fit("builtin:nile", hooks=[Checkpointer(tmp_path / "ckpt")])
    path = tmp_path / "ckpt" / "state.safetensors"
    before = path.read_bytes()
    resumed = Checkpointer(tmp_path / "ckpt", resume=True)
    f = Forecaster("gru", **opts).fit("builtin:nile", hooks=[distributed.follower(resumed)])
    assert resumed.resumed_from == 2 and f.train_state is not None
    assert f.train_state.epoch == 2 and len(f.train_state.history) == 2
    assert path.read_bytes() == before
    fresh = Checkpointer(tmp_path / "other")
    Forecaster("gru", **opts).fit("builtin:nile", hooks=[distributed.follower(fresh)])
    assert not (tmp_path / "other").exists()


# -- launcher errors (no job starts) -------------------------------------------------------------
BAD_LAUNCHES = {
    "nproc": (["--nproc", "0"], r"--nproc \(0\) must be >= 1"),
    "nnodes": (["--nproc", "2", "--nnodes", "2"], "--nnodes 2 needs --rdzv-endpoint HOST:PORT"),
    "tbptt": (["--nproc", "2", "--tbptt", "8", "--norm", "none"], "--tbptt .*drop --tbptt or"),
    "timeout": (["--nproc", "2", "--dist-timeout", "-1"], r"--dist-timeout \(-1.0\) must be > 0"),
    "no_nproc": (["--nnodes", "2"], r"--nnodes needs --nproc N"),
}


def test_bad_launcher_options_fail_in_one_line_before_any_job_starts(tmp_path):
    cases = {
        k: [*TRAIN, "--out", str(tmp_path / k), *extra] for k, (extra, _) in BAD_LAUNCHES.items()
    }
    results = run_cli_many(cases)
    for name, (_, message) in BAD_LAUNCHES.items():
        r = results[name]
        assert r.returncode == 2, name
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("elman: error: "), r.stderr
        assert re.search(message, lines[0]), lines[0]


# -- real 2-process jobs -------------------------------------------------------------------------
def _weights(run: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(run / "model.safetensors").items() if k.startswith("model.")}


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(run_cli, *TRAIN, "--epochs", "3", "--out", str(one))
        b = pool.submit(run_cli, *TRAIN, "--epochs", "3", "--out", str(two), "--nproc", "2")
        r1, r2 = a.result(), b.result()
    assert r1.returncode == 0, r1.stderr
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout.count("hold-out:") == 1  # only rank 0 prints
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    w1, w2 = _weights(one), _weights(two)
    assert w1.keys() == w2.keys() and w1
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=0, atol=WEIGHT_ATOL, msg=name)
    h1 = (one / "history.csv").read_text().splitlines()[1:]
    h2 = (two / "history.csv").read_text().splitlines()[1:]
    for row1, row2 in zip(h1, h2, strict=True):  # train and validation loss: global means
        for x, y in zip(row1.split(",")[1:3], row2.split(",")[1:3], strict=True):
            assert float(y) == pytest.approx(float(x), rel=1e-5)
    assert Forecaster.load(two).predict().shape == Forecaster.load(one).predict().shape


def _worker_pid(out: Path, rank: int) -> int | None:
    """The pid of the worker of ``rank`` training into ``out`` (scanning /proc)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and str(out).encode() in cmd:
            return int(d.name)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_the_failure_hint_offers_resume_only_once_a_checkpoint_exists(tmp_path):
    hint = f"elman train --resume {tmp_path} --nproc 2"
    assert _next_step(tmp_path, hint).startswith("no checkpoint was written yet; run the command")
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "state.safetensors").write_bytes(b"x")
    assert _next_step(tmp_path, hint) == f"continue from the last checkpoint with: {hint}"


def test_killed_worker_fails_the_job_in_one_line_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    args = [*TRAIN, "--epochs", "12", "--patience", "100", "--out", str(out), "--nproc", "2"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    job = subprocess.Popen(
        [sys.executable, "-m", "elman", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        pid, ckpt = None, out / "checkpoint" / "state.safetensors"
        deadline = time.monotonic() + 240
        while (pid is None or not ckpt.exists()) and job.poll() is None:
            assert time.monotonic() < deadline, "the job never wrote its first checkpoint"
            pid = pid or _worker_pid(out, 1)
            time.sleep(0.02)
        assert job.poll() is None and pid is not None, "the job ended before the kill"
        os.kill(pid, signal.SIGKILL)
        _, err = job.communicate(timeout=180)  # a hang fails here
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"elman: error: worker rank 1 (pid {pid}) was killed by signal SIGKILL")
    assert last.endswith(f"elman train --resume {out} --nproc 2")
    assert "Traceback" not in err
    assert not (out / "model.safetensors").exists()

    r = run_cli("train", "--resume", str(out), "--nproc", "2", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "resumed at epoch" in r.stdout
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 12
    assert Forecaster.load(out).predict().notna().all().all()
