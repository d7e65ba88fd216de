"""ONNX export (layer 3): graphs that forecast without elman, checked against PyTorch.

``onnx`` writes the files and their metadata; ``graphs`` builds the sequence and step graphs
as PyTorch modules; ``check`` compares onnxruntime with elman's own forecasts.
"""

from elman._lazy import lazy_exports

__all__ = [
    "check_export",
    "context_inputs",
    "export_onnx",
    "read_metadata",
    "sequence_graph",
    "step_graph",
    "step_path_for",
]

__getattr__, __dir__ = lazy_exports(__name__, {name: "elman.export.onnx" for name in __all__})
