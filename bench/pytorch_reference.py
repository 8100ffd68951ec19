"""The training step of `dpunet bench train`, in PyTorch eager (and torch.compile), for
side-by-side throughput: the reference U-Net (bench/reference_unet.py), cross-entropy +
soft Dice (background excluded), AdamW, synthetic batches on the device, the same timing
(warm-up steps, then the mean of timed steps). Prints JSON.

  python bench/pytorch_reference.py --size 572 --batch 8 --precision bf16 --device cuda [--compile]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

from reference_unet import UNet


def loss_fn(logits, target, classes):
    logits = logits.float()
    ce = F.cross_entropy(logits, target)
    probabilities = torch.softmax(logits, 1)
    one_hot = F.one_hot(target, classes).permute(0, 3, 1, 2).float()
    intersection = (probabilities * one_hot).sum((0, 2, 3))
    total = probabilities.sum((0, 2, 3)) + one_hot.sum((0, 2, 3))
    dice = (2 * intersection + 1e-5) / (total + 1e-5)
    return ce + (1 - dice[1:].mean())


def forward_flops_per_sample(size, classes, device):
    """The model's forward FLOPs for one sample, counted by PyTorch's own FLOP counter
    (convolutions and transposed convolutions, 2 per multiply-add), to set against
    `dpunet bench train`'s formula: training is 3x forward there and here."""
    from torch.utils.flop_counter import FlopCounterMode

    model = UNet(1, classes).to(device).eval()  # BatchNorm in training needs two values per channel
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 1, size, size, device=device))
    return counter.get_total_flops()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--classes", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--channels-last", type=int, default=1, help="NHWC model and input on CUDA (1) or not (0)")
    p.add_argument("--profile", help="also write a profiler trace of 3 steps to this JSON file")
    p.add_argument("--peak-tflops", type=float, default=0,
                   help="the device's dense peak for the precision: adds mfu (dpunet bench train reports "
                        "the peak it used)")
    args = p.parse_args()
    if args.warmup < 1:  # the first step allocates the gradients (and compiles), not for timing
        p.error(f"--warmup must be at least 1, got {args.warmup}")
    for name in ("size", "batch", "classes", "steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.precision == "bf16" and not args.device.startswith("cuda"):
        p.error("--precision bf16 is CUDA autocast (as dpunet bench train's); use fp32 on the CPU")

    device = torch.device(args.device)
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    model = UNet(1, args.classes).to(device)
    if args.checkpointing:
        model.use_checkpointing()
    channels_last = bool(args.channels_last) and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if args.compile else model
    # The same step as `dpunet bench train`: fused AdamW, gradient norm clipped at 12.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4, fused=True)
    images = torch.randn(args.batch, 1, args.size, args.size, device=device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    target = torch.randint(0, args.classes, (args.batch, args.size, args.size), device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            logits = step_model(images)
        loss_fn(logits, target, args.classes).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0, foreach=True)
        optimizer.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    step_ms = (time.perf_counter() - start) * 1000 / args.steps
    result = {
        "benchmark": "pytorch_reference_train",
        "mode": "compile" if args.compile else "eager",
        "device": str(device),
        "size": args.size,
        "batch": args.batch,
        "precision": args.precision,
        "checkpointing": args.checkpointing,
        "channels_last": channels_last,
        "optimizer": "fused AdamW, clip 12",
        "threads": torch.get_num_threads(),
        "step_ms": step_ms,
        "samples_per_s": args.batch * 1000 / step_ms,
        "torch_version": torch.__version__,
    }
    if device.type == "cuda":
        result["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 1e6
    train_flops = 3 * forward_flops_per_sample(args.size, args.classes, device)
    result["train_gflop_per_sample"] = train_flops / 1e9
    result["achieved_tflops"] = train_flops * result["samples_per_s"] / 1e12
    if args.peak_tflops > 0:
        result["peak_tflops"] = args.peak_tflops
        result["mfu"] = result["achieved_tflops"] / args.peak_tflops
    if args.profile:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        # Allocations too, as dpunet's traces have them (bench/trace_memory.py).
        with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
            for _ in range(3):
                step()
            sync()
        prof.export_chrome_trace(args.profile)
        result["profile"] = args.profile
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
