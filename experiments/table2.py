"""Table 2 (ImageNet): :mod:`experiments.table1` with the paper's ImageNet setting (VGG-15 at
224x224, 99.9th percentile over 80 calibration images). Needs a GPU and the ImageNet folders.

    python -m experiments.table2 --runs-dir RUNS --data-root DATA --device cuda \\
        --timesteps 512 --limit 0 --batch-size 64
"""

from __future__ import annotations

from collections.abc import Sequence

from experiments import table1


def main(argv: Sequence[str] | None = None) -> dict:
    return table1.main(argv, dataset="imagenet", percentile=99.9, out_dir="results/table2")


if __name__ == "__main__":
    main()
