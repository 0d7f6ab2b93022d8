"Launched by tests/test_lebm.py with `torchrun --nproc_per_node 2`: train the tiny LEBM with DDP, save each rank's parameters."
import sys, torch
from latent_ebm_nb.core import set_threads
from latent_ebm_nb.trainer import Trainer, init_distributed
from latent_ebm_nb.methods import get_method

out = sys.argv[1]
set_threads(1)
rank, world = init_distributed()
assert world == 2, world
torch.manual_seed(rank)                   # different initial weights per rank: DDP must broadcast rank 0's
spec = get_method('lebm'); method = spec.build(spec.config('tiny'))
data = torch.rand(400, 1, 28, 28)*2 - 1 if rank == 0 else torch.zeros(400, 1, 28, 28)
torch.distributed.broadcast(data, 0)      # the same data set on both ranks
Trainer(method, data, steps=15, batch_size=20, progress=False, seed=0).fit()
torch.save({k: v for k, v in method.state_dict().items() if k != '__optimizers__'}, f'{out}/rank{rank}.pt')
torch.distributed.destroy_process_group()
