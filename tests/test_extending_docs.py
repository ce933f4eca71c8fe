"""Every code block of docs/extending.md runs as written: the blocks of each ``## `` section are
executed in order in one namespace, in a fresh working folder, and whatever they register
(neuron models, v-inits, synapse types, layer rules, datasets, preset families and presets,
plugin modules, ``sys.path`` entries) is removed afterwards."""

from __future__ import annotations

import re
import sys
import tempfile
import types
from pathlib import Path

import pytest

from bsnn_bindsnet.conversion import rules
from bsnn_bindsnet.data import registry as data_registry
from bsnn_bindsnet.snn import neurons, synapse_base
from bsnn_bindsnet.training import recipes

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def sections() -> dict[str, list[str]]:
    """``## `` heading -> its fenced code blocks, in order (each must be ``python``)."""
    out: dict[str, list[str]] = {}
    for part in re.split(r"^## ", GUIDE.read_text(), flags=re.M)[1:]:
        title = part.splitlines()[0]
        blocks = []
        for lang, code in FENCE.findall(part):
            assert lang == "python", f"{title}: a {lang or 'plain'} code block cannot be run"
            blocks.append(code)
        if blocks:
            out[title] = blocks
    return out


def test_the_guide_has_runnable_blocks_in_every_extension_section():
    titles = list(sections())
    assert [t[:3] for t in titles] == ["(a)", "(b)", "(c)", "(d)"]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Run in ``tmp_path`` (``tempfile`` too) and restore every registry, ``sys.path`` and
    ``sys.modules``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the guide's mkdtemp() folders
    saved = [(r, dict(r)) for r in (neurons.NEURONS, neurons.V_INITS, synapse_base.SYNAPSES,
                                    rules.DEFAULT_MAPPING, data_registry.DATASETS,
                                    recipes.FAMILIES)]  # PRESETS is derived from these
    path, modules = list(sys.path), set(sys.modules)
    try:
        yield tmp_path
    finally:
        for registry, before in saved:
            registry.clear()
            registry.update(before)
        sys.path[:] = path
        tmp = str(tmp_path)
        for name in set(sys.modules) - modules:  # the guide's own modules, not libraries
            file = getattr(sys.modules[name], "__file__", None) or ""
            if name.startswith("extending_guide_") or file.startswith(tmp):
                del sys.modules[name]


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("title", list(sections()))
def test_every_code_block_of_the_guide_runs_as_written(title, isolated):
    module = types.ModuleType(f"extending_guide_{title[1]}")  # a reader's script, as __main__
    sys.modules[module.__name__] = module  # removed by the fixture
    for i, code in enumerate(sections()[title]):
        exec(compile(code, f"{GUIDE.name} [{title}] block {i + 1}", "exec", dont_inherit=True),
             module.__dict__)
