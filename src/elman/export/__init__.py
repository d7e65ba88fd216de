"""ONNX export (layer 3): graphs that forecast without elman, checked against PyTorch.

``onnx`` writes the files and their metadata; ``graphs`` builds the sequence and step graphs
as PyTorch modules; ``check`` compares onnxruntime with elman's own forecasts.
"""

from elman._lazy import lazy_exports

__all__ = [
    "CHECK_TOL",
    "EXPORT_BATCH",
    "MAX_UNROLL",
    "MIN_OPSET",
    "SequenceGraph",
    "StepGraph",
    "check_export",
    "check_export_horizon",
    "context_inputs",
    "export_onnx",
    "metadata",
    "placeholder_future",
    "read_metadata",
    "scaler_table",
    "sequence_graph",
    "sequence_parity",
    "state_batch_axes",
    "step_graph",
    "step_parity",
    "step_path_for",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CHECK_TOL": "elman.export.onnx",
        "EXPORT_BATCH": "elman.export.onnx",
        "MAX_UNROLL": "elman.export.onnx",
        "MIN_OPSET": "elman.export.onnx",
        "SequenceGraph": "elman.export.onnx",
        "StepGraph": "elman.export.onnx",
        "check_export": "elman.export.onnx",
        "check_export_horizon": "elman.export.onnx",
        "context_inputs": "elman.export.onnx",
        "export_onnx": "elman.export.onnx",
        "metadata": "elman.export.onnx",
        "placeholder_future": "elman.export.onnx",
        "read_metadata": "elman.export.onnx",
        "scaler_table": "elman.export.onnx",
        "sequence_graph": "elman.export.onnx",
        "sequence_parity": "elman.export.onnx",
        "state_batch_axes": "elman.export.onnx",
        "step_graph": "elman.export.onnx",
        "step_parity": "elman.export.onnx",
        "step_path_for": "elman.export.onnx",
    },
)
