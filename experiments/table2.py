"""Table 2 (ImageNet): Table 1 (:mod:`experiments.table1`, whose docstring gives the selection
protocol) with the paper's ImageNet setting (VGG-15 at 224x224, 99.9th percentile over 80
calibration images). Needs a GPU and the ImageNet folders.

    python -m experiments.table2 --runs-dir RUNS --data-root DATA --device cuda \\
        --timesteps 512 --limit 0 --batch-size 64
"""

from __future__ import annotations

from collections.abc import Sequence
from experiments.harness import TableSetup, parse_table_args, run_table

Config = TableSetup  # the frozen setup of this experiment (shared with experiments.table1)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    return parse_table_args(argv, __doc__, dataset="imagenet", percentile=99.9,
                            out_dir="results/table2")


def main(argv: Sequence[str] | None = None) -> dict:
    return run_table(parse_args(argv))


if __name__ == "__main__":
    main()
