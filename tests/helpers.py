"Small helpers shared by the method test modules (fixtures live in conftest.py)."
import torch
from latent_ebm_nb.trainer import Callback, CancelRun

def images(n:int=200, seed:int=0)->torch.Tensor:
    "`n` random 28x28 images in [-1, 1], reproducible by `seed`."
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g)*2 - 1

class StopAt(Callback):
    "Cancel a run after step `n` (an interruption, for resume tests)."
    def __init__(self, n): self.n = n
    def after_step(self, tr):
        if tr.step == self.n: raise CancelRun

def params(m)->dict:
    "A method's state without its optimizers, for exact-equality checks."
    return {k: v for k, v in m.state_dict().items() if k != '__optimizers__'}
