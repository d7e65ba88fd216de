"""Data-parallel training over many processes with PyTorch's own engine: torchrun + DDP.

::

    elman train --data builtin:us_macro --horizon 4 --out run --nproc 2
    # the same job, launched by hand (what --nproc does for you):
    torchrun --nproc-per-node 2 -m elman train --data builtin:us_macro --horizon 4 --out run

torchrun starts one process per rank and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``. Each rank builds the same model
from the same seed (DDP also broadcasts rank 0's weights), draws the same global batch order
from ``(seed, epoch)`` and keeps its slice of every batch::

    global batch (B = 8 windows):  [w0 w1 w2 w3 w4 w5 w6 w7]
    rank 0 of 2:                   [w0 w1 w2 w3]
    rank 1 of 2:                               [w4 w5 w6 w7]

Each rank's loss is weighted by its share of the batch (``n_rank * world / B``), so DDP's
gradient average is exactly the gradient of the mean loss over all ``B`` windows: ``N``
ranks with ``B / N`` windows each take the step one process takes with batch ``B``, up to
the order of float additions. The loss value every rank reports is the all-reduced mean over
the global batch, so the divergence guard, the schedule and early stopping decide the same
thing on every rank. Validation batches are sharded the same way.

Backends: ``gloo`` on CPU, ``nccl`` on CUDA (one GPU per local rank). Only rank 0 writes
files; :func:`follower` turns a fit hook into a read-only one for the other ranks (a
resumed run loads rank 0's checkpoint on every rank). The process group has a timeout
(:data:`ENV_TIMEOUT`, default :data:`DEFAULT_TIMEOUT_S`), so a rank whose peer stops
answering raises instead of waiting forever, and torchrun's agent stops the whole job
when any worker dies (``--max-restarts 0``).
"""

from __future__ import annotations

import atexit
import datetime
import inspect
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from elman.errors import ConfigError, TrainingError
from elman.models import switches
from elman.runtime import choose_device

log = logging.getLogger(__name__)

ENV_TIMEOUT = switches.ENV_DIST_TIMEOUT  # seconds a collective may wait for a peer
DEFAULT_TIMEOUT_S = 300.0


# -- where this process stands ---------------------------------------------------------------
@dataclass(frozen=True)
class World:
    """This process's place in a torchrun job."""

    rank: int  # 0 .. world_size-1 over all nodes
    world_size: int
    local_rank: int  # 0 .. local_world_size-1 on this node
    local_world_size: int


def world_from_env(environ: Mapping[str, str] | None = None) -> World | None:
    """The torchrun variables of ``environ`` (default ``os.environ``), or ``None``.

    ``None`` means a plain process: not launched by torchrun, or a job of one process.
    """
    env = os.environ if environ is None else environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    try:
        world = World(
            rank=int(env["RANK"]),
            world_size=int(env["WORLD_SIZE"]),
            local_rank=int(env.get("LOCAL_RANK", env["RANK"])),
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])),
        )
    except ValueError as exc:
        raise ConfigError(f"malformed torchrun environment variable ({exc})") from None
    return world if world.world_size > 1 else None


def launched() -> bool:
    """Whether this process is one rank of a multi-process torchrun job."""
    return world_from_env() is not None


def is_main() -> bool:
    """Rank 0, or a plain process: the one that writes files and prints."""
    world = world_from_env()
    return world is None or world.rank == 0


def local_share() -> int:
    """How many processes of this job share this machine's cores (1 outside torchrun)."""
    world = world_from_env()
    return world.local_world_size if world is not None else 1


def choose_backend(device: str, cuda_available: bool) -> str:
    """``nccl`` for CUDA devices (``auto`` means CUDA when one is available), else ``gloo``."""
    kind = device.split(":")[0]
    if kind == "cuda" or (kind == "auto" and cuda_available):
        return "nccl"
    return "gloo"


def timeout_seconds(value: float | None = None, environ: Mapping[str, str] | None = None) -> float:
    """The collective timeout: ``value``, else :data:`ENV_TIMEOUT`, else the default."""
    env = os.environ if environ is None else environ
    if value is None:
        raw = env.get(ENV_TIMEOUT)
        try:
            value = float(raw) if raw else DEFAULT_TIMEOUT_S
        except ValueError:
            raise ConfigError(f"{ENV_TIMEOUT}={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise ConfigError(f"--dist-timeout ({value}) must be > 0 seconds")
    return float(value)


# -- the process group -------------------------------------------------------------------------
_CURRENT: Distributed | None = None


def init(device: str | torch.device = "auto", timeout: float | None = None) -> Distributed | None:
    """Join the torchrun job this process belongs to; ``None`` for a plain process.

    Idempotent: later calls return the same context. The process group is destroyed at
    exit (or by :func:`teardown`).

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or a :class:`torch.device`; CUDA ranks use
            ``cuda:LOCAL_RANK`` and the ``nccl`` backend, CPU ranks ``gloo``.
        timeout: seconds a collective may wait for a peer (see :func:`timeout_seconds`).
    """
    global _CURRENT
    if _CURRENT is not None:
        return _CURRENT
    world = world_from_env()
    if world is None:
        return None
    dev = _rank_device(device, world)
    backend = choose_backend(dev.type, torch.cuda.is_available())
    seconds = timeout_seconds(timeout)
    if not tdist.is_initialized():
        tdist.init_process_group(backend, timeout=datetime.timedelta(seconds=seconds))
        atexit.register(teardown)
    _CURRENT = Distributed(world, backend, dev, seconds)
    log.info(
        "rank %d of %d (%s on %s, timeout %gs)", world.rank, world.world_size, backend, dev, seconds
    )
    return _CURRENT


def current(device: str | torch.device | None = None) -> Distributed | None:
    """The context of this rank, joining the job on first use; ``None`` for a plain process."""
    if _CURRENT is not None:
        return _CURRENT
    return init(device if device is not None else "auto")


@contextmanager
def peer_errors() -> Iterator[None]:
    """Turn a failed collective (a peer died or timed out) into one :class:`TrainingError`.

    Errors from DDP's all-reduce in backward surface wherever ``backward()`` is called, so a
    caller wraps the whole fit in this. Outside a job it changes nothing.
    """
    try:
        yield
    except RuntimeError as exc:
        ctx = _CURRENT
        text = str(exc)
        comm = isinstance(exc, tdist.DistError) or any(m in text for m in ("gloo", "NCCL"))
        if ctx is None or not comm:
            raise
        detail = text.splitlines()[0].split(". ")[0][:200] if text else type(exc).__name__
        raise TrainingError(
            f"rank {ctx.rank} of {ctx.world_size} lost contact with the other processes "
            f"(a worker died, or stopped answering for --dist-timeout {ctx.timeout:g}s): "
            f"{detail}"
        ) from exc


def teardown() -> None:
    """Leave the job: destroy the process group (safe to call twice)."""
    global _CURRENT
    _CURRENT = None
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def _rank_device(device: str | torch.device, world: World) -> torch.device:
    dev = device if isinstance(device, torch.device) else choose_device(str(device))
    if dev.type != "cuda":
        return dev
    count = torch.cuda.device_count()
    if world.local_rank >= count:
        raise ConfigError(
            f"--nproc ({world.local_world_size}) exceeds the {count} GPU(s) of this node; "
            f"give --nproc {count} or --device cpu"
        )
    torch.cuda.set_device(world.local_rank)
    return torch.device("cuda", world.local_rank)


# -- sharding ----------------------------------------------------------------------------------
@dataclass
class Shard:
    """This rank's slice of one global batch."""

    local: Tensor  # [b_rank] window starts of this rank
    whole: Tensor  # [B] the global batch (a rank with an empty slice borrows one window)
    total: int  # B

    @property
    def work(self) -> tuple[Tensor, float]:
        """What this rank runs and its weight: its slice (1), or, when the slice is empty,
        one borrowed item (0), since DDP needs every rank in every all-reduce."""
        return (self.whole[:1], 0.0) if len(self.local) == 0 else (self.local, 1.0)


def with_value(share: Tensor, value: Tensor) -> Tensor:
    """A loss whose gradient is ``share``'s and whose value is ``value`` (the same on every
    rank), so that the trainer sees the global number while DDP averages the shares."""
    return share + (value - share.detach())


def shard_slice(batch: Tensor, rank: int, world_size: int) -> Tensor:
    """Rank ``rank``'s contiguous slice of ``batch``; sizes differ by at most one.

    Concatenating the slices of ranks ``0 .. world_size-1`` gives ``batch`` back.
    """
    return torch.tensor_split(batch, world_size)[rank]


class ShardedTask:
    """A task (see :class:`elman.training.trainer.Task`) over :class:`Shard` batches.

    Returns a loss whose *value* is the mean over the global batch (identical on every rank)
    and whose *gradient* is this rank's share, ``n_rank * world / B`` times the gradient of
    its local mean, so that DDP's average over ranks is the gradient of the global mean.
    """

    def __init__(self, task: Any, dist: Distributed) -> None:
        self.task = task
        self.dist = dist

    def start_epoch(self, epoch: int, train: bool) -> None:
        """Forwarded to the wrapped task."""
        self.task.start_epoch(epoch, train)

    def loss(self, model: nn.Module, batch: Any, train: bool) -> tuple[Tensor, int]:
        """Global-mean loss of the batch and the global number of windows ``B``."""
        if not isinstance(batch, Shard):
            return self.task.loss(model, batch, train)
        # every rank must run forward and backward, or DDP's all-reduce would wait for it
        work, weight = batch.work
        loss, n = self.task.loss(model, work, train)
        n = int(n * weight)
        count = torch.tensor(float(n), dtype=torch.float64, device=loss.device)
        stats = torch.stack([loss.detach().double() * n, count])
        self.dist.all_reduce(stats)  # [sum of n * loss, B] over all ranks
        total = int(round(float(stats[1])))
        mean = (stats[0] / max(total, 1)).to(loss.dtype)
        return with_value(loss * (n * self.dist.world_size / max(total, 1)), mean), total


BatchFn = Callable[..., Iterable[Any]]


# -- the context -------------------------------------------------------------------------------
class DataParallel(DistributedDataParallel):
    """DDP whose state dicts are the wrapped module's (no ``module.`` prefix).

    Snapshots, best weights and checkpoints taken through the wrapper therefore load into
    the plain model, and a checkpoint of a distributed run resumes in a single process.
    """

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped module's state dict."""
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Load into the wrapped module."""
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


@dataclass(frozen=True)
class Distributed:
    """One rank's view of the job: who it is, where it computes, how it talks to the others."""

    world: World
    backend: str  # gloo | nccl
    device: torch.device  # cpu, or cuda:LOCAL_RANK
    timeout: float  # seconds

    @property
    def rank(self) -> int:
        """Global rank."""
        return self.world.rank

    @property
    def world_size(self) -> int:
        """Number of ranks."""
        return self.world.world_size

    @property
    def is_main(self) -> bool:
        """Rank 0: writes files and prints."""
        return self.world.rank == 0

    def all_reduce(self, tensor: Tensor) -> Tensor:
        """Sum ``tensor`` over all ranks, in place.

        Raises:
            TrainingError: a peer died or did not answer within :attr:`timeout`.
        """
        with peer_errors():
            tdist.all_reduce(tensor)
        return tensor

    def wrap(self, model: nn.Module) -> DataParallel:
        """``model`` (already on :attr:`device`) in DDP; gradients are averaged in backward."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        # no buffer sync in forward: the models keep no running statistics, and a broadcast
        # in forward would be one more collective every rank must reach (torch >= 2.12
        # renamed the option)
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        no_sync = (
            "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
        )
        options: dict[str, Any] = {no_sync: False}
        # a conv weight [C, 1, K] has two valid stride layouts; DDP warns at every step that
        # its gradient picked the other one, which costs one copy and nothing else
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
        return DataParallel(model, device_ids=ids, **options)

    def shard(self, batches: BatchFn) -> Callable[..., list[Shard]]:
        """``batches`` (same arguments) with every global batch cut to this rank's slice."""

        def sharded(*args: Any) -> list[Shard]:
            out = []
            for b in batches(*args):
                if not isinstance(b, Tensor):
                    raise ConfigError(
                        "distributed training shards batches of windows; --tbptt walks the "
                        "series in order and cannot be sharded: drop --tbptt or --nproc"
                    )
                out.append(Shard(shard_slice(b, self.rank, self.world_size), b, len(b)))
            return out

        return sharded

    def prepare(
        self,
        model: nn.Module,
        task: Any,
        batches: BatchFn,
        val_task: Any = None,
        val_batches: BatchFn | None = None,
    ) -> tuple[DataParallel, ShardedTask, Any, ShardedTask | None, Any]:
        """Everything a :class:`~elman.training.trainer.Trainer` needs to train data-parallel.

        Returns:
            ``(ddp_model, task, batches, val_task, val_batches)``, the tasks and batch
            functions sharded (validation ones stay ``None`` when not given). Keep ``model``
            itself as the trained result: the wrapper shares its parameters.
        """
        val = ShardedTask(val_task, self) if val_task is not None else None
        vb = self.shard(val_batches) if val_batches is not None else None
        return self.wrap(model), ShardedTask(task, self), self.shard(batches), val, vb


# -- hooks for ranks other than 0 --------------------------------------------------------------
class Follower:
    """A fit hook that runs another hook's restore but none of its writers.

    Wraps for example a :class:`~elman.training.resume.Checkpointer` on ranks other than 0: every
    rank loads the checkpoint rank 0 wrote, only rank 0 writes new ones.
    """

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def attach(self, trainer: Any, series: list[Any]) -> None:
        """Attach the wrapped hook, then drop the callbacks it registered."""
        n_epoch, n_end = len(trainer.callbacks), len(trainer.end_callbacks)
        self.hook.attach(trainer, series)
        del trainer.callbacks[n_epoch:]
        del trainer.end_callbacks[n_end:]


def follower(hook: Any) -> Follower:
    """The read-only form of ``hook`` for ranks other than 0."""
    return Follower(hook)
