"""The oracle generator of the sprites domain: semantic jitter with a PERFECT generator.

`synth.generator = "oracle"` makes the synthesis stage render identities with the sprite renderer
itself instead of a learned CVAE. Everything else is unchanged: identities (y_j, z_j) come from
the same fitted prior p(y) = N(μ, Σ) and p(z) = N(0, I); ±δσ_A tweaks, intra / inter pairs and auto
labels are made by `synth/jitter.py` exactly as for the learned generator. What the renderer draws
is what y asks for, so its pairs measure what semantic jitter gives when the generator is perfect:
the ceiling of the learned generator's rows.

The oracle's "latent" z has `sprites.STYLE_DIM` dimensions: u = Φ(z) (the standard normal CDF) is
uniform on [0, 1] and `sprites.style_from_uniform(u)` turns it into the identity's nuisance style
(position, scale, rotation, background and shirt colours, lighting), drawn from the same ranges as
the real sprites' identities. The appearance attributes (face width, skin tone, hair) are columns
of y, like the expressions. The renderer takes strengths in [0, 1] only, so y is clipped to
[0, 1]: a strength the prior puts outside that range is drawn at the nearest edge (jitter.py's
`range_policy` decides whether such pairs are kept).
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy import special

from densesynth_jax.data import sprites
from densesynth_jax.generator.artifact import check_identities


class SpriteOracle:
  """A renderer with the learned generator's interface: render(y_raw (B, A), z (B, Z)) -> uint8.

  Attributes:
    attribute_names: `sprites.ATTRIBUTES`, the columns of y.
    z_dim: `sprites.STYLE_DIM`.
    render_size: side of the rendered images, pixels.
    fingerprint: identifies the renderer's settings (for the synthetic set's cache).
  """

  def __init__(self, render_size: int, nuisance: float = 1.0, chunk: int = 1024):
    self.attribute_names = sprites.ATTRIBUTES
    self.z_dim = sprites.STYLE_DIM
    self.render_size = int(render_size)
    self.nuisance = float(nuisance)
    self.chunk = int(chunk)
    blob = f"sprites-oracle:{self.render_size}:{self.nuisance}:{sprites.PARAM_KEYS}"
    self.fingerprint = "oracle-" + hashlib.sha256(blob.encode()).hexdigest()[:12]

  def params(self, y_raw: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
    """Render parameters of identities (y_raw, z): y clipped to [0, 1], style from Φ(z)."""
    y = np.asarray(y_raw, np.float32)
    z = np.asarray(z, np.float64)
    check_identities(y, z, self.attribute_names, self.z_dim)
    # Φ(z) in [0, 1); the upper clip keeps u strictly below 1 like a uniform draw.
    u = np.clip(special.ndtr(z), 0.0, np.nextafter(1.0, 0.0)).astype(np.float32)
    params = sprites.style_from_uniform(u, self.nuisance)
    y = np.clip(y, 0.0, 1.0)
    params.update({name: y[:, i] for i, name in enumerate(self.attribute_names)})
    return params

  def render(self, y_raw: np.ndarray, z: np.ndarray) -> np.ndarray:
    """uint8 (B, S, S, 3) sprites of identities (y_raw, z), S = render_size."""
    return sprites.render(self.params(y_raw, z), self.render_size, self.chunk)

  def __call__(self, y_raw, z) -> np.ndarray:
    return self.render(y_raw, z)
