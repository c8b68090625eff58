"""Predictors (PyTorch, ONNX Runtime) behind one interface, and where they run."""
