"""Table 1 (CIFAR-100; ``--dataset fashion-mnist`` on a CPU): ANN, SNN and B-SNN accuracy,
the timesteps the converted networks need to come within 1 point of their ANN, and the
normalized #OPS there without and with early exit, with the mean exit timestep. SIF neurons,
v(0) = theta/2, one-step mode.

Selection protocol: the settings are chosen on the val split (training-set images that no
model trains on; ``--select-limit`` images of it are simulated) and scored on the test split.
On validation, ``T_ref`` is the first step within 1 point (``--within``) of the ANN's
validation accuracy, and the early-exit threshold is the one with the lowest mean exit step
whose accuracy stays within 0.1 points (``--tolerance``) of the run at ``T_ref``; every sample
exits by ``T_ref`` at the latest (the cap), and threshold = inf (the fixed latency itself) is
a candidate, so early exit never runs longer than ``T_ref``. When its mean exit is not below
``T_ref`` the table says "no saving". On test: the accuracy and #OPS at that ``T_ref``, and
the early exit's accuracy, mean exit and #OPS at that threshold. A second table shows what
choosing both on the test set would have given. Accuracies measured on fewer than 10,000
images carry their 95 % Wilson interval.

    python -m experiments.table1 --dataset fashion-mnist --limit 0        # ~12 min + validation
    # (the validation run adds 5,000 images per network: ~50 % more; --select-limit N for less)
    python -m experiments.table1 --dataset cifar100 --runs-dir RUNS --data-root DATA \\
        --device cuda --timesteps 512 --percentile 99.7 --limit 0         # the paper's setting
"""

from __future__ import annotations

from collections.abc import Sequence
from experiments.harness import TableSetup, parse_table_args, run_table

Config = TableSetup  # the frozen setup of this experiment (shared with experiments.table2)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    return parse_table_args(argv, __doc__, dataset="cifar100", percentile=99.7,
                            out_dir="results/table1")


def main(argv: Sequence[str] | None = None) -> dict:
    return run_table(parse_args(argv))


if __name__ == "__main__":
    main()
