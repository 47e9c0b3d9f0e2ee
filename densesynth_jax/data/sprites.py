"""The embedded "sprites" domain: procedural cartoon faces with KNOWN attribute strengths.

Semantic Jitter claims that densely sampled synthetic pairs fill the gaps that sparse real pairs
leave in attribute space. On real photographs the truth is unknown; here every face is drawn from
continuous strengths in [0, 1], so the whole method can be measured against the truth, on a laptop,
in minutes.

Attributes (the column order of `ImageSet.strengths` is `ATTRIBUTES`):
- expressions, varying within one identity (`EXPRESSIONS`):
  `smiling` (mouth curvature: 0 frown, 0.35 flat neutral mouth, 1 broad smile with corners up),
  `mouth_open` (gap between the lips, dark interior), `eyes_open` (eyelid opening; 0 a closed line);
- appearance, fixed per identity (`APPEARANCE`): `face_width`, `skin_tone`, `hair_darkness`,
  `hair_length` (how far down the sides the hair reaches).
Nuisance factors per image (`NUISANCE`): position, scale, small rotation, background colour, shirt
colour, lighting (brightness gain and a soft linear gradient). Each identity has a nuisance STYLE;
each image jitters it slightly. Nothing but the named attribute changes with an expression: the
mouth and eyes are drawn last, inside fixed windows, so every other pixel is bit-identical.

The real pool (train / val identities) has CLUSTERED expression strengths, as in the paper's
Figure 1 (most smiles near neutral or broad, few in between): per image and attribute, one of two
narrow clusters (`CLUSTERS`) or, with a small probability, uniform. The test identities have
UNIFORM strengths, so the test pairs cover the gaps. Real pairs are labelled by simulated crowd
workers (`densesynth_jax.data.crowd`), pruned below 80% agreement; test pairs are labelled by the
true strengths, ties excluded.

Rendering is a pure per-image function of its parameters, written for one image in JAX, batched
by `jax.vmap`, compiled once per (chunk, size) and run chunk by chunk so memory stays bounded.
Edges are anti-aliased: every shape is a signed distance, turned into coverage by a smoothstep one
pixel wide.
"""

from __future__ import annotations

import functools
import time
from typing import Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from densesynth_jax.data import crowd
from densesynth_jax.data import pairfiles
from densesynth_jax.data import prelabel
from densesynth_jax.types import Domain, ImageSet, PairSet

EXPRESSIONS = ("smiling", "mouth_open", "eyes_open")
APPEARANCE = ("face_width", "skin_tone", "hair_darkness", "hair_length")
ATTRIBUTES = EXPRESSIONS + APPEARANCE

# Nuisance parameters per image (all float; colours are RGB in [0, 1]):
#   dx, dy          (N,)   face centre offset, in half-canvas units (the canvas spans [-1, 1]);
#   scale           (N,)   face size: half-canvas units per face unit (about 1);
#   rotation        (N,)   in radians, counter-clockwise on screen;
#   background      (N, 3) background colour;
#   shirt           (N, 3) shirt colour;
#   gain            (N,)   brightness multiplier of the whole image;
#   light_angle     (N,)   direction of the lighting gradient, radians;
#   light_strength  (N,)   the gradient's relative amplitude across one half-canvas (>= 0).
NUISANCE = ("dx", "dy", "scale", "rotation", "background", "shirt", "gain", "light_angle",
            "light_strength")
COLOUR_KEYS = ("background", "shirt")
PARAM_KEYS = ATTRIBUTES + NUISANCE

# Real (train / val) expression strengths: two narrow clusters per attribute, e.g. neutral and
# broad smiles, closed and open mouths, squinting and open eyes. The gaps between them are what
# synthetic pairs should fill.
CLUSTERS = {"smiling": (0.3, 0.9), "mouth_open": (0.1, 0.75), "eyes_open": (0.2, 0.85)}

# Neutral (flat) mouth at this smiling strength; below it the corners turn down.
NEUTRAL_SMILE = 0.35

# ---------------------------------------------------------------------------------------------
# Drawing, in face units: the face ellipse is about 1.0 wide and 1.24 tall, centred near (0, 0);
# y points DOWN (image rows). Constants are the cartoon's proportions.
_FACE_CY, _FACE_RY = 0.05, 0.62
_FACE_RX = (0.44, 0.58)  # half-width at face_width 0 and 1
_EYE_Y, _EYE_X = -0.04, (0.17, 0.23)  # eye centres at (±x, y); x follows face_width
_EYE_RX, _EYE_RY_MIN, _EYE_RY_MAX = 0.12, 0.004, 0.115
_PUPIL_R = 0.06
_BROW_Y, _BROW_RX, _BROW_BEND = -0.25, 0.11, 0.035
_NOSE_Y, _NOSE_RX, _NOSE_RY = 0.13, 0.05, 0.035
_MOUTH_Y, _MOUTH_RX = 0.37, 0.23  # mid-height of the mouth corners (neutral), half-width
_MOUTH_BEND = 0.27  # centre-vs-corners drop per unit of (smiling - NEUTRAL_SMILE)
_MOUTH_GAP = 0.13  # half-gap between the lips at the centre, at mouth_open 1
_FRINGE_Y, _FRINGE_RISE = -0.31, 0.12  # hairline at the centre; how much it rises at the sides
_HAIR_CY, _HAIR_RY, _HAIR_PAD = 0.03, 0.74, 0.11  # back-hair ellipse around the face
_HAIR_END = (-0.18, 0.86)  # lowest y the hair reaches at hair_length 0 and 1
_NECK_RX, _NECK_TOP = 0.17, 0.4
_SHIRT_CY, _SHIRT_RX, _SHIRT_RY = 1.5, 0.95, 0.62

_SKIN = np.array([[1.0, 0.87, 0.77], [0.82, 0.62, 0.46], [0.42, 0.27, 0.18]], np.float32)
_HAIR = np.array([[0.95, 0.8, 0.45], [0.5, 0.3, 0.14], [0.09, 0.06, 0.05]], np.float32)
_INK = np.array([0.16, 0.07, 0.06], np.float32)  # outlines, pupils, closed eyes, closed mouths
_MOUTH_INSIDE = np.array([0.42, 0.06, 0.1], np.float32)
_SCLERA = np.array([0.97, 0.97, 0.95], np.float32)


def _smoothstep(t):
  t = jnp.clip(t, 0.0, 1.0)
  return t * t * (3.0 - 2.0 * t)


def _ramp3(stops, t):
  """Piecewise-linear colour through 3 stops (3, 3) at t = 0, 0.5, 1."""
  stops = jnp.asarray(stops)
  lo = jnp.where(t < 0.5, stops[0], stops[1])
  hi = jnp.where(t < 0.5, stops[1], stops[2])
  u = jnp.where(t < 0.5, 2 * t, 2 * t - 1)
  return lo + (hi - lo) * u


def _sd_ellipse(x, y, rx, ry):
  """Approximate signed distance to an axis-aligned ellipse (exact to first order at the edge).

  f / |∇f| with f = (x/rx)² + (y/ry)² − 1, very negative at the centre, which is what coverage
  needs even for a nearly flat ellipse (a closed eye). f / |∇f| underestimates the distance far
  beside a flat ellipse; the bounding box's signed distance is a lower bound of the true one, so
  the larger of the two is the better estimate.
  """
  f = (x / rx) ** 2 + (y / ry) ** 2 - 1.0
  g = 2.0 * jnp.sqrt((x / rx ** 2) ** 2 + (y / ry ** 2) ** 2)
  box = jnp.maximum(jnp.abs(x) - rx, jnp.abs(y) - ry)
  return jnp.maximum(f / jnp.maximum(g, 1e-6), box)


def _sd_curve(x, y, rx, y_mid, bend, half_gap):
  """Signed distance to a curved lens |x| <= rx around the parabola y_mid + bend·(bump − ½).

  bump = 1 − (x/rx)²: the centre sits `bend` below the corners (a smile when bend > 0, y down),
  and the region is the band |y − centre line| <= half_gap·bump, closed at the corners. With
  half_gap 0 it is the curve itself (distance 0 on it), so a dilation draws a line.
  """
  t = x / rx
  bump = 1.0 - t * t
  centre = y_mid + bend * (bump - 0.5)
  slope = -2.0 * bend * x / rx ** 2
  inside = (jnp.abs(y - centre) - half_gap * jnp.clip(bump, 0.0, 1.0)) / jnp.sqrt(1 + slope ** 2)
  corner_y = y_mid - 0.5 * bend
  beyond = jnp.sqrt((jnp.abs(x) - rx) ** 2 + (y - corner_y) ** 2)
  return jnp.where(jnp.abs(x) <= rx, inside, beyond)


def _render_one(p: Mapping[str, jnp.ndarray], size: int) -> jnp.ndarray:
  """One sprite: scalars (and (3,) colours) -> uint8 (size, size, 3)."""
  centres = (jnp.arange(size, dtype=jnp.float32) + 0.5) / size * 2.0 - 1.0
  v, u = jnp.meshgrid(centres, centres, indexing="ij")  # canvas coords, v down
  cos, sin = jnp.cos(p["rotation"]), jnp.sin(p["rotation"])
  du, dv = u - p["dx"], v - p["dy"]
  # Face frame: undo translation, rotation (counter-clockwise on screen) and scale.
  x = (cos * du - sin * dv) / p["scale"]
  y = (sin * du + cos * dv) / p["scale"]
  pixel = 2.0 / size / p["scale"]  # one pixel, in face units
  line = jnp.maximum(0.03, 0.55 * pixel)  # half-thickness of ink lines; >= ~1 px when small

  def cover(sd):  # signed distance -> coverage, anti-aliased over one pixel
    return _smoothstep(0.5 - sd / pixel)

  def paint(img, colour, alpha):
    return img + alpha[..., None] * (jnp.asarray(colour) - img)

  skin = _ramp3(_SKIN, p["skin_tone"])
  hair = _ramp3(_HAIR, p["hair_darkness"])
  face_rx = _FACE_RX[0] + (_FACE_RX[1] - _FACE_RX[0]) * p["face_width"]

  img = jnp.broadcast_to(p["background"], (size, size, 3))
  img = paint(img, p["shirt"], cover(_sd_ellipse(x, y - _SHIRT_CY, _SHIRT_RX, _SHIRT_RY)))
  # Back hair: an ellipse around the head, cut off where the hair ends (hair_length).
  hair_end = _HAIR_END[0] + (_HAIR_END[1] - _HAIR_END[0]) * p["hair_length"]
  sd_hair = jnp.maximum(_sd_ellipse(x, y - _HAIR_CY, face_rx + _HAIR_PAD, _HAIR_RY), y - hair_end)
  img = paint(img, hair, cover(sd_hair))
  img = paint(img, skin * 0.82, cover(jnp.maximum(jnp.abs(x) - _NECK_RX, _NECK_TOP - y)))
  sd_face = _sd_ellipse(x, y - _FACE_CY, face_rx, _FACE_RY)
  img = paint(img, skin * 0.6, cover(sd_face))  # outline ring
  img = paint(img, skin, cover(sd_face + 0.6 * line))
  # Fringe: hair over the forehead, down to a hairline that rises towards the temples.
  fringe = _FRINGE_Y - _FRINGE_RISE * (x / face_rx) ** 2
  img = paint(img, hair, cover(jnp.maximum(sd_face, y - fringe)))
  eye_x = _EYE_X[0] + (_EYE_X[1] - _EYE_X[0]) * p["face_width"]
  ax = jnp.abs(x)  # the face is symmetric: draw one eye and brow, mirrored
  sd_brow = _sd_curve(ax - eye_x, y, _BROW_RX, _BROW_Y, -_BROW_BEND, 0.0)
  img = paint(img, hair * 0.7, cover(sd_brow - 0.8 * line))
  img = paint(img, skin * 0.75, cover(_sd_ellipse(x, y - _NOSE_Y, _NOSE_RX, _NOSE_RY)))

  # Eyes: an almond of height eyes_open, white inside, pupil clipped by the lids, ink outline.
  eye_ry = _EYE_RY_MIN + (_EYE_RY_MAX - _EYE_RY_MIN) * p["eyes_open"]
  sd_eye = _sd_ellipse(ax - eye_x, y - _EYE_Y, _EYE_RX, eye_ry)
  img = paint(img, _SCLERA, cover(sd_eye))
  sd_pupil = jnp.sqrt((ax - eye_x) ** 2 + (y - _EYE_Y) ** 2) - _PUPIL_R
  img = paint(img, _INK, cover(jnp.maximum(sd_pupil, sd_eye)))
  img = paint(img, _INK, cover(jnp.abs(sd_eye) - 0.6 * line))

  # Mouth: a curved lens; bend follows smiling, the gap between the lips follows mouth_open.
  bend = _MOUTH_BEND * (p["smiling"] - NEUTRAL_SMILE)
  sd_mouth = _sd_curve(x, y, _MOUTH_RX, _MOUTH_Y, bend, _MOUTH_GAP * p["mouth_open"])
  img = paint(img, _INK, cover(sd_mouth - line))
  img = paint(img, _MOUTH_INSIDE, cover(sd_mouth + 0.4 * line))

  # Lighting: a gain and a soft linear gradient across the canvas.
  light = p["gain"] * (1.0 + p["light_strength"] * (jnp.cos(p["light_angle"]) * u
                                                     + jnp.sin(p["light_angle"]) * v))
  img = jnp.clip(img * light[..., None], 0.0, 1.0)
  return jnp.round(img * 255.0).astype(jnp.uint8)


@functools.partial(jax.jit, static_argnums=1)
def _render_batch(params: Mapping[str, jnp.ndarray], size: int) -> jnp.ndarray:
  return jax.vmap(_render_one, in_axes=(0, None))(params, size)


def _check_params(params: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
  missing = [k for k in PARAM_KEYS if k not in params]
  if missing:
    raise KeyError(f"render: missing parameter(s) {missing}; expected keys {list(PARAM_KEYS)}")
  out, n = {}, None
  for k in PARAM_KEYS:
    x = np.asarray(params[k], np.float32)
    n = len(x) if n is None and x.ndim else n
    want = (n, 3) if k in COLOUR_KEYS else (n,)
    if x.shape != want:
      raise ValueError(f"render: parameter {k!r} has shape {x.shape}, expected {want}")
    bad = np.flatnonzero(~np.isfinite(x.reshape(n, -1)).all(axis=1))
    if bad.size:
      raise ValueError(f"render: parameter {k!r} is not finite at image {int(bad[0])}")
    if k in ATTRIBUTES or k in COLOUR_KEYS:
      bad = np.flatnonzero(((x < 0) | (x > 1)).reshape(n, -1).any(axis=1))
      if bad.size:
        raise ValueError(f"render: parameter {k!r} is outside [0, 1] at image {int(bad[0])}: "
                         f"{x[bad[0]]}")
    out[k] = x
  bad = np.flatnonzero(out["scale"] <= 0)
  if bad.size:
    raise ValueError(f"render: parameter 'scale' must be > 0, got {out['scale'][bad[0]]} at "
                     f"image {int(bad[0])}")
  return out, n


def render(params: Mapping[str, np.ndarray], image_size: int = 64, chunk: int = 1024
           ) -> np.ndarray:
  """Renders N sprites.

  Args:
    params: per-image arrays for every key of `PARAM_KEYS`: each attribute of `ATTRIBUTES`
      float (N,) in [0, 1], and the nuisance factors of `NUISANCE` (see their comments: dx, dy,
      scale, rotation, gain, light_angle, light_strength float (N,); background, shirt float
      (N, 3) RGB in [0, 1]). Extra keys are ignored.
    image_size: output height = width, in pixels (>= 8).
    chunk: images per compiled batch; bounds memory (~100 float32 planes per image in flight).

  Returns:
    uint8 (N, image_size, image_size, 3) RGB.
  """
  if int(image_size) < 8:
    raise ValueError(f"render: image_size must be >= 8 pixels, got {image_size}")
  if int(chunk) < 1:
    raise ValueError(f"render: chunk must be >= 1, got {chunk}")
  p, n = _check_params(params)
  size = int(image_size)
  if n == 0:
    return np.zeros((0, size, size, 3), np.uint8)
  chunk = min(int(chunk), n)
  out = np.empty((n, size, size, 3), np.uint8)
  for start in range(0, n, chunk):
    stop = min(start + chunk, n)
    # Pad the last chunk to the full chunk size so the batch compiles only once.
    idx = np.minimum(np.arange(start, start + chunk), n - 1)
    batch = {k: v[idx] for k, v in p.items()}
    out[start:stop] = np.asarray(_render_batch(batch, size))[: stop - start]
  return out


# ---------------------------------------------------------------------------------------------
# Sampling identities, styles and expressions.

# Nuisance style of an identity: each scalar is lo + (hi - lo)·u, u uniform on [0, 1); keys in
# the order `style_from_uniform` reads its columns. Position, scale, rotation and lighting spreads
# are multiplied by the `nuisance` factor (see `sample_identities`).
STYLE_RANGES = (("dx", -0.08, 0.08, 1), ("dy", -0.06, 0.06, 1), ("scale", -0.07, 0.07, 1),
                ("rotation", -0.12, 0.12, 1), ("background", 0.15, 0.92, 3),
                ("shirt", 0.1, 0.9, 3), ("gain", -0.18, 0.12, 1),
                ("light_angle", 0.0, 2 * np.pi, 1), ("light_strength", 0.0, 0.25, 1))
STYLE_DIM = sum(width for *_, width in STYLE_RANGES)  # 13 uniform numbers per identity


def _style(draw, nuisance: float) -> dict[str, np.ndarray]:
  """The nuisance style from `draw(key, lo, hi, width)` -> float32 (num,) or (num, width)."""
  d = {key: draw(key, lo, hi, width) for key, lo, hi, width in STYLE_RANGES}
  return dict(dx=nuisance * d["dx"], dy=nuisance * d["dy"],
              scale=0.98 * (1.0 + nuisance * d["scale"]), rotation=nuisance * d["rotation"],
              background=d["background"], shirt=d["shirt"], gain=1.0 + nuisance * d["gain"],
              light_angle=d["light_angle"], light_strength=nuisance * d["light_strength"])


def sample_identities(rng: np.random.Generator, num: int, nuisance: float = 1.0
                      ) -> dict[str, np.ndarray]:
  """Appearance and nuisance style of `num` identities.

  Returns a dict with every `APPEARANCE` attribute float32 (num,) uniform in [0, 1] and a
  nuisance style for every `NUISANCE` key (same shapes as `render` takes). `nuisance` scales the
  spread of position, scale, rotation and lighting (0: all centred, unlit; colours still vary).
  """
  u = lambda lo, hi, shape=(num,): rng.uniform(lo, hi, shape).astype(np.float32)
  style = {a: u(0.0, 1.0) for a in APPEARANCE}
  style.update(_style(lambda key, lo, hi, w: u(lo, hi, (num, w) if w > 1 else (num,)), nuisance))
  return style


def style_from_uniform(u: np.ndarray, nuisance: float = 1.0) -> dict[str, np.ndarray]:
  """The nuisance style of identities given as uniform numbers u (num, STYLE_DIM) in [0, 1].

  The same ranges as `sample_identities`, read from u's columns in `STYLE_RANGES` order: the
  oracle generator (synth/oracle.py) maps a latent z to a style through u = Φ(z).
  """
  u = np.asarray(u, np.float32)
  if u.ndim != 2 or u.shape[1] != STYLE_DIM:
    raise ValueError(f"style_from_uniform: u must be (N, {STYLE_DIM}), got shape {u.shape}")
  cols, start = {}, 0
  for key, _, _, width in STYLE_RANGES:
    cols[key] = u[:, start:start + width] if width > 1 else u[:, start]
    start += width
  return _style(lambda key, lo, hi, w: (lo + (hi - lo) * cols[key]).astype(np.float32), nuisance)


def jitter_style(rng: np.random.Generator, style: Mapping[str, np.ndarray], identity: np.ndarray,
                 nuisance: float = 1.0) -> dict[str, np.ndarray]:
  """Per-image nuisance: the identity's style (indexed by `identity` int (N,)) slightly jittered.

  Appearance attributes are copied unchanged (they are fixed per identity).
  """
  n = len(identity)
  g = lambda sd, shape=(n,): (sd * rng.standard_normal(shape)).astype(np.float32)
  s = {k: np.asarray(v)[identity] for k, v in style.items()}
  out = {a: s[a] for a in APPEARANCE}
  out.update(
      dx=s["dx"] + nuisance * g(0.02), dy=s["dy"] + nuisance * g(0.02),
      scale=s["scale"] * (1.0 + nuisance * g(0.02)),
      rotation=s["rotation"] + nuisance * g(0.03),
      background=np.clip(s["background"] + g(0.03, (n, 3)), 0.0, 1.0),
      shirt=s["shirt"],
      gain=s["gain"] * (1.0 + nuisance * g(0.04)),
      light_angle=s["light_angle"] + g(0.3),
      light_strength=np.maximum(s["light_strength"] + nuisance * g(0.03), 0.0))
  return out


def sample_expressions(rng: np.random.Generator, num: int, *, clustered: bool,
                       cluster_sd: float = 0.05, uniform_fraction: float = 0.1
                       ) -> dict[str, np.ndarray]:
  """Expression strengths float32 (num,) in [0, 1] per attribute of `EXPRESSIONS`.

  clustered=False: uniform on [0, 1] (the test pool). clustered=True: per image and attribute,
  with probability `uniform_fraction` uniform, else one of the two `CLUSTERS` centres (equally
  likely) plus N(0, cluster_sd²), clipped to [0, 1] (the real train / val pool).
  """
  out = {}
  for name in EXPRESSIONS:
    uniform = rng.uniform(0.0, 1.0, num)
    if clustered:
      centre = np.asarray(CLUSTERS[name])[rng.integers(0, 2, num)]
      near = np.clip(centre + cluster_sd * rng.standard_normal(num), 0.0, 1.0)
      uniform = np.where(rng.uniform(size=num) < uniform_fraction, uniform, near)
    out[name] = uniform.astype(np.float32)
  return out


def sample_sprites(rng: np.random.Generator, num_identities: int, images_per_identity: int, *,
                   clustered: bool, nuisance: float = 1.0, cluster_sd: float = 0.05,
                   uniform_fraction: float = 0.1) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Render parameters of num_identities × images_per_identity images, identity-major.

  Returns (params for `render`, identity int64 (N,) in 0..num_identities-1).
  """
  identity = np.repeat(np.arange(num_identities), images_per_identity)
  style = sample_identities(rng, num_identities, nuisance)
  params = jitter_style(rng, style, identity, nuisance)
  params.update(sample_expressions(rng, len(identity), clustered=clustered,
                                   cluster_sd=cluster_sd, uniform_fraction=uniform_fraction))
  return params, identity


def demo_params(num: int = 40, seed: int = 0, images_per_identity: int = 4
                ) -> dict[str, np.ndarray]:
  """A few identities with uniform expressions: for looking at the renderer."""
  rng = np.random.default_rng(seed)
  params, _ = sample_sprites(rng, -(-num // images_per_identity), images_per_identity,
                             clustered=False)
  return {k: v[:num] for k, v in params.items()}


# ---------------------------------------------------------------------------------------------
# Pairs.

def _pair_key(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
  return np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)


def _within_pairs(members: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Every unordered pair of distinct images of `members` that share a group."""
  a, b = [], []
  for g in np.unique(groups[members]):
    m = members[groups[members] == g]
    i, j = np.triu_indices(len(m), k=1)
    a.append(m[i])
    b.append(m[j])
  if not a:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  return np.concatenate(a), np.concatenate(b)


def sample_pairs(rng: np.random.Generator, members: np.ndarray, strength: np.ndarray,
                 groups: np.ndarray, num: int, *, min_diff: float = 0.0,
                 max_diff: float = np.inf, within_fraction: float = 0.5,
                 exclude: np.ndarray | None = None, what: str = "pairs"
                 ) -> tuple[np.ndarray, np.ndarray]:
  """`num` distinct unordered pairs of images of `members` with min_diff <= |Δ| <= max_diff.

  About `within_fraction` of them are within one identity (all such pairs are enumerated; if too
  few exist the rest are drawn across identities), the others across identities (rejection
  sampling). Members' order in a pair is random. `exclude`: int64 keys (min·N + max, N =
  len(strength)) of pairs not to draw again.

  Returns (a, b) int64 (num,) image indices.
  """
  members = np.asarray(members, np.int64)
  n = len(strength)
  taken = set() if exclude is None else set(np.asarray(exclude).tolist())

  def in_band(a, b):
    d = np.abs(strength[a] - strength[b])
    return (d >= min_diff) & (d <= max_diff)

  wa, wb = _within_pairs(members, groups)
  ok = in_band(wa, wb) & ~np.isin(_pair_key(wa, wb, n), list(taken))
  wa, wb = wa[ok], wb[ok]
  num_within = min(int(round(within_fraction * num)), len(wa))
  pick = rng.permutation(len(wa))[:num_within]
  out_a, out_b = list(wa[pick]), list(wb[pick])
  taken.update(_pair_key(wa[pick], wb[pick], n).tolist())

  need = num - num_within
  for _ in range(200):
    if need <= 0:
      break
    a = members[rng.integers(0, len(members), 4 * need + 16)]
    b = members[rng.integers(0, len(members), 4 * need + 16)]
    ok = (groups[a] != groups[b]) & in_band(a, b)
    for i, j in zip(a[ok], b[ok]):
      key = int(min(i, j)) * n + int(max(i, j))
      if key not in taken and need > 0:
        taken.add(key)
        out_a.append(i)
        out_b.append(j)
        need -= 1
  if need > 0:
    raise ValueError(f"could not draw {num} {what} with {min_diff} <= |Δ| <= {max_diff} among "
                     f"{len(members)} images of {len(np.unique(groups[members]))} identities "
                     f"(found {num - need}); use more identities or fewer pairs")
  a, b = np.asarray(out_a, np.int64), np.asarray(out_b, np.int64)
  flip = rng.uniform(size=num) < 0.5
  order = rng.permutation(num)  # mix within and across pairs
  return np.where(flip, b, a)[order], np.where(flip, a, b)[order]


def crowd_labelled_pairs(rng: np.random.Generator, members: np.ndarray, strength: np.ndarray,
                         groups: np.ndarray, budget: int, cfg: ml_collections.ConfigDict,
                         attribute: str, what: str) -> tuple[PairSet, dict]:
  """The sparse real pairs of one attribute: drawn, shown to the simulated crowd, pruned.

  Candidates are drawn with `cfg.dissimilar_fraction` of them at |Δ| >= cfg.dissimilar_min_diff
  and the rest at random (all with cfg.within_identity_fraction within one identity), shuffled,
  labelled by `cfg.crowd` workers, and pruned below cfg.crowd.min_agreement; the first `budget`
  surviving pairs (in drawing order) are kept, so `budget` is the number of labelled pairs a
  ranker gets. "Equal" pairs are kept. weight = the crowd's agreement.

  Returns (PairSet with source "real", statistics of the crowd round that produced it).
  """
  n = len(strength)
  asked = 0
  num = max(int(1.5 * budget), budget + 20)
  while True:
    num_dis = int(round(cfg.dissimilar_fraction * num))
    a1, b1 = sample_pairs(rng, members, strength, groups, num_dis,
                          min_diff=cfg.dissimilar_min_diff,
                          within_fraction=cfg.within_identity_fraction, what=f"{what} pairs")
    a2, b2 = sample_pairs(rng, members, strength, groups, num - num_dis,
                          within_fraction=cfg.within_identity_fraction,
                          exclude=_pair_key(a1, b1, n), what=f"{what} pairs")
    order = rng.permutation(num)
    a, b = np.concatenate([a1, a2])[order], np.concatenate([b1, b2])[order]
    votes = crowd.simulate_crowd(rng, strength[a], strength[b], workers=cfg.crowd.workers,
                                 noise=cfg.crowd.noise, equal_margin=cfg.crowd.equal_margin)
    keep = crowd.prune(votes["agreement"], cfg.crowd.min_agreement)
    if keep.sum() >= budget:
      asked = int(np.flatnonzero(keep)[budget - 1]) + 1
      break
    if num >= 20 * budget + 200:
      raise ValueError(f"{what} pairs of {attribute!r}: only {int(keep.sum())} of {num} pairs "
                       f"survive pruning at agreement {cfg.crowd.min_agreement}; lower the crowd "
                       f"noise or the budget ({budget})")
    num *= 2
  shown = slice(0, asked)
  stats = crowd.crowd_summary({k: v[shown] for k, v in votes.items()}, keep[shown])
  idx = np.flatnonzero(keep[shown])
  pairs = PairSet.create(a[idx], b[idx], votes["label"][idx], attribute=attribute,
                         weight=votes["agreement"][idx], source="real")
  stats["within_identity"] = int(np.sum(groups[a[idx]] == groups[b[idx]]))
  stats["dissimilar"] = int(np.sum(np.abs(strength[a[idx]] - strength[b[idx]])
                                   >= cfg.dissimilar_min_diff))
  return pairs, stats


def truth_pairs(rng: np.random.Generator, members: np.ndarray, strength: np.ndarray,
                groups: np.ndarray, num: int, *, min_diff: float, max_diff: float,
                within_fraction: float, attribute: str, what: str) -> tuple[PairSet, dict]:
  """Test pairs labelled by the TRUE order; min_diff > 0 excludes ties. Weight 1."""
  if not min_diff > 0:
    raise ValueError(f"{what} pairs of {attribute!r}: min_diff must be > 0 to exclude ties, got "
                     f"{min_diff}")
  a, b = sample_pairs(rng, members, strength, groups, num, min_diff=min_diff, max_diff=max_diff,
                      within_fraction=within_fraction, what=f"{what} pairs")
  label = np.sign(strength[a] - strength[b]).astype(np.int8)
  pairs = PairSet.create(a, b, label, attribute=attribute, source="real")
  return pairs, dict(pairs=num, within_identity=int(np.sum(groups[a] == groups[b])))


# ---------------------------------------------------------------------------------------------
# The domain.

def default_config() -> ml_collections.ConfigDict:
  """The data-config block of the sprites domain (laptop-sized demo)."""
  c = ml_collections.ConfigDict()
  c.name = "sprites"  # domain registry name (densesynth_jax/data/registry.py)
  c.seed = 0  # every draw (identities, expressions, pairs, crowd votes) derives from it
  c.image_size = 64  # rendered height = width, pixels
  c.render_chunk = 1024  # images per compiled render batch (bounds memory)
  c.attributes = EXPRESSIONS  # expression attributes that get real and test pairs
  c.num_train_identities = 200  # clustered strengths, sparse crowd-labelled pairs
  c.num_val_identities = 40  # clustered strengths, crowd-labelled pairs for model selection
  c.num_test_identities = 60  # UNIFORM strengths, pairs labelled by the truth
  c.images_per_identity = 10  # expressions (and nuisance jitter) vary within an identity
  c.cluster_sd = 0.05  # std of each of the two expression clusters of the real pool
  c.uniform_fraction = 0.1  # fraction of real-pool strengths drawn uniformly instead
  c.nuisance = 1.0  # multiplies the spread of position, scale, rotation and lighting
  c.train_pairs = 300  # sparse budget: labelled train pairs per attribute (after pruning)
  c.val_pairs = 200  # labelled val pairs per attribute (after pruning)
  c.dissimilar_fraction = 0.8  # share of crowd-candidate pairs drawn among dissimilar images
  c.dissimilar_min_diff = 0.3  # |Δ| that makes a candidate pair "dissimilar"
  c.within_identity_fraction = 0.5  # share of real candidate pairs within one identity
  c.test_fine_pairs = 1000  # test pairs per attribute with a small true difference
  c.test_coarse_pairs = 500  # test pairs per attribute with a large true difference
  c.fine_min_diff = 0.02  # test_fine: min |Δ| (> 0: no ties)
  c.fine_max_diff = 0.15  # test_fine: max |Δ|
  c.coarse_min_diff = 0.4  # test_coarse: min |Δ|
  c.test_within_fraction = 0.5  # share of test pairs within one identity (if enough exist)
  c.crowd = ml_collections.ConfigDict()
  c.crowd.workers = 5  # votes per pair (the paper: 5)
  c.crowd.noise = 0.08  # std of a worker's perceived strength difference
  c.crowd.equal_margin = 0.05  # a worker votes "equal" below this perceived |Δ|
  c.crowd.min_agreement = 0.8  # prune pairs with a smaller fraction of workers agreeing
  # Strengths the generator conditions on: "true" (the renderer's known values) or "prelabel"
  # (the paper's appendix recipe on binarised labels, data/prelabel.py), to compare the paths.
  c.strengths = "true"
  c.prelabel = prelabel.default_config()  # used when strengths == "prelabel"
  c.prelabel.attributes = EXPRESSIONS  # appearance attributes keep their true values
  return c


def domain_params(cfg: ml_collections.ConfigDict
                  ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
  """The render parameters of the domain's images, their identity ids and the splits.

  A pure function of the data config (no rendering): identity-major, train identities first,
  then val, then test. Returns (params for `render`, groups int64 (N,), split -> indices).
  """
  counts = dict(train=int(cfg.num_train_identities), val=int(cfg.num_val_identities),
                test=int(cfg.num_test_identities))
  k = int(cfg.images_per_identity)
  parts, groups, splits, first = [], [], {}, 0
  for s, (split, num) in enumerate(counts.items()):
    params, identity = sample_sprites(
        np.random.default_rng([int(cfg.seed), 0, s]), num, k, clustered=split != "test",
        nuisance=float(cfg.nuisance), cluster_sd=float(cfg.cluster_sd),
        uniform_fraction=float(cfg.uniform_fraction))
    parts.append(params)
    groups.append(identity + first)
    splits[split] = np.arange(first * k, (first + num) * k, dtype=np.int64)
    first += num
  params = {key: np.concatenate([p[key] for p in parts]) for key in PARAM_KEYS}
  return params, np.concatenate(groups).astype(np.int64), splits


def build_domain(cfg: ml_collections.ConfigDict) -> Domain:
  """Renders the sprites domain and its pairs from the data-config block `cfg`.

  Images are identity-major: train identities first, then val, then test; `groups` is the
  identity id and `ids` is 0..N-1. Splits are disjoint by identity.
  """
  bad = [a for a in cfg.attributes if a not in EXPRESSIONS]
  if bad:
    raise ValueError(f"sprites: attributes {bad} get no pairs; pairs exist only for the "
                     f"expression attributes {list(EXPRESSIONS)}")
  counts = dict(train=int(cfg.num_train_identities), val=int(cfg.num_val_identities),
                test=int(cfg.num_test_identities))
  k = int(cfg.images_per_identity)
  if k < 2 or min(counts.values()) < 2:
    raise ValueError(f"sprites: need >= 2 identities per split and >= 2 images per identity, "
                     f"got {counts} identities and {k} images per identity")
  seed = int(cfg.seed)
  rng = lambda stream, *more: np.random.default_rng([seed, stream, *more])

  t0 = time.perf_counter()
  params, groups, splits = domain_params(cfg)
  images = render(params, int(cfg.image_size), int(cfg.render_chunk))
  print(f"[data] sprites: rendered {len(images)} images in {time.perf_counter() - t0:.1f} s",
        flush=True)
  strengths = np.stack([params[a] for a in ATTRIBUTES], axis=1).astype(np.float32)
  imageset = ImageSet(images, np.arange(len(images), dtype=np.int64), strengths, groups,
                      ATTRIBUTES)

  pairs, crowd_stats, test_stats = {}, {}, {}
  for attr in cfg.attributes:
    s = strengths[:, ATTRIBUTES.index(attr)]
    stream = EXPRESSIONS.index(attr)  # a pair set does not depend on which others are built
    pairs[attr], crowd_stats[attr], test_stats[attr] = {}, {}, {}
    for j, (split, budget) in enumerate((("train", cfg.train_pairs), ("val", cfg.val_pairs))):
      pairs[attr][split], crowd_stats[attr][split] = crowd_labelled_pairs(
          rng(1, stream, j), splits[split], s, groups, int(budget), cfg, attr, split)
    bands = (("test_fine", cfg.test_fine_pairs, cfg.fine_min_diff, cfg.fine_max_diff),
             ("test_coarse", cfg.test_coarse_pairs, cfg.coarse_min_diff, np.inf))
    for j, (split, num, lo, hi) in enumerate(bands):
      pairs[attr][split], test_stats[attr][split] = truth_pairs(
          rng(2, stream, j), splits["test"], s, groups, int(num), min_diff=float(lo),
          max_diff=float(hi), within_fraction=float(cfg.test_within_fraction), attribute=attr,
          what=split)

  info = dict(
      seed=seed, image_size=int(cfg.image_size), num_images=len(images),
      identities=counts, images_per_identity=k,
      images_per_split={k_: int(len(v)) for k_, v in splits.items()},
      attributes=list(ATTRIBUTES), paired_attributes=list(cfg.attributes),
      pairs={a: {s_: len(p) for s_, p in by.items()} for a, by in pairs.items()},
      crowd=crowd_stats, test=test_stats)
  return prelabel.apply_prelabel(Domain("sprites", imageset, splits, pairs, info), cfg)


def redraw_train_pairs(cfg: ml_collections.ConfigDict, domain: Domain, replicate: int
                       ) -> dict[str, PairSet]:
  """Replicate `replicate`'s sparse real TRAIN pairs: a fresh crowd-labelled draw per attribute.

  Replicate 0 is the domain's own draw; replicate r > 0 draws the same budget among the same
  train images with its own stream, labelled by a fresh simulated crowd. Images, val and test
  pairs do not change (data/registry.replicate_domain).
  """
  if int(replicate) == 0:
    return {a: domain.pairs[a]["train"] for a in cfg.attributes}
  params, groups, splits = domain_params(cfg)  # the TRUE strengths, even under pre-labelling
  own = pairfiles.own_image_count(domain)  # pair-file test images follow the rendered ones
  if len(groups) != own:
    raise ValueError(f"sprites: the domain has {own} images, its config describes "
                     f"{len(groups)}; redraw pairs with the config that built it")
  out = {}
  for attr in cfg.attributes:
    rng = np.random.default_rng([int(cfg.seed), 1, EXPRESSIONS.index(attr), 0, int(replicate)])
    out[attr], _ = crowd_labelled_pairs(rng, splits["train"], params[attr], groups,
                                        int(cfg.train_pairs), cfg, attr, "train")
  return out
