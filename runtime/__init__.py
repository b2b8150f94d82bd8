"""Torch-free runtime: dataset readers, image I/O, ONNX Runtime / TensorRT runners, batch translation, evaluation.

Never imports torch, not even indirectly (tests/test_runtime/test_import_boundary.py proves it).
"""
