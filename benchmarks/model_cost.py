"""Cost of ISTPAN: parameters, FLOPs, and forward time of the whole model vs the attention layer.

    python benchmarks/model_cost.py [--model istpan_resnet50] [--segments 8] [--size 224]

Both forward passes are timed interleaved in one run (median of --repeats), so the ratio is
meaningful on a noisy machine. Target (issue 2): the attention layer costs at most 5% of the
model's forward time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ispan_cli.nn import count_parameters, create_model


def _timed(fn, sync) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def _flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="istpan_resnet50")
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=101).eval().to(device)
    if model.attention is None:
        raise SystemExit(f"{args.model} has no attention layer to measure")
    x = torch.randn(args.batch, args.segments, 3, args.size, args.size, device=device)
    with torch.inference_mode():
        outs = model.backbone.run(x.flatten(0, 1), stop=model._attention_stage + 1)
        levels = [outs[i] for i in model._taps]  # the attention layer's real inputs

        def whole():
            return model(x)

        def attention():
            return model.attention(levels, args.segments)

        whole(), attention()  # warm-up
        t_model, t_att = [], []
        for _ in range(args.repeats):  # interleaved: both see the same machine state
            t_model.append(_timed(whole, sync))
            t_att.append(_timed(attention, sync))
        flops_model, flops_att = _flops(whole), _flops(attention)

    params, params_att = count_parameters(model), count_parameters(model.attention)
    ms_model, ms_att = statistics.median(t_model) * 1e3, statistics.median(t_att) * 1e3
    result = {
        "model": args.model,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "input": [args.batch, args.segments, 3, args.size, args.size],
        "parameters": params,
        "attention_parameters": params_att,
        "gflops": flops_model / 1e9,
        "attention_gflops": flops_att / 1e9,
        "forward_ms": ms_model,
        "attention_ms": ms_att,
        "attention_time_share": ms_att / ms_model,
        "target_met": ms_att / ms_model <= 0.05,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{args.model} on {result['device']} ({result['threads']} threads), input "
        f"{tuple(result['input'])}, median of {args.repeats} interleaved runs"
    )
    print(f"{'':22}{'whole model':>14}{'attention':>14}{'share':>10}")
    print(f"{'parameters':22}{params:>14,}{params_att:>14,}{params_att / params:>10.3%}")
    print(
        f"{'GFLOPs':22}{flops_model / 1e9:>14.2f}{flops_att / 1e9:>14.3f}"
        f"{flops_att / flops_model:>10.3%}"
    )
    print(f"{'forward time (ms)':22}{ms_model:>14.1f}{ms_att:>14.2f}{ms_att / ms_model:>10.3%}")
    verdict = "met" if result["target_met"] else "NOT met"
    print(f"target: attention <= 5% of forward time: {verdict}")


if __name__ == "__main__":
    main()
