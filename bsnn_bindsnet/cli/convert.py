"""``bsnn convert``, ``bsnn simulate``, ``bsnn export-nir`` and ``bsnn import-nir``.

Nothing heavy is imported at module level: the ``check_*`` functions run before torch is
imported, the ``run_*`` functions import what they need.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bsnn_bindsnet.cli.checks import (NETWORK_FILE, NIR_FILE, SIMULATION_FILES,
                                      at_least, check_data_root, check_dataset,
                                      check_input_file, check_model_input, check_new_file,
                                      claim_output, command,
                                      check_no_file_parent, check_single_output, known_neurons,
                                      known_v_inits, model_dataset, same_file, torch_device)

DEFAULT_TIMESTEPS = 64  # `bsnn simulate` of a network that records no T


def add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a trained model.pt into a B-SNN (BindsNET)",
                       description="Threshold-balance a trained ANN on calibration data and "
                       "save the converted network (topology, weights, thresholds).")
    p.add_argument("model", help="model.pt written by `bsnn train`")
    p.add_argument("--out", required=True, help="file for the converted network, e.g. snn.pt")
    p.add_argument("--dataset", help="defaults to the dataset the model was trained on")
    p.add_argument("--data-root")
    p.add_argument("--percentile", type=float, default=99.7,
                   help="activation percentile for the thresholds (100 = max)")
    p.add_argument("--statistic", choices=("all", "sample-max"), default="all",
                   help="percentile over all activation values, or over per-sample maxima")
    p.add_argument("--reset", choices=known_neurons(), default="subtract",
                   help="neuron model: subtractive reset (SIF), reset to zero (RIF), or one a "
                   "plugin registered (bsnn --plugin MODULE)")
    p.add_argument("--v-init", choices=known_v_inits(), default="half",
                   help="initial membrane potential: threshold/2 (default: rates round to "
                   "nearest, much lower latency) or 0 (the paper)")
    p.add_argument("--maxpool-after", choices=("or", "if"), default="or",
                   help="a max-pool after a ReLU: pass the OR of the spikes on unchanged "
                   "(default, the paper) or make it an extra balanced IF layer")
    p.add_argument("--calib-size", type=int, help="calibration samples (dataset default)")
    p.add_argument("--no-eval", dest="evaluate", action="store_false",
                   help="skip measuring the ANN's test accuracy")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (never the input model)")


@command
def run_convert(args: argparse.Namespace) -> int:
    import torch

    from bsnn_bindsnet.checkpoint import read_model_file

    from bsnn_bindsnet.training.models import load_model
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.data.registry import load_dataset, make_loader
    from bsnn_bindsnet.direct.model import DirectBSNN
    from bsnn_bindsnet.snn.network import save_plan
    from bsnn_bindsnet.training.loop import evaluate

    device = torch_device(args.device)
    dataset = model_dataset(args.model, args.dataset)
    model = load_model(args.model)
    if isinstance(model, DirectBSNN):  # direct route: fold batch-norm, no threshold balancing
        from bsnn_bindsnet.direct.export import direct_to_plan

        plan = direct_to_plan(model)
    else:
        calib = load_dataset(dataset, "calib", data_root=args.data_root,
                             calib_size=args.calib_size)
        plan = ann_to_bsnn(model, calib, percentile=args.percentile, statistic=args.statistic,
                           reset=args.reset, v_init=args.v_init,
                           maxpool_after=args.maxpool_after, device=device, build=False)
    blob = read_model_file(args.model)
    plan.info.dataset, plan.info.model = dataset, blob["model"]
    plan.info.model_file = str(args.model)
    # the T it was trained for (the unrolled or direct B-SNN), for `bsnn simulate`
    plan.info.timesteps = plan.info.timesteps or blob["meta"].get("timesteps")
    if args.evaluate:
        test = load_dataset(dataset, "test", data_root=args.data_root)
        plan.info.ann_test_acc = evaluate(model, make_loader(test, batch_size=256,
                                                                shuffle=False),
                                             device=device).acc
    save_plan(plan, args.out)
    print(json.dumps({"out": args.out, "layers": [layer.name for layer in plan.layers],
                      "thresholds": {layer.name: torch.as_tensor(layer.thresh).tolist()
                                     for layer in plan.layers if layer.thresh is not None},
                      "ann_test_acc": plan.info.ann_test_acc}, indent=2))
    return 0


def check_convert(args: argparse.Namespace) -> None:
    check_model_input(args, "model")
    check_dataset(args.dataset)
    check_data_root(args.data_root)
    if not 0 < args.percentile <= 100:
        raise ValueError(f"--percentile must be in (0, 100] (100 = the max), got "
                         f"{args.percentile:g}")
    at_least("--calib-size", args.calib_size, 1)
    out = Path(args.out)
    if same_file(args.model, out):
        raise ValueError(f"--out {out} is the input model; choose another file (the model "
                         "would be replaced by the converted network)")
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; expected a file for the converted "
                         f"network, e.g. {out / 'snn.pt'}")
    check_no_file_parent("--out", out)
    claim_output(args, out, lambda: check_new_file(args, out))  # last: the lock is held


def add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="run a converted B-SNN: accuracy vs timesteps",
                       description="Simulate a network saved by `bsnn convert` with BindsNET's "
                       "minibatch runner; writes simulation.json, accuracy.csv, accuracy.png.")
    p.add_argument("network", help="file written by `bsnn convert`")
    p.add_argument("--timesteps", type=int,
                   help="steps to simulate; defaults to the T the network was trained or "
                   "converted for (recorded in the file), else 64")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--mode", choices=("one-step", "delayed"), default="one-step",
                   help="propagate through all layers each step, or BindsNET's per-layer delay")
    p.add_argument("--encoding", choices=("current", "poisson", "poisson-intensity"),
                   help="input coding; defaults to the one recorded at conversion (a direct-"
                   "trained model's own Poisson coding), else current")
    p.add_argument("--dataset", help="defaults to the dataset recorded at conversion")
    p.add_argument("--split", default="test", choices=("train", "val", "calib", "test"))
    p.add_argument("--limit", type=int, help="only the first N samples (N >= 1)")
    p.add_argument("--data-root")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="seed of the Poisson encoder")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--arithmetic", choices=("auto", "float", "onednn", "int_mm"),
                   default="auto",
                   help="binary layers: exact integer arithmetic where it runs and is faster "
                   "(auto), or force the float path or one integer kernel; the spikes are the "
                   "same, simulation.json records which ran")
    p.add_argument("--neuron-kernel", choices=("auto", "eager"), default="auto",
                   help="IF layers: one fused pass per step where the compiled kernel runs "
                   "(auto), or PyTorch's element-wise ops (eager); the spikes are the same, "
                   "simulation.json records which ran")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of an earlier simulation in --out")


@command
def run_simulate(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import Subset

    from bsnn_bindsnet.checkpoint import atomic_write_json
    from bsnn_bindsnet.data.registry import load_dataset
    from bsnn_bindsnet.simulation.distributed import simulate_sharded, world
    from bsnn_bindsnet.snn.network import build_network, load_plan
    from bsnn_bindsnet.simulation.report import accuracy_table, plot_accuracy, write_accuracy_csv

    device = torch_device(args.device)
    plan = load_plan(args.network)
    dataset = args.dataset or plan.info.dataset
    if not dataset:
        raise ValueError(f"{args.network} does not record its dataset; pass --dataset")
    data = load_dataset(dataset, args.split, data_root=args.data_root)
    if args.limit is not None:  # >= 1, checked by _check_simulate
        data = Subset(data, range(min(args.limit, len(data))))
    encoding = args.encoding or plan.info.encoding or "current"
    timesteps = args.timesteps or plan.info.timesteps or DEFAULT_TIMESTEPS
    # under torchrun each rank simulates a shard; rank 0 writes the merged result
    result = simulate_sharded(build_network(plan), data, timesteps,
                              one_step=args.mode == "one-step", encoding=encoding,
                              batch_size=args.batch_size, device=device,
                              generator=torch.Generator().manual_seed(args.seed),
                              progress=args.progress and world()[0] == 0,
                              arithmetic=args.arithmetic, neuron_kernel=args.neuron_kernel)
    if world()[0] != 0:
        return 0
    out = Path(args.out)
    name = Path(args.network).stem
    # the ANN's accuracy recorded at conversion is over the whole test split
    same_data = args.split == "test" and args.limit is None and dataset == plan.info.dataset
    ann = ({name: plan.info.ann_test_acc}
           if same_data and plan.info.ann_test_acc is not None else None)
    summary = {**result.summary(), "network": str(args.network), "dataset": dataset,
               "split": args.split, "processes": world()[1], "conversion": plan.info.to_dict()}
    atomic_write_json(summary, out / "simulation.json")
    write_accuracy_csv({name: result.accuracy}, out / "accuracy.csv")
    plot_accuracy({name: result.accuracy}, out / "accuracy.png", ann=ann,
                  title=f"{dataset} ({summary['mode']}, {encoding})")
    print(accuracy_table({name: result.accuracy}, ann))
    ran = ", ".join(sorted(set(result.arithmetic.values()))) or "no binary layer"
    kernel = ", ".join(sorted(set(result.neuron_kernel.values()))) or "no IF layer"
    if args.neuron_kernel == "auto" and ("eager" in kernel or "mixed" in kernel):
        from bsnn_bindsnet.snn.fused_if import status

        kernel += (f" ({status()})" if status() != "fused" else
                   " (some layers' tensors are not dense float32 in one memory order)")
    print(f"mode: {summary['mode']}; arithmetic: {ran}; IF kernel: {kernel}; {result.n} "
          f"samples in "
          f"{result.seconds:.1f} s; results in {out}/")
    return 0


def check_simulate(args: argparse.Namespace) -> None:
    check_input_file(args.network, NETWORK_FILE)
    check_dataset(args.dataset)
    check_data_root(args.data_root)
    at_least("--limit", args.limit, 1, " (omit it for the whole set)")
    at_least("--timesteps", args.timesteps, 1)
    at_least("--batch-size", args.batch_size, 1)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; expected a folder for "
                         f"{', '.join(SIMULATION_FILES)}")
    check_no_file_parent("--out", out)
    if any(same_file(args.network, out / name) for name in SIMULATION_FILES):
        raise ValueError(f"--out {out} would replace the input network {args.network}; "
                         "choose another --out")
    claim_output(args, out, lambda: _check_no_results(args, out))  # last: the lock is held


def _check_no_results(args: argparse.Namespace, out: Path) -> None:
    found = [name for name in SIMULATION_FILES if (out / name).exists()]
    if found and not args.overwrite:
        raise FileExistsError(f"--out {out} already holds {', '.join(found)}; pass "
                              "--overwrite to replace them (or choose another --out)")


def add_nir(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-nir", help="export a converted B-SNN to a NIR graph (.nir)",
                       description="Write a network saved by `bsnn convert` as a NIR graph "
                       "(HDF5), for snnTorch, Norse, Sinabs, lava-dl or a chip toolchain.")
    p.add_argument("network", help="file written by `bsnn convert` (or `bsnn import-nir`)")
    p.add_argument("--out", required=True, help="NIR file to write, e.g. net.nir")
    p.add_argument("--peer-compatible", action="store_true",
                   help="write only what a peer (Norse, snnTorch, ...) runs as bsnn does: refuse "
                   "a subtractive reset or v(0) = threshold/2, end at the readout's synapse "
                   "instead of NIR's I (the output is the readout's current per step)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (never the input network)")
    p = sub.add_parser("import-nir", help="import a NIR graph as a B-SNN (BindsNET)",
                       description="Read a NIR graph (IF / I / Conv2d / Linear / Affine / "
                       "AvgPool2d / Flatten nodes) and save it in the format of `bsnn "
                       "convert`, so that `bsnn simulate` runs it.")
    p.add_argument("graph", help="NIR file (.nir)")
    p.add_argument("--out", required=True, help="file for the network, e.g. snn.pt")
    p.add_argument("--dataset", help="record the dataset `bsnn simulate` should use")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (never the input graph)")


@command
def run_export_nir(args: argparse.Namespace) -> int:
    from bsnn_bindsnet.snn.network import load_plan
    from bsnn_bindsnet.interop.nir_common import peer_gaps
    from bsnn_bindsnet.interop.nir_io import to_nir, write_nir

    plan = load_plan(args.network)
    graph = to_nir(plan, peer_compatible=args.peer_compatible)
    write_nir(graph, args.out)
    gaps = peer_gaps(plan.reset, plan.v_init)
    if gaps:  # only this package reads the metadata that records them
        print(f"bsnn export-nir: warning: a peer simulator runs another network from "
              f"{args.out}: {'; '.join(gaps)}. bsnn import-nir reads both from the file's "
              "metadata. For peers, convert with --reset zero --v-init zero (and pass "
              "--peer-compatible to refuse such exports)", file=sys.stderr)
    print(json.dumps({"out": args.out, "nodes": len(graph.nodes), "edges": len(graph.edges),
                      "reset": plan.reset, "v_init": plan.v_init,
                      "peer_compatible": args.peer_compatible, "peers_run_it": not gaps},
                     indent=2))
    return 0


@command
def run_import_nir(args: argparse.Namespace) -> int:
    from bsnn_bindsnet.snn.network import save_plan
    from bsnn_bindsnet.interop.nir_io import from_nir

    plan = from_nir(args.graph)
    if args.dataset:
        plan.info.dataset = args.dataset
    save_plan(plan, args.out)
    full = plan.info.nir["full_precision"]
    if full:
        print(f"bsnn import-nir: note: {', '.join(full)}: float weights (rows not +-alpha), "
              "imported as full precision", file=sys.stderr)
    print(json.dumps({"out": args.out, "layers": [layer.name for layer in plan.layers],
                      "reset": plan.reset, "v_init": plan.v_init,
                      "binary": [layer.name for layer in plan.layers
                                 if layer.synapse.binary],
                      "full_precision": full, "spike_condition":
                      plan.info.nir["spike_condition"]}, indent=2))
    return 0


def _check_nir_installed() -> None:
    import importlib.util

    if importlib.util.find_spec("nir") is None or importlib.util.find_spec("h5py") is None:
        raise ValueError("NIR support needs the optional packages nir and h5py; install them "
                         "with pip install 'bsnn-bindsnet[nir]'")


def check_export_nir(args: argparse.Namespace) -> None:
    check_input_file(args.network, NETWORK_FILE)
    _check_nir_installed()
    check_single_output(args, args.network, "NIR graph, e.g. net.nir")  # last: takes the lock


def check_import_nir(args: argparse.Namespace) -> None:
    check_input_file(args.graph, NIR_FILE)
    check_dataset(args.dataset)
    _check_nir_installed()
    check_single_output(args, args.graph, "converted network, e.g. snn.pt")  # last: the lock
