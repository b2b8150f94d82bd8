"""Checkpoint -> ONNX (FP32) -> FP16 ONNX -> TensorRT engine, each step validated, plus the sidecar."""

EXPORTER_VERSION = "0.1.0"
