"""Where a profiler trace's memory peaks: the largest total allocated on each device, the
operators its thread was running at that moment (outermost first), and the total
allocated as each autograd node before it began. Reads the Chrome traces `dpunet bench
train --profile` and bench/pytorch_reference.py --profile write (plain or gzipped JSON).
A GPU's totals are the caching allocator's; the CPU's count only what was allocated
after the profiler started.

    .venv/bin/python bench/trace_memory.py trace.checkpointed.json [--unit-bytes B] [--context N]
"""
import argparse
import bisect
import gzip
import json


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt") as f:
            return json.load(f)["traceEvents"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"{path}: not a Chrome trace ({type(e).__name__}: {e})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--unit-bytes", type=float, default=0,
                        help="also give sizes in this unit (e.g. one activation map's bytes)")
    parser.add_argument("--context", type=int, default=12, help="autograd nodes listed before the peak")
    args = parser.parse_args()

    events = load(args.trace)
    memory = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    ops = [e for e in events if e.get("ph") == "X" and e.get("cat") == "cpu_op"]
    if not memory:
        raise SystemExit(f"{args.trace}: no [memory] events (recorded without profile_memory?)")

    def size(b):
        text = f"{b / 2**20:10.1f} MiB"
        return text + (f" = {b / args.unit_bytes:6.2f} units" if args.unit_bytes else "")

    def allocated_at(ts, device_memory):
        i = bisect.bisect_right([m["ts"] for m in device_memory], ts) - 1
        return device_memory[i]["args"]["Total Allocated"] if i >= 0 else 0

    devices = sorted({(m["args"]["Device Type"], m["args"]["Device Id"]) for m in memory})
    for device in devices:
        mine = [m for m in memory if (m["args"]["Device Type"], m["args"]["Device Id"]) == device]
        peak = max(mine, key=lambda m: m["args"]["Total Allocated"])
        ts = peak["ts"]
        print(f"device type {device[0]} id {device[1]}: peak {size(peak['args']['Total Allocated'])} "
              f"(allocation of {size(peak['args']['Bytes'])})")
        thread = (peak.get("pid"), peak.get("tid"))
        enclosing = sorted((o for o in ops if (o.get("pid"), o.get("tid")) == thread
                            and o["ts"] <= ts <= o["ts"] + o.get("dur", 0)), key=lambda o: o["ts"])
        for o in enclosing:
            print(f"    in {o['name']}")
        nodes = sorted((o for o in ops if (o.get("pid"), o.get("tid")) == thread
                        and "evaluate_function" in o["name"] and o["ts"] <= ts), key=lambda o: o["ts"])
        print("  autograd nodes before it, with the total allocated as each began:")
        for o in nodes[-args.context:]:
            print(f"    {size(allocated_at(o['ts'], mine))}  {o['name'].split(': ', 1)[-1]}")


if __name__ == "__main__":
    main()
