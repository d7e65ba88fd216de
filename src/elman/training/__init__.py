"""Training (layer 2): from series and a config to fitted weights.

``fit`` sets a fit up and runs it; ``trainer`` is the epoch loop (early stopping, clipping,
divergence recovery); ``tasks`` computes the loss of a batch; ``precision`` handles
bfloat16 autocast; ``resume`` checkpoints and resumes; ``distributed`` and ``launch`` run
DDP under torchrun; ``memory`` keeps freed activation memory for reuse.
"""

from elman._lazy import lazy_exports

__all__ = [
    "Checkpointer",
    "TrainState",
    "Trainer",
    "distributed",
    "fit_predictor",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Checkpointer": "elman.training.resume",
        "TrainState": "elman.training.trainer",
        "Trainer": "elman.training.trainer",
        "distributed": "elman.training.distributed",
        "fit_predictor": "elman.training.fit",
    },
)
