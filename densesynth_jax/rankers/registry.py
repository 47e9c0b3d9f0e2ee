"""Every ranker by name: `fit(ctx: FitContext) -> Trained` (rankers/base.py).

Adding a ranker means one module with a `fit` and one line here.
"""

from __future__ import annotations

from densesynth_jax.rankers import classifier, deepstn, local, ranksvm
from densesynth_jax.rankers.base import FitFn

RANKERS: dict[str, FitFn] = {
    "ranksvm_global": ranksvm.fit,  # RelAttr: one linear RankSVM on the whole pool
    "ranksvm_local": local.fit,  # FG-LP: a RankSVM per test pair on its K nearest pool pairs
    "deepstn": deepstn.fit,  # Siamese RankNet with a spatial transformer
    "classifier": classifier.fit,  # the Classifier baseline (pre-label classifier's scores)
}

# Config checks each ranker runs before any cell does (a bad setting fails at once).
VALIDATORS = {"deepstn": lambda config: deepstn.validate_config(config.deepstn)}

# The experiment-config blocks each ranker reads (a cell's cache fingerprint covers them).
CONFIG_BLOCKS = {"ranksvm_global": ("ranksvm",), "ranksvm_local": ("ranksvm",),
                 "deepstn": ("deepstn",), "classifier": ()}
