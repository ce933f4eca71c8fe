import importlib
import json

import pytest


FIGURES = {"demo": [], "conversion_accuracy": ["accuracy.png"],
           "fig5_pooling": ["fig5_pooling.png"], "fig6_reset_ifr": ["fig6_reset_ifr.png"],
           "fig7_activation_histogram": ["fig7_activation_histogram.png"],
           "fig8_percentile": ["fig8_percentile.png"],
           "fig9_ops_accuracy": ["fig9_ops_accuracy.png"],
           "fig10_11_early_exit": ["fig10_early_exit.png", "fig11_exit_histogram.png"],
           "table1": [], "table2": [], "xnor_bsnn_table1": []}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny digits models trained once for every smoke run of this module."""
    return ["--runs-dir", str(tmp_path_factory.mktemp("smoke-models"))]


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_experiment_smoke(name, tmp_path, runs):
    args = ["--smoke", "--out-dir", str(tmp_path)] + (runs if name != "demo" else [])
    importlib.import_module(f"experiments.{name}").main(args)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["smoke"] is True
    for png in FIGURES[name]:
        assert (tmp_path / png).stat().st_size > 5_000
    if name == "fig5_pooling":  # max-after both ways; every accuracy with its interval
        rows = results["results"]
        assert [rows[k]["maxpool_after"] for k in ("max-after (OR, paper)",
                                                    "max-after (extra IF)")] == ["or", "if"]
        for row in (r[label] for r in rows.values() for label in ("SNN", "B-SNN")):
            assert len(row["accuracy_interval"]) == len(row["accuracy"])
            low, high = row["final_accuracy_interval"]
            assert low <= row["final_accuracy"] <= high and len(row["ann_interval"]) == 2


def test_early_exit_study_is_consistent(tmp_path, runs):
    from experiments import fig10_11_early_exit

    study = fig10_11_early_exit.main(["--smoke", "--out-dir", str(tmp_path), "--repeats", "1",
                                      *runs])
    assert 1 <= study["t_ref"] <= study["t_max"] == 16
    assert sum(study["histogram"]) == 64
    assert study["mean_exit"] == pytest.approx(
        sum(t * n for t, n in enumerate(study["histogram"], start=1)) / 64)
    # the measured early-exit run reproduces the offline analysis of the full run
    assert study["measured_exit_accuracy"] == pytest.approx(study["exit_accuracy"])
    assert study["measured_mean_exit"] == pytest.approx(study["mean_exit"])
    if study["met"]:
        assert study["exit_accuracy"] >= study["accuracy_at_t_ref"] - study["tolerance"] - 1e-12
    # chosen on 64 validation images, scored on 64 test images; capped at T_ref
    assert study["n_val"] == 64 and study["n_test"] == 64
    for chosen in (study, study["selected_on_test"]):
        assert chosen["mean_exit"] <= chosen["t_ref"] and chosen["timestep_saving"] >= 0
        assert chosen["no_saving"] == (chosen["mean_exit"] == chosen["t_ref"])
        if chosen["no_saving"]:
            assert chosen["timestep_saving"] == 0
            assert chosen["exit_accuracy"] == chosen["accuracy_at_t_ref"]
    assert sum(study["histogram"][study["t_ref"]:]) == 0  # nobody runs past T_ref
    assert study["sweep"][-1]["threshold"] is None  # +inf: the fixed latency itself
    assert study["sweep"][-1]["accuracy"] == study["accuracy_at_t_ref"]
    assert study["val"]["sweep"][-1]["mean_exit"] == study["t_ref"]


def test_fig8_chooses_the_percentile_with_the_fewest_ops():
    from experiments.fig8_percentile import choose_percentile

    assert choose_percentile({100.0: 0.5, 99.9: 0.3, 99.0: None}) == 99.9
    assert choose_percentile({100.0: 0.3, 99.9: 0.3}) == 100.0  # ties: the first listed
    assert choose_percentile({100.0: None, 99.9: None}) is None


def test_fig8_smoke_reports_a_validation_choice(tmp_path, runs):
    from experiments import fig8_percentile

    fig8_percentile.main(["--smoke", "--out-dir", str(tmp_path), "--percentiles", "100",
                          "99.0", *runs])
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    choice = results["choice"]
    assert choice["n_val"] == 64 and set(results["val_curves"]) == {"100.0", "99.0"}
    for q, curve in results["val_curves"].items():  # T_val comes from the val curve alone
        target = choice["ann_val"] - 0.01
        t_val = next((t for t, a in enumerate(curve["accuracy"], 1) if a >= target), None)
        assert results["curves"][q]["within_1pt_on_val"]["t_val"] == t_val
    if choice["percentile"] is not None:
        assert choice["test_ops"] == results["curves"][str(choice["percentile"])][
            "normalized_ops"][choice["t_val"] - 1]


def test_table1_rows_and_fig9_reuses_fig6(tmp_path, runs):
    from experiments import fig6_reset_ifr, fig9_ops_accuracy, table1

    rows = table1.main(["--smoke", "--out-dir", str(tmp_path / "t1"), *runs])
    assert set(rows) == {"SNN", "B-SNN"}
    for r in rows.values():
        assert 0 < r["ops_at_t_ref"] and 0 < r["ops_with_exit"] <= r["ops_at_t_ref"] + 1e-12
        assert 1 <= r["mean_exit"] <= r["t_ref"] <= 16 and r["n_val"] == 64
        assert r["timestep_saving"] >= 0 and len(r["accuracy_at_t_ref_interval"]) == 2
    fig6 = fig6_reset_ifr.main(["--smoke", "--out-dir", str(tmp_path / "f6"), *runs])
    out = fig9_ops_accuracy.main(["--smoke", "--out-dir", str(tmp_path / "f9"), "--from",
                                  str(tmp_path / "f6" / "results.json"), *runs])
    assert [r["network"] for r in out["rows"]] == list(fig6["curves"])
    for r in out["rows"]:  # T chosen on the 64 val images, the test curve read there
        assert r["n_val"] == 64
        for key in ("within_1pt_on_val", "within_0.5pt_on_val"):
            c = r[key]
            if c["t_val"] is not None:
                test = fig6["curves"][r["network"]]
                assert c["test_ops"] == test["normalized_ops"][c["t_val"] - 1]
                assert c["test_accuracy"] == test["accuracy"][c["t_val"] - 1]
                assert c["val_accuracy"] >= r["ann_val"] - (0.01 if "1pt" in key else 0.005)
    with pytest.raises(ValueError, match="holds 'digits' results"):
        fig9_ops_accuracy.main(["--dataset", "fashion-mnist", "--out-dir", str(tmp_path / "x"),
                                "--from", str(tmp_path / "f6" / "results.json")])


def test_fig3_smoke_writes_four_curves_and_a_plot(tmp_path):
    from experiments import fig3_training_curves

    rows = fig3_training_curves.main(["--smoke", "--out-dir", str(tmp_path)])
    assert [r["run"] for r in rows] == ["fp", "bwn", "bwn-scratch", "xnor"]
    assert all(r["epochs"] == 2 and 0.0 <= r["final_test_acc"] <= 1.0 for r in rows)
    assert all(r["best_on_val"]["epoch"] in (1, 2) for r in rows)
    assert (tmp_path / "fig3_training_curves.png").stat().st_size > 10_000
    # a second call never replaces results.json without --overwrite (issue 25), and refuses
    # before any work; with it, the finished runs are reused instead of trained again
    before = (tmp_path / "results.json").read_bytes()
    with pytest.raises(FileExistsError, match="already holds results.json; pass --overwrite"):
        fig3_training_curves.main(["--smoke", "--out-dir", str(tmp_path)])
    assert (tmp_path / "results.json").read_bytes() == before
    again = fig3_training_curves.main(["--smoke", "--out-dir", str(tmp_path), "--overwrite"])
    assert again == rows


def test_xnor_bsnn_smoke_bindsnet_matches_pytorch(tmp_path, runs):
    from experiments import xnor_bsnn_table1

    res = xnor_bsnn_table1.main(["--smoke", "--out-dir", str(tmp_path), *runs])
    assert res["prediction_agreement"] == 1.0
    assert res["accuracy_bindsnet"] == res["accuracy_pytorch"] > 0.5
    assert set(res["xnor_max_error"].values()) == {0.0}
    for name, rates in res["ifr_per_step"].items():  # per-step rates add up to the IFR
        assert sum(rates) == pytest.approx(res["ifr"][name])
    energy = res["row_energy"]["total"]
    assert 0 < energy["ratio"] == pytest.approx(energy["spikes_per_input"])
    assert energy["break_even"] == 1.0
    assert 0 < res["array_area"]["total"]["ratio"] < 1
    assert res["xnor_check"]["images"] == res["n"] and res["xnor_check"]["bit_macs"] > 0
    assert (tmp_path / "imc.npz").stat().st_size > 0 and (tmp_path / "imc.json").exists()


def test_xnor_bsnn_on_a_given_current_coded_model(tmp_path):
    from bsnn_bindsnet.training.fit import RunConfig, fit
    from experiments import xnor_bsnn_table1

    run = tmp_path / "run"
    fit(RunConfig(preset="digits-direct", out_dir=str(run), epochs=2, coding="current",
                  progress=False))
    res = xnor_bsnn_table1.main(["--dataset", "digits", "--model", str(run / "model.pt"),
                                 "--limit", "96", "--out-dir", str(tmp_path / "out")])
    assert res["coding"] == "current" and res["n"] == 96
    assert res["prediction_agreement"] == 1.0 and res["accuracy_pytorch"] > 0.5
    assert set(res["xnor_max_error"].values()) == {0.0}


def test_xnor_bsnn_names_a_missing_model(tmp_path):
    from experiments import xnor_bsnn_table1

    with pytest.raises(FileNotFoundError, match="--model .*nope.pt: no such file"):
        xnor_bsnn_table1.main(["--dataset", "digits", "--model", str(tmp_path / "nope.pt")])


def test_low_latency_smoke_trains_converts_and_compares(tmp_path):
    from experiments import low_latency

    out = low_latency.main(["--smoke", "--out-dir", str(tmp_path), "--peer-timesteps", "4"])
    models = out["models"]
    assert list(models) == ["relu", "qcfs-L2", "qcfs-L2-snn"]
    assert models["relu"]["conversion"] == "percentile"
    for name in ("qcfs-L2", "qcfs-L2-snn"):
        entry = models[name]
        assert entry["conversion"] == "qcfs" and len(entry["bsnn"]["accuracy"]) == 16
        # BindsNET and the unrolled PyTorch B-SNN compute the same network
        assert min(entry["unrolled_agreement"].values()) >= 0.98
    assert out["early_exit"]["model"] == "qcfs-L2-snn"
    assert out["early_exit"]["mean_exit"] <= out["early_exit"]["t_ref"]
    assert (tmp_path / "results.json").is_file() and (tmp_path / "low_latency.png").is_file()
    peer = models["relu"]["spikingjelly"]
    if peer is not None:  # optional peer: same conversion, same curve
        assert peer["accuracy"] == pytest.approx(models["relu"]["bsnn"]["accuracy"][:4])


def test_energy_front_smoke(tmp_path):
    from experiments import energy_front

    out = energy_front.main(["--smoke", "--out-dir", str(tmp_path)])
    assert (tmp_path / "energy_front.png").stat().st_size > 5_000
    assert set(out["models"]) == {"standard", "digits-direct"}
    assert set(out["baselines"]) == {"digits-xnor"} and out["n_test"] == out["n_val"] == 64
    for entry in out["models"].values():
        op, test = entry["operating_point"], entry["test"]
        t = op["t"]
        assert 1 <= t <= len(test["accuracy"]) == 8
        assert op["interval"][0] <= op["accuracy"] == test["accuracy"][t - 1] <= op["interval"][1]
        assert test["energy_xnor"] == [float(s) for s in range(1, 9)]     # Eq. 10: T x BNN
        assert all(a <= b for a, b in zip(test["energy"], test["energy"][1:]))  # cumulative
        assert all(s > e for s, e in zip(test["energy_sensed"], test["energy"]))
        assert op["ops_all"] > 0 and op["ops_hidden"] > 0
        cmp = op["vs_baseline"]
        assert cmp["both"] + cmp["a_only"] + cmp["b_only"] + cmp["neither"] == 64
        assert 0 < cmp["p_value"] <= 1
    # the standard conversion's percentile was chosen on val among the two smoke candidates
    standard = out["models"]["standard"]
    assert standard["choice"] in (99.0, 99.9) and len(standard["val_choices"]) == 2
    choices = standard["val_choices"].values()
    chosen = standard["val_choices"][str(standard["choice"])]
    if any(c["met"] for c in choices):   # the cheapest of those meeting the target on val
        assert chosen["met"] and chosen["val_energy"] == min(
            c["val_energy"] for c in choices if c["met"])
    else:                                # none meets it: the most accurate on val
        assert chosen["val_accuracy"] == max(c["val_accuracy"] for c in choices)


def test_energy_front_prefers_a_percentile_that_meets_the_target():
    from experiments.energy_front import choose, operating_point

    cheap = {"accuracy": [0.5, 0.8, 0.85], "energy": [0.1, 0.2, 0.3]}
    dear = {"accuracy": [0.6, 0.9, 0.95], "energy": [0.3, 0.6, 0.9]}
    vals = {99.99: cheap, 99.9: dear}
    points = {c: operating_point(v, 0.95, 0.01) for c, v in vals.items()}
    assert points == {99.99: (3, False), 99.9: (3, True)}      # 0.94 first reached at T = 3
    assert choose(vals, points) == 99.9                        # cheaper, but misses the target
    points = {c: operating_point(v, 0.80, 0.05) for c, v in vals.items()}   # 0.75 at T = 2
    assert points == {99.99: (2, True), 99.9: (2, True)} and choose(vals, points) == 99.99


def test_paired_reset_smoke(tmp_path):
    from experiments import paired_reset

    out = paired_reset.main(["--smoke", "--out-dir", str(tmp_path)])
    assert set(out["steps"]) == {8, 16} and out["n"] == 64
    for row in out["steps"].values():
        assert row["both"] + row["a_only"] + row["b_only"] + row["neither"] == 64
        assert row["difference"] == pytest.approx(row["sif"] - row["rif"])
        assert row["interval"][0] <= row["difference"] <= row["interval"][1]


def test_direct_norms_smoke_trains_the_four_batch_norm_variants(tmp_path):
    from bsnn_bindsnet.training.models import load_model
    from experiments import direct_norms

    out = direct_norms.main(["--smoke", "--out-dir", str(tmp_path)])
    summary = out["summary"]
    assert set(summary) == set(direct_norms.VARIANTS)
    for variant, row in summary.items():
        assert len(row["test_acc"]) == 1 and row["mean"] == row["test_acc"][0]
        if variant != "default":
            cmp = row["vs_default"]
            assert cmp["pairs"] == 64
            assert cmp["difference"] == pytest.approx(row["mean"] - summary["default"]["mean"])
    # each variant trained what it says: readout BN and affine BN as listed
    for variant, (readout_norm, affine) in direct_norms.VARIANTS.items():
        run = tmp_path / "runs" / f"{variant.replace(', ', '+')}-seed0"
        model = load_model(run / "model.pt")
        assert (model.readout_norm is not None) is readout_norm
        assert all(bn.affine is affine for bn in model.norms)


def test_direct_norms_trains_a_subset_with_another_coding(tmp_path):
    from bsnn_bindsnet.training.models import load_model
    from experiments import direct_norms

    out = direct_norms.main(["--smoke", "--variants", "paper", "default", "--coding", "current",
                             "--out-dir", str(tmp_path)])
    assert list(out["summary"]) == ["default", "paper"]  # registry order, default first
    assert out["summary"]["paper"]["vs_default"]["pairs"] == 64
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["default-seed0", "paper-seed0"]
    for run in (tmp_path / "runs").iterdir():
        assert load_model(run / "model.pt").coding == "current"


def test_direct_norms_refuses_variants_without_default(capsys):
    from experiments import direct_norms

    with pytest.raises(SystemExit):
        direct_norms.parse_args(["--variants", "paper"])
    assert "--variants must include 'default'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        direct_norms.parse_args(["--coding", "rate"])
    assert "invalid choice: 'rate'" in capsys.readouterr().err
