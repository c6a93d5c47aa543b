"""xrdnb.memory: freed blocks stay in the heap, so a gradient-descent step stops faulting its temporaries in."""

import subprocess
import sys

import pytest

PROBE = """
import resource, sys, torch
from xrdnb.memory import retain_freed_memory
if sys.argv[1] == "on":
    assert retain_freed_memory()
torch.set_num_threads(1)
import xrdnb
from xrdnb.optimize import GDConfig, gd_step, init_state
truth = xrdnb.crystal_from_structure(xrdnb.load_structure("BPO4"))
start = xrdnb.distort(truth, "lattice", 0.05, 16, seed=0).to(dtype=torch.float32)
config = GDConfig(lr=1e-3, record_every=0)
target = xrdnb.simulate_pattern(truth.to(dtype=torch.float32))[0]
state = init_state(start, target, config)
for _ in range(5):
    gd_step(state)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    gd_step(state)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc policy")
def test_retained_memory_stops_the_page_fault_storm():
    def faults(mode):
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    off, on = faults("off"), faults("on")  # minor page faults per gradient-descent step, 16 copies of BPO4
    assert off > 1000, off  # the step's temporaries are mapped afresh every step
    assert on < off / 3, (on, off)


def test_policy_is_applied_once_and_reports_itself():
    from xrdnb.memory import retain_freed_memory

    first = retain_freed_memory()
    assert retain_freed_memory() is first
    assert first == sys.platform.startswith("linux")
