"""PyTorch's torch.utils.checkpoint over the reference U-Net's ten blocks, measured the
way `dpunet bench model` measures (one process per variant, peak RSS above the pre-step
baseline with gradients kept allocated, median step time), printing the same JSON keys.

    .venv/bin/python bench/pytorch_checkpoint_reference.py --size 256 --batch 2 --threads 1
"""
import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def run_variant(args, checkpointed):
    import torch
    import torch.nn.functional as F
    from reference_unet import UNet

    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD, as dpunet's bench sets it
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = UNet(args.n_channels, args.n_classes).train()
    net.use_checkpointing(checkpointed)
    x = torch.randn(args.batch, args.n_channels, args.size, args.size)
    target = torch.randint(args.n_classes, (args.batch, args.size, args.size))

    def step():
        F.cross_entropy(net(x), target).backward()

    for _ in range(args.warmup):
        step()
    for p in net.parameters():
        p.grad.zero_()
    libc.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    baseline = status_bytes("VmRSS:")
    step()
    peak = status_bytes("VmHWM:") - baseline

    forward_ms, step_ms = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        y = net(x)
        forward_ms.append((time.perf_counter() - t0) * 1e3)
        del y
        for p in net.parameters():
            p.grad.zero_()
        t0 = time.perf_counter()
        step()
        step_ms.append((time.perf_counter() - t0) * 1e3)
    return {"checkpointing": checkpointed, "forward_ms": statistics.median(forward_ms),
            "forward_backward_ms": statistics.median(step_ms), "peak_bytes_above_baseline": peak}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-channels", type=int, default=1)
    parser.add_argument("--n-classes", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", choices=["both", "plain", "checkpointed"], default="both")
    args = parser.parse_args()
    if args.warmup < 1:  # the first step allocates the gradients (and compiles), not for timing
        parser.error(f"--warmup must be at least 1, got {args.warmup}")

    if args.variant != "both":
        print(json.dumps(run_variant(args, args.variant == "checkpointed")))
        return
    results = {}
    for variant in ("plain", "checkpointed"):
        argv = [sys.executable, os.path.abspath(__file__), "--variant", variant] + [
            f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k != "variant"]
        results[variant] = json.loads(subprocess.check_output(argv))
    import torch
    plain, ckpt = results["plain"], results["checkpointed"]
    print(json.dumps({
        "benchmark": "model", "implementation": "pytorch torch.utils.checkpoint (ten blocks)",
        "device": "cpu", "threads": args.threads, "size": args.size, "batch": args.batch,
        "torch_version": torch.__version__, "plain": plain, "checkpointed": ckpt,
        "memory_ratio": ckpt["peak_bytes_above_baseline"] / max(1, plain["peak_bytes_above_baseline"]),
        "time_ratio": ckpt["forward_backward_ms"] / plain["forward_backward_ms"],
    }, indent=2))


if __name__ == "__main__":
    main()
