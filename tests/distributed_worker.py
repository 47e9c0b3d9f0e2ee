"""One process of the 2-process tests (tests/test_distributed.py): trains a few steps, saves params.

  python tests/distributed_worker.py {generator|deepstn} WORKDIR OUT.npz

Joins a multi-process job when DENSESYNTH_COORDINATOR / _NUM_PROCESSES / _PROCESS_ID are set
(densesynth_jax/distributed.py); otherwise it is the 1-process reference. Process 0 writes OUT.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from densesynth_jax import distributed, mesh  # noqa: E402

distributed.initialize_from_env()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from tests import test_deepstn_train, test_generator_train  # noqa: E402


def _flat(tree) -> dict[str, np.ndarray]:
  return {jax.tree_util.keystr(p): np.asarray(x)
          for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def main(kind: str, workdir: str, out: str) -> None:
  if kind == "generator":
    from densesynth_jax.generator import trainer
    cfg = test_generator_train.tiny_config(steps=4)
    cfg.train.num_devices = 0  # every device of the job
    state = trainer.train(cfg, workdir, domain=test_generator_train.fake_domain())
    params = _flat(mesh.to_host((state.params, state.batch_stats)))
  else:
    from densesynth_jax.rankers import deepstn
    cfg = test_deepstn_train.tiny_config()
    cfg.stages, cfg.stn_epochs, cfg.batch_pairs = ("stn_only",), 2, 8
    images, pairs = test_deepstn_train.toy_domain(24, 3, 40)
    val_images, val_pairs = test_deepstn_train.toy_domain(12, 4, 20)
    model = deepstn.train_deepstn(cfg, images, pairs.take(np.arange(16)), val_images, val_pairs,
                                  workdir, seed=0)
    params = _flat(model.variables)
  if distributed.is_main():
    np.savez(out, **params)


if __name__ == "__main__":
  main(*sys.argv[1:4])
