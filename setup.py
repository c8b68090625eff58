"""Packaging that pyproject.toml cannot express: the bundled model zoo.

``models/`` stays one folder at the top of the repository (laid out like Hub model repos, read
in place by a checkout and an editable install); a wheel carries it as package data under
``ispan_cli/_zoo/`` so a normal install has the default model too (``ispan_cli.zoo.zoo_dir``).
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["ispan_cli*"]), "ispan_cli._zoo"],
    package_dir={"ispan_cli._zoo": "models"},
    package_data={
        "ispan_cli._zoo": ["*.md", "*/*.json", "*/*.safetensors", "*/*.md"],
        # `ispan models import`: the checkpoint catalogue and the datasets' class-name lists
        "ispan_cli.importers": ["catalogue.json", "labels/*.txt"],
    },
)
