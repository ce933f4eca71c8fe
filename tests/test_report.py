from bsnn_bindsnet.simulation.report import accuracy_csv, accuracy_table


def test_accuracy_table_plain_and_with_95_percent_intervals():
    curves = {"B-SNN": [0.5, 0.9]}
    plain = accuracy_table(curves, {"B-SNN": 0.92}, steps=(1, 2, 4))
    assert plain.splitlines() == ["| network | ANN | T=1 | T=2 |", "|---|---|---|---|",
                                  "| B-SNN | 92.00 | 50.00 | 90.00 |"]
    # 5 of 10 correct: Wilson 95 % interval [23.7, 76.3] (hand-checked in test_analysis_stats)
    with_n = accuracy_table({"B-SNN": [0.5]}, steps=(1,), n=10)
    assert with_n.splitlines()[-1] == "| B-SNN |  | 50.00 [23.7, 76.3] |"
    # 10,000 images or more: no interval
    assert accuracy_table(curves, steps=(1,), n=10_000).splitlines()[-1] == "| B-SNN |  | 50.00 |"


def test_accuracy_csv_one_row_per_step():
    assert accuracy_csv({"a": [0.5, 0.25], "b": [1.0]}) == (
        "timestep,a,b\n1,0.500000,1.000000\n2,0.250000,\n")
