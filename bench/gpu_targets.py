#!/usr/bin/env python3
"""The GPU step's targets, read off the results of `scripts/gpu_measure.sh measure`.

    python3 bench/gpu_targets.py OUT/gpu_results.jsonl [MORE.jsonl ...]

Each file is one device call: ratios pair records of the same file only (one machine,
one run), never across calls. For every target the best measured figure is shown with
the records it comes from, and whether it meets the target; a target no record speaks
to says so. Records are `dpunet bench train` and bench/pytorch_reference.py outputs,
tagged by gpu_measure.sh; others (ddp, allreduce) are passed over.
"""
import argparse
import json
import sys

SIZE = 572  # the targets' tile
PRECISION = "bf16"

# name, comparison, threshold, kind of figure: ratio or share
TARGETS = [
    ("samples/s vs PyTorch eager, same batch", ">=", 1.1, "ratio"),
    ("samples/s vs torch.compile, same batch", ">=", 0.9, "ratio"),
    ("MFU at the best batch", ">=", 0.45, "share"),
]
# Checkpointing's two figures go together (one policy must meet both).
CHECKPOINT_BATCH, CHECKPOINT_TIME = 2.0, 1.35


def read_records(path):
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SystemExit(f"gpu_targets.py: {path}:{number}: not a JSON line ({e.msg})")
    return records


def dpunet_rows(records):
    """(record, row) of every bench train result at the targets' size and precision."""
    for r in records:
        if r.get("benchmark") != "train" or r.get("size") != SIZE or r.get("precision") != PRECISION:
            continue
        for row in r.get("results", []):
            yield r, row


def references(records, mode):
    return [r for r in records if r.get("benchmark") == "pytorch_reference_train" and r.get("mode") == mode
            and r.get("size") == SIZE and r.get("precision") == PRECISION and not r.get("checkpointing")]


def versus_pytorch(records, mode, source):
    """Each plain dpunet step against the PyTorch `mode` step at its batch."""
    found = []
    for r, row in dpunet_rows(records):
        if row.get("checkpointing") != "none":
            continue
        for ref in references(records, mode):
            if ref.get("batch") == r.get("batch_per_rank") and r.get("ranks", 1) == 1:
                found.append((row["samples_per_s"] / ref["samples_per_s"],
                              f"{source}: {r.get('tag')} {row['samples_per_s']:.1f} / {ref.get('tag')} "
                              f"{ref['samples_per_s']:.1f} samples/s, batch {ref['batch']}"))
    return found


def largest_timed_batch(row):
    """The largest batch whose timed run fitted: older records searched with two-step tries
    and timed a smaller batch afterwards (largest_batch_timed); now every try is timed."""
    return row.get("largest_batch_timed", row.get("largest_batch"))


def utilisation(records, source):
    found = []
    for r, row in dpunet_rows(records):
        if "mfu" in row:
            found.append((row["mfu"], f"{source}: {r.get('tag')} {row['checkpointing']}, batch {r['batch_per_rank']}"))
        if row.get("largest_batch_mfu") is not None:
            found.append((row["largest_batch_mfu"],
                          f"{source}: {r.get('tag')} {row['checkpointing']}, batch {largest_timed_batch(row)}"))
    return found


def checkpointing(records, source):
    """Per bench train record with a plain and a checkpointed row, both with a largest
    batch: (batch ratio, step time ratio at the timed batch, where from)."""
    found = []
    for r in records:
        if r.get("benchmark") != "train" or r.get("size") != SIZE or r.get("precision") != PRECISION:
            continue
        rows = r.get("results", [])
        plain = [row for row in rows if row.get("checkpointing") == "none"]
        checkpointed = [row for row in rows if row.get("checkpointing") != "none"]
        if not plain or not checkpointed:
            continue
        p, c = plain[0], checkpointed[0]
        p_batch, c_batch = largest_timed_batch(p), largest_timed_batch(c)
        if not p_batch or not c_batch:
            continue
        found.append((c_batch / p_batch, c["step_ms"] / p["step_ms"],
                      f"{source}: {r.get('tag')} {c['checkpointing']}, batches {c_batch} / {p_batch}, "
                      f"{c['step_ms']:.2f} / {p['step_ms']:.2f} ms at batch {r['batch_per_rank']}"))
    return found


def main():
    parser = argparse.ArgumentParser(description="The GPU step's targets from gpu_measure.sh's results")
    parser.add_argument("results", nargs="+", help="gpu_results.jsonl files, one per device call")
    args = parser.parse_args()
    figures = [[] for _ in TARGETS]
    capacity = []
    for path in args.results:
        try:
            records = read_records(path)
        except OSError as e:
            raise SystemExit(f"gpu_targets.py: {path}: {e.strerror}")
        figures[0] += versus_pytorch(records, "eager", path)
        figures[1] += versus_pytorch(records, "compile", path)
        figures[2] += utilisation(records, path)
        capacity += checkpointing(records, path)
    print("| target | best measured | from | met |")
    print("|---|---|---|---|")
    for (name, comparison, threshold, kind), found in zip(TARGETS, figures):
        goal = f"{comparison} {threshold:.0%}" if kind == "share" else f"{comparison} {threshold}x"
        if not found:
            print(f"| {name} ({goal}) | - | no record | not measured |")
            continue
        value, origin = max(found)
        shown = f"{value:.1%}" if kind == "share" else f"{value:.2f}x"
        print(f"| {name} ({goal}) | {shown} | {origin} | {'yes' if value >= threshold else 'no'} |")
    name = f"checkpointing: largest batch >= {CHECKPOINT_BATCH}x at <= {CHECKPOINT_TIME}x the step time"
    if not capacity:
        print(f"| {name} | - | no record | not measured |")
    else:
        # A policy meeting both if there is one, else the largest batch ratio.
        meets = lambda f: f[0] >= CHECKPOINT_BATCH and f[1] <= CHECKPOINT_TIME
        batch, time, origin = max(capacity, key=lambda f: (meets(f), f[0]))
        met = "yes" if meets((batch, time)) else "no"
        print(f"| {name} | {batch:.2f}x batch at {time:.2f}x time | {origin} | {met} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
