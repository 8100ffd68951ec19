#!/usr/bin/env python3
"""The GPU training step's targets, read off the results of `scripts/gpu_measure.sh measure`.

    python3 bench/gpu_targets.py OUT/gpu_results.jsonl [MORE.jsonl ...]

Each file is one device call: ratios pair records of the same file only (one machine,
one run), never across calls. For every target the best measured figure is shown with
the records it comes from, and whether it meets the target; a target no record speaks
to says so. Records are `dpunet bench train` and bench/pytorch_reference.py outputs,
tagged by gpu_measure.sh; others (ddp, allreduce) are passed over, and so are steps of
another model than the targets' (the reference U-Net: 572x572 tiles, same padding, base
width 64, depth 4, bf16, one rank).
"""
import argparse
import json
import sys

SIZE, PRECISION, PADDING, BASE_CHANNELS, DEPTH = 572, "bf16", "same", 64, 4

# name, threshold (a figure meets it at or above), kind of figure: ratio or share
TARGETS = [
    ("samples/s vs PyTorch eager, same batch", 1.1, "ratio"),
    ("samples/s vs torch.compile, same batch", 0.9, "ratio"),
    ("MFU at the best batch", 0.45, "share"),
]
# Checkpointing's two figures go together (one policy must meet both).
CHECKPOINT_BATCH, CHECKPOINT_TIME = 2.0, 1.35


class BadRecord(Exception):
    """A record without a figure the targets need, or with one of the wrong kind."""


def number(mapping, key):
    """mapping[key] as a number; BadRecord naming the key otherwise."""
    value = mapping.get(key) if isinstance(mapping, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRecord(f"'{key}' is {json.dumps(value)}, not a number")
    return value


def positive(mapping, key):
    value = number(mapping, key)
    if value <= 0:
        raise BadRecord(f"'{key}' is {value}, not above zero")
    return value


def read_records(path):
    """The file's JSON objects, each with its line number; other lines are an error."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"gpu_targets.py: {path}:{line_number}: not a JSON line ({e.msg})")
            if not isinstance(record, dict):
                raise SystemExit(f"gpu_targets.py: {path}:{line_number}: not a JSON object")
            record["_line"] = line_number
            if record.get("partial"):
                # What a bench train that timed out or failed had said so far
                # (gpu_measure.sh says which): its figures stand, and the table says where
                # they came from.
                why = record["partial"] if isinstance(record["partial"], str) else "timed out"
                record["tag"] = f"{record.get('tag')} (partial: {why})"
            records.append(record)
    return records


def is_target_model(r):
    # The reference's BatchNorm: a step of another norm is another model.
    return (r.get("benchmark") == "train" and r.get("size") == SIZE and r.get("precision") == PRECISION
            and r.get("norm", "batch") == "batch"
            and r.get("padding", PADDING) == PADDING and r.get("base_channels", BASE_CHANNELS) == BASE_CHANNELS
            and r.get("depth", DEPTH) == DEPTH and r.get("ranks", 1) == 1)


def dpunet_rows(records):
    """(record, row) of every bench train result of the targets' model."""
    for r in records:
        if not is_target_model(r):
            continue
        rows = r.get("results")
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise BadRecord(f"line {r['_line']}: 'results' is not a list of objects")
        for row in rows:
            yield r, row


def fastest_references(records, mode):
    """PyTorch's `mode` step of the targets' model, the fastest of each batch."""
    fastest = {}
    for r in records:
        if (r.get("benchmark") != "pytorch_reference_train" or r.get("mode") != mode or r.get("size") != SIZE
                or r.get("precision") != PRECISION or r.get("checkpointing")):
            continue
        batch, speed = number(r, "batch"), positive(r, "samples_per_s")
        if batch not in fastest or speed > fastest[batch]["samples_per_s"]:
            fastest[batch] = r
    return fastest


def versus_pytorch(records, mode, source):
    """Each plain dpunet step against the fastest PyTorch `mode` step at its batch."""
    references = fastest_references(records, mode)
    found = []
    for r, row in dpunet_rows(records):
        if row.get("checkpointing") != "none":
            continue
        ref = references.get(number(r, "batch_per_rank"))
        if ref is None:
            continue
        ours = positive(row, "samples_per_s")
        found.append((ours / ref["samples_per_s"],
                      f"{source}: {r.get('tag')} {ours:.1f} / {ref.get('tag')} "
                      f"{ref['samples_per_s']:.1f} samples/s, batch {ref['batch']}"))
    return found


def largest_timed_batch(row):
    """The largest batch whose timed run fitted, or None: older records searched with
    two-step tries and timed a smaller batch afterwards (largest_batch_timed), the oldest
    timed none (neither key); newer ones time every try, and a null largest_batch_step_ms
    says the timed run did not fit."""
    if row.get("largest_batch_timed") is not None:
        return number(row, "largest_batch_timed")
    if row.get("largest_batch") is None or row.get("largest_batch_step_ms") is None:
        return None
    return number(row, "largest_batch")


def utilisation(records, source):
    found = []
    for r, row in dpunet_rows(records):
        where = f"{source}: {r.get('tag')} {row.get('checkpointing')}"
        if row.get("mfu") is not None:
            found.append((number(row, "mfu"), f"{where}, batch {r.get('batch_per_rank')}"))
        if row.get("largest_batch_mfu") is not None:
            found.append((number(row, "largest_batch_mfu"), f"{where}, batch {largest_timed_batch(row)}"))
    return found


def policy_of(record, row):
    """The checkpointed row's policy: the record's own field (rows of records before
    2026-12 were all labelled balanced, whatever the policy)."""
    return record.get("checkpoint_policy", row.get("checkpointing"))


# What else makes two bench train records' steps comparable (the model is is_target_model's).
SETUP_KEYS = ("batch_per_rank", "optimizer", "channels_last", "fuse_norm_relu", "pool_concat_kernels")


def checkpointing(records, source):
    """Per bench train record with a checkpointed row whose largest batch was timed:
    (batch ratio, step time ratio at the record's batch, where from), against the plain
    row of its own record; a record of checkpointed rows alone (one policy's search, as
    capacity_more runs them) against the first plain row of the same file whose largest
    batch was timed in the same setup (batch, optimizer, layout, kernels)."""
    by_record = {}
    for r, row in dpunet_rows(records):
        by_record.setdefault(id(r), (r, []))[1].append(row)

    def timed_plain(rows):
        return [row for row in rows
                if row.get("checkpointing") == "none" and largest_timed_batch(row)]

    def setup(r):
        return tuple(r.get(key) for key in SETUP_KEYS)

    plain_in_setup = {}
    for r, rows in by_record.values():
        for row in timed_plain(rows):
            plain_in_setup.setdefault(setup(r), (r, row))
    found = []
    for r, rows in by_record.values():
        checkpointed = [row for row in rows if row.get("checkpointing") not in (None, "none")]
        if not checkpointed:
            continue
        own = timed_plain(rows)
        if own:
            plain_record, p = r, own[0]
        elif not any(row.get("checkpointing") == "none" for row in rows):
            if setup(r) not in plain_in_setup:
                continue
            plain_record, p = plain_in_setup[setup(r)]
        else:
            continue  # its own plain row's largest batch was not timed
        c = checkpointed[0]
        p_batch, c_batch = largest_timed_batch(p), largest_timed_batch(c)
        if not c_batch:
            continue
        p_ms, c_ms = positive(p, "step_ms"), positive(c, "step_ms")
        plain_from = "" if plain_record is r else f" (plain: {plain_record.get('tag')})"
        found.append((c_batch / p_batch, c_ms / p_ms,
                      f"{source}: {r.get('tag')} {policy_of(r, c)}{plain_from}, batches {c_batch} / {p_batch}, "
                      f"{c_ms:.2f} / {p_ms:.2f} ms at batch {r.get('batch_per_rank')}"))
    return found


def shown(value, kind, threshold):
    """The figure as printed, with more digits where the short form would round it onto
    the threshold (a ratio of 1.0996 is not 1.10x)."""
    scale, unit, digits = (100, "%", 1) if kind == "share" else (1, "x", 2)
    if round(value * scale, digits) == round(threshold * scale, digits) and value != threshold:
        digits += 2
    return f"{value * scale:.{digits}f}{unit}"


def table(paths):
    figures = [[] for _ in TARGETS]
    capacity = []
    for path in paths:
        try:
            records = read_records(path)
            figures[0] += versus_pytorch(records, "eager", path)
            figures[1] += versus_pytorch(records, "compile", path)
            figures[2] += utilisation(records, path)
            capacity += checkpointing(records, path)
        except OSError as e:
            raise SystemExit(f"gpu_targets.py: {path}: {e.strerror}")
        except UnicodeDecodeError:
            raise SystemExit(f"gpu_targets.py: {path}: not a text file")
        except BadRecord as e:
            raise SystemExit(f"gpu_targets.py: {path}: {e}")
    lines = ["| target | best measured | from | met |", "|---|---|---|---|"]
    for (name, threshold, kind), found in zip(TARGETS, figures):
        goal = f">= {threshold:.0%}" if kind == "share" else f">= {threshold}x"
        if not found:
            lines.append(f"| {name} ({goal}) | - | no record | not measured |")
            continue
        value, origin = max(found)
        met = "yes" if value >= threshold else "no"
        lines.append(f"| {name} ({goal}) | {shown(value, kind, threshold)} | {origin} | {met} |")
    name = f"checkpointing: largest batch >= {CHECKPOINT_BATCH}x at <= {CHECKPOINT_TIME}x the step time"
    if not capacity:
        lines.append(f"| {name} | - | no record | not measured |")
    else:
        # A policy meeting both if there is one, else the largest batch ratio.
        def meets(figure):
            return figure[0] >= CHECKPOINT_BATCH and figure[1] <= CHECKPOINT_TIME

        batch, time, origin = max(capacity, key=lambda f: (meets(f), f[0]))
        lines.append(f"| {name} | {shown(batch, 'ratio', CHECKPOINT_BATCH)} batch at "
                     f"{shown(time, 'ratio', CHECKPOINT_TIME)} time | {origin} | "
                     f"{'yes' if meets((batch, time)) else 'no'} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description="The GPU training step's targets from gpu_measure.sh's results")
    parser.add_argument("results", nargs="+", help="gpu_results.jsonl files, one per device call")
    print("\n".join(table(parser.parse_args().results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
