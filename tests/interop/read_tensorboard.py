"""Prints the scalars of a TensorBoard log directory as JSON, read with TensorBoard's own
event reader: {tag: [[step, value], ...]}.

    python read_tensorboard.py LOGDIR
"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    accumulator = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
    accumulator.Reload()
    print(json.dumps({tag: [[e.step, e.value] for e in accumulator.Scalars(tag)]
                      for tag in accumulator.Tags()["scalars"]}))


if __name__ == "__main__":
    main()
