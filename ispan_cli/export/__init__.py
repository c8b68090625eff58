"""ONNX export: the graph, its self-describing metadata, verification and int8 quantization.

Nothing here is imported by ``ispan --help``; torch, onnx and onnxruntime load inside functions
or on import of the submodules that need them.
"""
