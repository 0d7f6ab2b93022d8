"Shared fixtures for the pytest suite of latent_ebm_nb."
import os, sys, shutil
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
# two cores: every process in the suite uses one thread (nbs/00_core.ipynb, "Threads")
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')

@pytest.fixture(scope='session')
def root() -> Path: return ROOT

@pytest.fixture(scope='session')
def lebm() -> list[str]:
    "The console script installed next to this interpreter."
    exe = Path(sys.executable).with_name('lebm')
    assert exe.exists(), f"lebm console script not found next to {sys.executable}: pip install -e '.[dev]'"
    return [str(exe)]
