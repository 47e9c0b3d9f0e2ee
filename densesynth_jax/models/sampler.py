"""The spatial transformer's sampler: affine grids, a bilinear sampler, and DeepSTN's boundary rule.

DeepSTN (Singh & Lee, ECCV 2016) cuts one patch per image with the affine transform
θ = [[s, 0, s·t_x], [0, s, s·t_y]] (scale + translation, no rotation) and a bilinear sampler. When
the patch centre leaves the image, the sampler's gradient says nothing useful (the patch sees only
zero padding), so the gradient with respect to (s, t_x, t_y) is replaced by that of the penalty
½·s²·(t_x² + t_y²), which pulls the patch back towards the image centre.

Coordinate convention (the same as PyTorch's `F.affine_grid` / `F.grid_sample` with
`align_corners=False`):
- a grid holds normalised SOURCE coordinates (x, y) in [-1, 1]: x runs along the COLUMN (width)
  axis, y along the ROW (height) axis; (-1, -1) is the top-left corner of the top-left pixel and
  (1, 1) the bottom-right corner of the bottom-right pixel (align_corners=False: ±1 are the image's
  outer EDGES, not the centres of the border pixels);
- the output pixel (i, j) of an h×w grid sits at x = (2j + 1)/w − 1, y = (2i + 1)/h − 1, and reads
  the source at θ·(x, y, 1)ᵀ;
- in pixel units the source column is u = ((x + 1)·W − 1)/2 (pixel j's centre at u = j), and the
  row v likewise with H;
- outside the image the source is zero ("zeros" padding): each of the four bilinear neighbours
  that falls outside contributes 0.

So with s = 1, t = 0 and an output the size of the input, the sampler returns the image exactly;
a patch with parameters (s, t_x, t_y) covers the box [s·t_x − s, s·t_x + s] × [s·t_y − s, s·t_y + s]
in normalised coordinates (`patch_box` converts it to pixels).

Boundary rule: the centre (s·t_x, s·t_y) has "left the image" when max(|s·t_x|, |s·t_y|) > 1, i.e.
per component (the image is the square [-1, 1]², so this is exactly "the centre is outside the
image"). Everything here is written for ONE image and batched with `jax.vmap`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def normalized_coords(n: int) -> jax.Array:
  """Centres of n output pixels along one axis in [-1, 1] (align_corners=False): (n,)."""
  return (2.0 * jnp.arange(n, dtype=jnp.float32) + 1.0) / n - 1.0


def affine_grid(theta: jax.Array, out_h: int, out_w: int) -> jax.Array:
  """The source coordinates of an out_h×out_w output under a 2×3 affine θ.

  Args:
    theta: (2, 3) float, maps output (x, y, 1) to source (x, y), normalised coordinates.
    out_h, out_w: output size in pixels.
  Returns:
    (out_h, out_w, 2) float32 grid of (x, y) source coordinates in [-1, 1] units.
  """
  theta = jnp.asarray(theta, jnp.float32)
  xs = normalized_coords(out_w)[None, :]
  ys = normalized_coords(out_h)[:, None]
  gx = theta[0, 0] * xs + theta[0, 1] * ys + theta[0, 2]
  gy = theta[1, 0] * xs + theta[1, 1] * ys + theta[1, 2]
  return jnp.stack(jnp.broadcast_arrays(gx, gy), axis=-1)


def stn_theta(params: jax.Array) -> jax.Array:
  """(s, t_x, t_y) -> θ = [[s, 0, s·t_x], [0, s, s·t_y]]: (3,) -> (2, 3)."""
  s, tx, ty = params[0], params[1], params[2]
  zero = jnp.zeros_like(s)
  return jnp.stack([jnp.stack([s, zero, s * tx]), jnp.stack([zero, s, s * ty])])


def _plain_stn_grid(params: jax.Array, out_h: int, out_w: int) -> jax.Array:
  return affine_grid(stn_theta(params), out_h, out_w)


def centre_outside(params: jax.Array) -> jax.Array:
  """Whether the patch centre (s·t_x, s·t_y) lies outside the image square: bool scalar."""
  s, tx, ty = params[0], params[1], params[2]
  return jnp.maximum(jnp.abs(s * tx), jnp.abs(s * ty)) > 1.0


def boundary_penalty(params: jax.Array) -> jax.Array:
  """½·s²·(t_x² + t_y²): the penalty whose gradient replaces the sampler's outside the image."""
  s, tx, ty = params[0], params[1], params[2]
  return 0.5 * s ** 2 * (tx ** 2 + ty ** 2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def stn_grid(params: jax.Array, penalty_scale: jax.Array, out_h: int, out_w: int) -> jax.Array:
  """The sampling grid of DeepSTN's patch, with the boundary gradient rule.

  Forward: `affine_grid(stn_theta(params), out_h, out_w)`.
  Backward: the usual gradient while the patch centre is inside the image; once it is outside
  (`centre_outside`), the incoming gradient is ignored and the gradient with respect to
  (s, t_x, t_y) is penalty_scale · ∇(½·s²·(t_x² + t_y²)) = penalty_scale · (s·(t_x² + t_y²),
  s²·t_x, s²·t_y). `penalty_scale` (no gradient) lets a caller switch the pull off for padding
  images that carry no loss (0) or keep it at full strength (1).

  Args:
    params: (3,) float (s, t_x, t_y).
    penalty_scale: float scalar multiplying the replacement gradient.
    out_h, out_w: patch size in pixels (static).
  Returns:
    (out_h, out_w, 2) float32 grid.
  """
  del penalty_scale
  return _plain_stn_grid(params, out_h, out_w)


def _stn_grid_fwd(params, penalty_scale, out_h, out_w):
  grid, vjp = jax.vjp(lambda p: _plain_stn_grid(p, out_h, out_w), params)
  return grid, (params, penalty_scale, vjp)


def _stn_grid_bwd(out_h, out_w, res, g):
  del out_h, out_w
  params, penalty_scale, vjp = res
  (plain,) = vjp(g)
  pull = jax.grad(boundary_penalty)(params) * penalty_scale
  grad = jnp.where(centre_outside(params), pull.astype(plain.dtype), plain)
  return grad, jnp.zeros_like(penalty_scale)


stn_grid.defvjp(_stn_grid_fwd, _stn_grid_bwd)


def bilinear_sample(image: jax.Array, grid: jax.Array) -> jax.Array:
  """Samples one image bilinearly at a grid of normalised coordinates, zeros outside.

  Differentiable in both the image and the grid (the gradient w.r.t. the grid is the piecewise
  linear one of bilinear interpolation; it jumps where a coordinate crosses a pixel centre).

  Args:
    image: (H, W, C) float.
    grid: (h, w, 2) float (x, y) source coordinates, normalised (see the module docstring).
  Returns:
    (h, w, C) float, the image's dtype promoted with float32.
  """
  height, width = image.shape[0], image.shape[1]
  u = ((grid[..., 0] + 1.0) * width - 1.0) / 2.0   # column, pixel units
  v = ((grid[..., 1] + 1.0) * height - 1.0) / 2.0  # row, pixel units
  u0 = jnp.floor(u)
  v0 = jnp.floor(v)
  du = (u - u0)[..., None]
  dv = (v - v0)[..., None]
  u0 = u0.astype(jnp.int32)
  v0 = v0.astype(jnp.int32)

  def tap(vi, ui):
    inside = (vi >= 0) & (vi < height) & (ui >= 0) & (ui < width)
    pix = image[jnp.clip(vi, 0, height - 1), jnp.clip(ui, 0, width - 1)]
    return pix * inside[..., None].astype(pix.dtype)

  return ((1 - dv) * ((1 - du) * tap(v0, u0) + du * tap(v0, u0 + 1))
          + dv * ((1 - du) * tap(v0 + 1, u0) + du * tap(v0 + 1, u0 + 1)))


def stn_patch(image: jax.Array, params: jax.Array, patch_size: int,
              penalty_scale: jax.Array | float = 1.0) -> jax.Array:
  """DeepSTN's patch of one image: (H, W, C), (3,) (s, t_x, t_y) -> (P, P, C)."""
  grid = stn_grid(params, jnp.asarray(penalty_scale, jnp.float32), patch_size, patch_size)
  return bilinear_sample(image, grid)


def stn_patches(images: jax.Array, params: jax.Array, patch_size: int,
                penalty_scale: jax.Array | float = 1.0) -> jax.Array:
  """Batched `stn_patch`: (B, H, W, C), (B, 3), penalty_scale scalar or (B,) -> (B, P, P, C)."""
  scale = jnp.broadcast_to(jnp.asarray(penalty_scale, jnp.float32), params.shape[:1])
  return jax.vmap(stn_patch, in_axes=(0, 0, None, 0))(images, params, patch_size, scale)


def affine_sample(image: jax.Array, theta: jax.Array, out_h: int, out_w: int) -> jax.Array:
  """Any 2×3 affine view of one image (crops, mirroring, resizing): (H, W, C) -> (h, w, C)."""
  return bilinear_sample(image, affine_grid(theta, out_h, out_w))


def patch_box(params: jax.Array, height: int, width: int) -> jax.Array:
  """The patch as a pixel box (x0, y0, x1, y1) of an H×W image: (..., 3) -> (..., 4).

  Edges are in pixel-edge units (0 = left edge of the image, W = right edge): draw it over
  `imshow(image, extent=(0, W, H, 0))`, or subtract 0.5 for imshow's default pixel-centre axes.
  """
  s, tx, ty = params[..., 0], params[..., 1], params[..., 2]
  cx, cy, half = s * tx, s * ty, jnp.abs(s)
  to_u = lambda x: (x + 1.0) * width / 2.0
  to_v = lambda y: (y + 1.0) * height / 2.0
  return jnp.stack([to_u(cx - half), to_v(cy - half), to_u(cx + half), to_v(cy + half)], axis=-1)
