"""Device kernel time per step from profiler traces (Chrome trace JSON, as written by
`dpunet bench train --profile` and `pytorch_reference.py --profile`), side by side.

  python bench/trace_kernels.py [--steps 3] [--top 40] NAME=TRACE.json [NAME=TRACE.json ...]

Prints, per trace, the kernel time per step by kind (convolution, normalisation,
elementwise, ...) and the kernels that take the most time, each in ms per step.
"""
import argparse
import collections
import json
import re

KINDS = [  # first match wins; matched against the lower-cased kernel name
    # dpunet's own kernels (src/model/*_kernels.cu) have generic names in one namespace.
    ("normalisation", r"dpunet::model::cuda::.*(statistics_|forward_apply|backward_partial|backward_finalize|"
                      r"backward_apply)"),
    ("pool/upsample/cat", r"dpunet::model::cuda::.*(forward_kernel|backward_kernel|split_kernel)"),
    # The optimizer before normalisation (gradient-norm kernels), normalisation before
    # convolution (cuDNN's own batch-norm kernels are named cudnn::bn_...).
    ("optimizer", r"adam|foreach|multi_tensor|fused_|lpnorm|clip_grad"),
    ("normalisation", r"batch_norm|batchnorm|bn_|welford|norm"),
    ("convolution", r"conv|cudnn|xmma|implicit_gemm|dgrad|wgrad|fprop|sm90_|cutlass|gemm|nchwtonhwc|nhwctonchw"),
    ("pool/upsample/cat", r"pool|(?<!s)cat|upsample|pad"),  # not "scatter" (one_hot)
    ("reduction", r"reduce"),
    ("copy/fill", r"copy|fill|memset|memcpy"),
    ("elementwise", r"elementwise|vectorized|unrolled|threshold|relu"),
]


def kind_of(name):
    lower = name.lower()
    for kind, pattern in KINDS:
        if re.search(pattern, lower):
            return kind
    return "other"


def kernels(path):
    with open(path) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    per_name, calls = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e.get("cat") in ("kernel", "gpu_memset", "gpu_memcpy"):
            per_name[e["name"]] += e.get("dur", 0) / 1000.0  # ms
            calls[e["name"]] += 1
    return per_name, calls


def main():
    p = argparse.ArgumentParser()
    p.add_argument("traces", nargs="+", help="NAME=TRACE.json")
    p.add_argument("--steps", type=int, default=3, help="steps each trace holds")
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args()
    tables, call_counts = {}, {}
    for item in args.traces:
        name, _, path = item.partition("=")
        per_name, calls = kernels(path)
        tables[name] = {k: v / args.steps for k, v in per_name.items()}
        call_counts[name] = {k: c // args.steps for k, c in calls.items()}
    names = list(tables)
    print("kernel ms per step by kind")
    print(f"{'kind':<22}" + "".join(f"{n:>14}" for n in names))
    kinds = [k for k, _ in KINDS] + ["other", "total"]
    for kind in kinds:
        row = []
        for n in names:
            t = tables[n]
            row.append(sum(v for k, v in t.items() if kind == "total" or kind_of(k) == kind))
        print(f"{kind:<22}" + "".join(f"{v:>14.2f}" for v in row))
    for n in names:
        t = tables[n]
        print(f"\ntop kernels of {n} (ms and calls per step)")
        for k, v in sorted(t.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"{v:9.3f} {call_counts[n][k]:5d}  {kind_of(k):<18} {k[:150]}")


if __name__ == "__main__":
    main()
