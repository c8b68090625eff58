"""ispan: a command-line video action classifier built on ISTPAN (ECCV 2018)."""

__version__ = "0.1.0"

__all__ = ["Classifier", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import ispan_cli` (and `ispan --help`) stays light: the API imports NumPy and,
    # when a Classifier is made, torch or ONNX Runtime. importlib keeps this import out of the
    # layer graph: the top package names the API, it does not depend on it.
    if name == "Classifier":
        import importlib

        return importlib.import_module("ispan_cli.api").Classifier
    raise AttributeError(f"module 'ispan_cli' has no attribute {name!r}")
