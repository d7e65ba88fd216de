"""Online learning (layer 3): predict, then learn, one point at a time.

``learner`` is the :class:`OnlineLearner` (truncated BPTT over a stream, carried state);
``cells``, ``kernels`` and ``jit`` are its per-step kernels; ``metrics`` the running error
and anomaly flags; ``attach`` continues a fitted predictor; ``stream`` and ``stream_io`` are
``elman stream``'s engine and its line-by-line input and output.
"""

from elman._lazy import lazy_exports

__all__ = [
    "ModelSpec",
    "OnlineConfig",
    "OnlineLearner",
    "StreamOptions",
    "run_stream",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ModelSpec": "elman.online.stream",
        "OnlineConfig": "elman.config",
        "OnlineLearner": "elman.online.learner",
        "StreamOptions": "elman.online.stream",
        "run_stream": "elman.online.stream",
    },
)
