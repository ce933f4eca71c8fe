"""Peak memory of a simulation must not grow with T when only spike counts are kept."""

import subprocess
import sys

SCRIPT = """
import resource, sys, torch
from bsnn_bindsnet.training.models import get_model
from bsnn_bindsnet.conversion.convert import ann_to_bsnn
from bsnn_bindsnet.simulation.simulate import simulate
torch.manual_seed(0)
model = get_model("vgg_small", quant="bwn", channels=(4, 4, 8, 8), hidden=32)
x = torch.randn(64, 1, 28, 28)
net = ann_to_bsnn(model, x[:16])
simulate(net, (x[:2], torch.zeros(2, dtype=torch.long)), 2)  # warm up allocators
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
simulate(net, (x, torch.zeros(64, dtype=torch.long)), int(sys.argv[1]), batch_size=64)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def _peak_growth_kib(timesteps: int) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(timesteps)], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_timesteps():
    # A [T, B, 1, 28, 28] float input at T=512 alone would be 512*64*784*4 B = 98 MiB;
    # what may grow is O(T x B) counters: 512*64*(4 bytes x 5 layers + 12 bytes) = 1 MiB.
    short, long = _peak_growth_kib(16), _peak_growth_kib(512)
    assert long - short < 16 * 1024, (short, long)
