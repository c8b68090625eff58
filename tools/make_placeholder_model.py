"""Writes models/istpan-tiny-placeholder: the untrained stand-in default model.

    python tools/make_placeholder_model.py

Deterministic (seed 0), so re-running it reproduces the same weights and sha256. It stands in
until the demo model trained on the synthetic dataset replaces it; its labels say they are
meaningless.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ispan_cli.nn import create_model, save_model
from ispan_cli.video.preprocess import SECTION, default_spec

NAME = "istpan-tiny-placeholder"
LABELS = tuple(f"untrained-placeholder-{i}" for i in range(5))
CARD = f"""---
library_name: ispan
pipeline_tag: video-classification
tags: [ispan, istpan, placeholder, untrained]
---

# {NAME}

**Untrained placeholder. Its predictions mean nothing.**

`istpan_tiny` (ISTPAN on a 0.3M-parameter CNN at 112 px, 8 segments) with random weights
(`torch.manual_seed(0)`), five classes named `untrained-placeholder-0` to `-4`. It exists so
that `ispan classify` and `make demo` run end to end before a trained default model is bundled;
the demo model trained with `ispan train` on the synthetic dataset will replace it.

- Made by: `python tools/make_placeholder_model.py`
- Data, training, metrics: none.
"""


def main() -> None:
    torch.manual_seed(0)
    model = create_model("istpan_tiny", labels=LABELS).eval()
    out = Path(__file__).resolve().parent.parent / "models" / NAME
    save_model(model, out, extra={SECTION: default_spec(model.config).to_dict()})
    (out / "README.md").write_text(CARD)
    print(out)


if __name__ == "__main__":
    main()
