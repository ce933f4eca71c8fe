"""The ``bsnn`` console script.

Sub-commands import what they need when they run, so ``bsnn --help`` stays fast and does not
import BindsNET; their arguments are checked before torch is imported
(:mod:`bsnn_bindsnet.cli.checks`). The commands live in :mod:`bsnn_bindsnet.cli.train`
(train, evaluate, presets), :mod:`bsnn_bindsnet.cli.convert` (convert, simulate, export-nir,
import-nir) and :mod:`bsnn_bindsnet.cli.zoo` (zoo). User plugins (``bsnn --plugin MODULE`` and the
entry-point group ``bsnn_bindsnet.plugins``, :mod:`bsnn_bindsnet.cli.plugins`) are loaded before
the parser is built, so its choices offer what they register.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bsnn_bindsnet import __version__
from bsnn_bindsnet.cli.checks import DATASET_NAMES, RUN_FILES, SIMULATION_FILES
from bsnn_bindsnet.cli.plugins import load_plugins
from bsnn_bindsnet.cli.convert import (add_convert, add_nir, add_simulate, check_convert,
                                       check_export_nir, check_import_nir, check_simulate,
                                       run_convert, run_export_nir, run_import_nir,
                                       run_simulate)
from bsnn_bindsnet.cli.train import (add_evaluate, add_train, check_evaluate, check_train,
                                     run_evaluate, run_presets, run_train)
from bsnn_bindsnet.cli.zoo import add_zoo_parser, resolve_zoo_arguments, run_zoo

__all__ = ["DATASET_NAMES", "RUN_FILES", "SIMULATION_FILES", "build_parser", "main"]

# Errors that come from what the user asked for: reported in one line, exit status 2.
_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, FloatingPointError,
                NotImplementedError)

_CHECKS = {"train": check_train, "evaluate": check_evaluate, "convert": check_convert,
           "simulate": check_simulate,
           "export-nir": check_export_nir, "import-nir": check_import_nir}


def build_parser() -> argparse.ArgumentParser:
    """The ``bsnn`` argument parser."""
    parser = argparse.ArgumentParser(prog="bsnn", description="Binary spiking neural networks "
                                     "on BindsNET: train, binarize, convert, simulate.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE (or MODULE:FUNC, then call FUNC) first: it registers "
                        "neuron models, synapses, layer mappings, datasets or presets "
                        "(repeatable; installed packages use the entry-point group "
                        "bsnn_bindsnet.plugins instead, see docs/extending.md)")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train(sub)
    add_evaluate(sub)
    add_convert(sub)
    add_simulate(sub)
    add_nir(sub)
    add_zoo_parser(sub)
    sub.add_parser("presets", help="list the training presets")
    return parser


_COMMANDS = {"train": run_train, "evaluate": run_evaluate, "convert": run_convert,
             "simulate": run_simulate, "presets": run_presets,
             "export-nir": run_export_nir, "import-nir": run_import_nir, "zoo": run_zoo}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bsnn`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--plugin", action="append", default=[])
    try:  # before the parser is built: its choices list what the plugins register
        load_plugins(early.parse_known_args(argv)[0].plugin)
    except ValueError as err:
        print(f"bsnn: error: {err}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    status = 1
    try:
        resolve_zoo_arguments(args)  # zoo:NAME -> a model.pt in the zoo cache
        if args.command in _CHECKS:
            _CHECKS[args.command](args)
        status = _COMMANDS[args.command](args)
        return status
    except _USER_ERRORS as err:
        print(f"bsnn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        # fit() says what it saved; an interruption before it started saved nothing
        hint = getattr(err, "hint", "; nothing was saved" if args.command == "train" else "")
        print(f"bsnn {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    finally:
        if "bsnn_bindsnet.simulation.distributed" in sys.modules:  # only a command that used it
            sys.modules["bsnn_bindsnet.simulation.distributed"].finish(ok=status == 0)


if __name__ == "__main__":
    sys.exit(main())
