"""Each closed choice the CLI offers is the library's own tuple: a value added to one side only
(a new runtime, dataset or decoder) fails here instead of being refused or offered wrongly."""

from __future__ import annotations

import pytest

from ispan_cli.commands import benchmark, classify, options, train
from ispan_cli.data.catalog import DATASETS
from ispan_cli.inference.records import FORMATS
from ispan_cli.runtime.device import PRECISIONS
from ispan_cli.runtime.loading import RUNTIMES
from ispan_cli.video.decoder import DECODERS
from ispan_cli.video.preprocess import CROP_COUNTS

PAIRS = [
    (options.Precision, PRECISIONS),
    (options.Runtime, RUNTIMES),
    (options.Crops, tuple(str(c) for c in CROP_COUNTS)),
    (options.Decoder, DECODERS),
    (classify.RecordFormat, FORMATS),
    (train.DatasetName, DATASETS),
    (benchmark.BenchRuntime, (*RUNTIMES, "all")),
]


@pytest.mark.parametrize("enum, values", PAIRS, ids=lambda p: getattr(p, "__name__", ""))
def test_cli_choices_are_the_library_tuples(enum, values) -> None:
    assert tuple(m.value for m in enum) == tuple(values)


def test_table_and_json_are_record_formats() -> None:
    """`--format table|json` on every other command is a subset of classify's formats."""
    assert {m.value for m in options.OutputFormat} <= set(FORMATS)
