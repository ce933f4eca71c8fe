import importlib
import json

import pytest


@pytest.mark.parametrize("name", ["demo", "conversion_accuracy"])
def test_experiment_smoke(name, tmp_path):
    importlib.import_module(f"experiments.{name}").main(["--smoke", "--out-dir", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["smoke"] is True


def test_fig3_smoke_writes_four_curves_and_a_plot(tmp_path):
    from experiments import fig3_training_curves

    rows = fig3_training_curves.main(["--smoke", "--out-dir", str(tmp_path)])
    assert [r["run"] for r in rows] == ["fp", "bwn", "bwn-scratch", "xnor"]
    assert all(r["epochs"] == 2 and 0.0 <= r["final_test_acc"] <= 1.0 for r in rows)
    assert (tmp_path / "fig3_training_curves.png").stat().st_size > 10_000
    # a second call reuses the finished runs instead of training again
    again = fig3_training_curves.main(["--smoke", "--out-dir", str(tmp_path)])
    assert again == rows
