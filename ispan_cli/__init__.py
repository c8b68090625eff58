"""ispan: a command-line video action classifier built on ISTPAN (ECCV 2018)."""

__version__ = "0.1.0"
