"""Read py-spy's samples (``py-spy record --format raw``: one line per stack, ``frame;frame;...
count``) and print where the time went: each function's share of the samples with its callees
(inclusive) and without (self), and the share of chosen parts of a stack.

``python -m benchmarks.profile FILE [--top N] [--under FUNCTION] [--part LABEL=F1,F2 ...]``;
``--under`` keeps only the stacks that pass through a function (``receive``, ``run_chunk``...)
and gives shares of those; each ``--part`` names a part of the work by the functions it runs
under, and every sample goes to the first part (in the order given) whose function is in its
stack, or to "other": the parts add up to the whole.
py-spy samples a thread only while it runs (not waiting in a system call), so the shares are of
CPU time, in the Python code and the C code it calls.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def short(frame: str) -> str:
    """``name (package/module.py)``: the line number dropped, the path from the package on."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/wt-bench/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['name']} ({path})"


@dataclass
class Samples:
    stacks: list[tuple[list[str], int]]

    @property
    def total(self) -> int:
        return sum(count for _stack, count in self.stacks)

    def under(self, function: str) -> Samples:
        """Only the stacks through ``function`` (a function's name), cut to start there."""
        kept = []
        for stack, count in self.stacks:
            for index, frame in enumerate(stack):
                if frame.split(" (", 1)[0] == function:
                    kept.append((stack[index:], count))
                    break
        return Samples(kept)

    def inclusive(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for stack, count in self.stacks:
            for frame in set(stack):
                counts[frame] += count
        return counts

    def self_time(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for stack, count in self.stacks:
            if stack:
                counts[stack[-1]] += count
        return counts

    def share(self, *functions: str) -> float:
        """The share of samples whose stack passes through any of ``functions``."""
        if not self.total:
            return 0.0
        names = set(functions)
        hit = sum(
            count
            for stack, count in self.stacks
            if any(frame.split(" (", 1)[0] in names for frame in stack)
        )
        return hit / self.total

    def parts(self, parts: list[tuple[str, set[str]]]) -> dict[str, float]:
        """Each part's share of the samples (see the module's docstring)."""
        counts: Counter[str] = Counter()
        for stack, count in self.stacks:
            names = {frame.split(" (", 1)[0] for frame in stack}
            label = next((label for label, functions in parts if names & functions), "other")
            counts[label] += count
        total = self.total or 1
        return {label: counts[label] / total for label in [*(p[0] for p in parts), "other"]}


def read(paths: Iterable[str]) -> Samples:
    stacks: list[tuple[list[str], int]] = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                text, _, count = line.rstrip("\n").rpartition(" ")
                if not text or not count.isdigit():
                    continue
                stacks.append(([short(f) for f in text.split(";")], int(count)))
    return Samples(stacks)


def report(samples: Samples, top: int = 25) -> str:
    total = samples.total or 1
    lines = [f"{samples.total} samples"]
    lines.append("inclusive (with callees):")
    for frame, count in samples.inclusive().most_common(top):
        lines.append(f"  {100 * count / total:5.1f}%  {frame}")
    lines.append("self:")
    for frame, count in samples.self_time().most_common(top):
        lines.append(f"  {100 * count / total:5.1f}%  {frame}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--under", help="Only the stacks through this function.")
    parser.add_argument(
        "--part", action="append", default=[], help="LABEL=FUNCTION,FUNCTION (repeatable)."
    )
    options = parser.parse_args()
    samples = read(options.files)
    if options.under:
        whole = samples.total
        samples = samples.under(options.under)
        print(f"{options.under}: {100 * samples.total / (whole or 1):.1f}% of all samples")
    if options.part:
        parts = []
        for spec in options.part:
            label, _, functions = spec.partition("=")
            parts.append((label, set(functions.split(","))))
        for label, share in samples.parts(parts).items():
            print(f"  {100 * share:5.1f}%  {label}")
        return
    print(report(samples, options.top))


if __name__ == "__main__":
    main()
