"""Figures: contact sheets of images and histograms of attribute strengths, as PNG.

Matplotlib with the Agg backend (no display needed); every file is written atomically through
`densesynth_jax.io.save_figure`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from densesynth_jax import io  # noqa: E402
from densesynth_jax.plotting import save_contact_sheet  # noqa: E402
from densesynth_jax.types import Domain  # noqa: E402


# Short names for image titles; others are cut to 5 letters.
_SHORT = {"smiling": "smile", "mouth_open": "mouth", "eyes_open": "eyes"}


def save_strength_histograms(path: str | os.PathLike,
                             strengths: np.ndarray | Mapping[str, np.ndarray],
                             names: Sequence[str], bins: int = 40, title: str = "") -> None:
  """One histogram per attribute (column), saved as PNG.

  Args:
    path: output .png.
    strengths: float (N, A), or a mapping pool name -> (N_k, A) to overlay several pools (e.g.
      {"train": ..., "test": ...}); each pool's histogram is normalised to a density so pools
      of different sizes compare.
    names: the A attribute names (subplot titles).
    bins: bins per histogram, over the pooled range of each attribute.
    title: figure title.
  """
  pools = dict(strengths) if isinstance(strengths, Mapping) else {"": strengths}
  if not pools:
    raise ValueError(f"save_strength_histograms({path}): no strengths given")
  names = list(names)
  for pool, s in pools.items():
    s = np.asarray(s, np.float64)
    if s.ndim != 2 or s.shape[1] != len(names) or len(s) == 0:
      raise ValueError(f"save_strength_histograms({path}): strengths{f'[{pool}]' if pool else ''} "
                       f"has shape {s.shape}, expected (N>0, {len(names)}) for {names}")
    bad = np.flatnonzero(~np.isfinite(s).all(axis=1))
    if bad.size:
      raise ValueError(f"save_strength_histograms({path}): strengths{f'[{pool}]' if pool else ''} "
                       f"not finite at row {int(bad[0])}")
    pools[pool] = s
  a = len(names)
  ncols = min(a, 4)
  nrows = -(-a // ncols)
  fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
  for j, ax in enumerate(axes.flat):
    if j >= a:
      ax.set_axis_off()
      continue
    lo = min(s[:, j].min() for s in pools.values())
    hi = max(s[:, j].max() for s in pools.values())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    for pool, s in pools.items():
      label = f"{pool} (n={len(s)})" if pool else None
      ax.hist(s[:, j], bins=edges, density=len(pools) > 1, alpha=0.55 if len(pools) > 1 else 0.9,
              label=label)
    ax.set_title(names[j], fontsize=9)
    ax.tick_params(labelsize=7)
    if len(pools) > 1 and j == 0:
      ax.legend(fontsize=7)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  io.save_figure(fig, path)


def save_domain_figures(domain: Domain, outdir: str | os.PathLike, identities: int = 5,
                        per_identity: int = 8) -> list[Path]:
  """A contact sheet and strength histograms of a domain with known strengths (e.g. sprites).

  Writes `outdir/sprites_contact_sheet.png` (`per_identity` train images of each of `identities`
  train identities, one identity per row, titled with the expression strengths) and
  `outdir/strength_histograms.png` (the paired attributes' strengths of the train pool, whose
  clusters leave gaps, overlaid on the test pool's). Returns the paths written.
  """
  outdir = Path(outdir)
  images = domain.images
  if images.strengths is None:
    raise ValueError(f"domain {domain.name} has no attribute strengths to plot")
  names = [a for a in domain.attributes if a in images.attribute_names] or \
      list(images.attribute_names)
  cols = [images.attribute_index(a) for a in names]
  train = np.asarray(domain.splits.get("train", np.arange(len(images))))
  if train.size == 0:
    raise ValueError(f"domain {domain.name}: the train split is empty")

  if images.groups is not None:
    groups = images.groups[train]
    chosen = list(dict.fromkeys(groups.tolist()))[:identities]
    rows = [train[groups == g][:per_identity] for g in chosen]
    per_row = max(len(r) for r in rows)
    show = np.concatenate(rows)
  else:
    show = train[: identities * per_identity]
    per_row = per_identity
  short = {a: _SHORT.get(a, a[:5]) for a in names}
  titles = [" ".join(f"{short[a]}={images.strengths[i, c]:.2f}" for a, c in zip(names, cols))
            for i in show]
  # Two attributes per title line keeps titles narrower than 64-pixel images shown at 2x.
  titles = ["\n".join(" ".join(t.split(" ")[k:k + 2]) for k in range(0, len(names), 2))
            for t in titles]
  sheet = outdir / f"{domain.name}_contact_sheet.png"
  save_contact_sheet(sheet, images.images[show], ncols=per_row, titles=titles, upscale=2)

  pools = {"train": images.strengths[train][:, cols]}
  if "test" in domain.splits and len(domain.splits["test"]):
    pools["test"] = images.strengths[np.asarray(domain.splits["test"])][:, cols]
  hist = outdir / "strength_histograms.png"
  save_strength_histograms(hist, pools, names,
                           title=f"{domain.name}: attribute strengths of the train (real) and "
                                 f"test pools")
  return [sheet, hist]


def _seeds_note(summary_t: Mapping) -> str:
  ns = sorted({int(v["n"]) for by_m in summary_t.values() for by_a in by_m.values()
               for v in by_a.values()})
  if not ns:
    return "no cells"
  return f"{ns[0]} replicate(s)" if len(ns) == 1 else f"{ns[0]}–{ns[-1]} replicates"


def save_accuracy_bars(path: str | os.PathLike, summary_t: Mapping,
                       rankers: Sequence[str] | None = None, methods: Sequence[str] | None = None,
                       attributes: Sequence[str] | None = None, title: str = "") -> None:
  """Pairwise accuracy of one test set as grouped bars, saved as PNG.

  One panel per ranker (stacked, sharing the accuracy axis); in each panel one group of bars per
  attribute and one bar per method, each method in the same colour in every panel. Bar height is
  the mean over replicates (written above the bar), the error bar its std (0 for one); the dashed
  line is chance (50%).

  Args:
    path: output .png.
    summary_t: one test set of `tables.summarize`: {ranker: {method: {attribute: {mean, std, n,
      seeds}}}} with accuracies in %.
    rankers, methods, attributes: display order (and selection); None = order of appearance.
      Names not in the summary are skipped.
    title: figure title.
  """
  def appearing(level: int) -> list[str]:
    seen: dict[str, None] = {}
    for r, by_m in summary_t.items():
      for m, by_a in by_m.items():
        for a in by_a:
          seen[(r, m, a)[level]] = None
    return list(seen)

  rankers = [r for r in (rankers if rankers is not None else appearing(0)) if r in summary_t]
  methods = list(dict.fromkeys(methods if methods is not None else appearing(1)))
  attributes = list(dict.fromkeys(attributes if attributes is not None else appearing(2)))
  panels = []  # (ranker, [methods present in this panel])
  for r in rankers:
    ms = [m for m in methods if any(a in summary_t[r].get(m, {}) for a in attributes)]
    if ms:
      panels.append((r, ms))
  if not panels:
    raise ValueError(f"save_accuracy_bars({path}): nothing to plot for rankers {rankers}, methods "
                     f"{methods}, attributes {attributes}")
  # Colours follow the method's position in the full list, so every panel and figure agree.
  cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
  colour = {m: cmap(i % cmap.N) for i, m in enumerate(methods)}

  lows = [v["mean"] - (v["std"] if v["n"] > 1 else 0.0)
          for r, ms in panels for m in ms for a, v in summary_t[r][m].items() if a in attributes]
  bottom = min(50.0, 5.0 * np.floor(min(lows) / 5.0)) if lows else 0.0
  bottom = max(0.0, bottom)

  max_bars = max(len(ms) for _, ms in panels)
  width_in = max(5.0, 1.6 + len(attributes) * (0.28 * max_bars + 0.35))
  fig, axes = plt.subplots(len(panels), 1, figsize=(width_in, 2.6 * len(panels) + 0.4),
                           sharey=True, squeeze=False)
  x = np.arange(len(attributes), dtype=np.float64)
  for ax, (r, ms) in zip(axes[:, 0], panels):
    bar_w = 0.8 / len(ms)
    for i, m in enumerate(ms):
      vals = summary_t[r].get(m, {})
      have = [j for j, a in enumerate(attributes) if a in vals]
      means = np.asarray([vals[attributes[j]]["mean"] for j in have])
      stds = np.asarray([vals[attributes[j]]["std"] if vals[attributes[j]]["n"] > 1 else 0.0
                         for j in have])
      pos = x[have] - 0.4 + bar_w * (i + 0.5)
      ax.bar(pos, means - bottom, bar_w * 0.92, bottom=bottom,
             yerr=stds if np.any(stds > 0) else None, capsize=2,
             color=colour[m], edgecolor="black", linewidth=0.4, label=m,
             error_kw=dict(elinewidth=0.8, ecolor="black"))
      for px, mu, sd in zip(pos, means, stds):
        ax.text(px, mu + sd + 0.015 * (100.0 - bottom), f"{mu:.1f}", ha="center", va="bottom",
                rotation=90, fontsize=6)
    ax.axhline(50.0, color="gray", linestyle="--", linewidth=0.8)
    ax.set_title(r, fontsize=9, loc="left")
    ax.set_xticks(x)
    ax.set_xticklabels(attributes, fontsize=8)
    ax.set_xlim(-0.6, len(attributes) - 0.4)
    ax.set_ylabel("accuracy (%)", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
  axes[0, 0].set_ylim(bottom, 100.0 + 0.1 * (100.0 - bottom))  # room for the value labels
  step = 10.0 if 100.0 - bottom > 30 else 5.0
  axes[0, 0].set_yticks(np.arange(step * np.ceil(bottom / step), 100.1, step))
  handles = [plt.Rectangle((0, 0), 1, 1, facecolor=colour[m], edgecolor="black", linewidth=0.4)
             for m in methods if any(m in ms for _, ms in panels)]
  labels = [m for m in methods if any(m in ms for _, ms in panels)]
  fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
             ncol=min(6, len(labels)), fontsize=8, frameon=False)
  fig.suptitle(title or f"pairwise accuracy (%), mean ± std over {_seeds_note(summary_t)}",
               fontsize=10)
  fig.tight_layout()
  io.save_figure(fig, path)


def save_accuracy_figures(summary: Mapping, outdir: str | os.PathLike,
                          rankers: Sequence[str] | None = None,
                          methods: Sequence[str] | None = None,
                          attributes: Sequence[str] | None = None, title: str = "",
                          columns: Mapping[str, Sequence[str]] | None = None) -> list[Path]:
  """`save_accuracy_bars` for every test set of a `tables.summarize` summary.

  Writes `outdir/accuracy_<test_set>.png` per test set that has results; returns the paths.
  `columns`: test set -> its attributes, for a test set of some attributes only (a pair file's);
  the others get `attributes`.
  """
  outdir = Path(outdir)
  paths = []
  for t, summary_t in summary.items():
    if not any(by_a for by_m in summary_t.values() for by_a in by_m.values()):
      continue
    path = outdir / f"accuracy_{t}.png"
    head = f"{title}: " if title else ""
    save_accuracy_bars(path, summary_t, rankers, methods, (columns or {}).get(t, attributes),
                       title=f"{head}test set {t}, pairwise accuracy (%), mean ± std over "
                             f"{_seeds_note(summary_t)}")
    paths.append(path)
  return paths


def save_budget_figures(summary: Mapping, outdir: str | os.PathLike, rankers: Sequence[str],
                        attributes: Sequence[str],
                        series: Mapping[str, Sequence[tuple[float, str]]],
                        lines: Mapping[str, str] | None = None,
                        tick_notes: Mapping[float, str] | None = None,
                        title: str = "") -> list[Path]:
  """Accuracy against the human budget spent, one PNG per test set (`outdir/budget_<t>.png`).

  One panel per (attribute, ranker): every series (e.g. active verification per scorer, random
  verification) is a line through its methods at x = synthetic pairs sent to verification, each
  point the mean over replicates with a std error bar (series are nudged apart on x so the bars
  do not hide each other); `lines` (label -> method, e.g. Real) are horizontal references;
  `tick_notes` (x -> text) name special budgets under their tick (e.g. 0: "DSynth-Auto").
  """
  outdir = Path(outdir)
  lines = dict(lines or {})
  paths = []
  cmap = plt.get_cmap("tab10")
  colour = {label: cmap(i % cmap.N) for i, label in enumerate(series)}
  xs = sorted({x for pts in series.values() for x, _ in pts})
  span = (xs[-1] - xs[0]) if len(xs) > 1 else 1.0
  for t, summary_t in summary.items():
    panels = [(a, r) for a in attributes for r in rankers
              if any(a in summary_t.get(r, {}).get(m, {}) for pts in series.values()
                     for _, m in pts)]
    if not panels:
      continue
    ncols = len({r for _, r in panels})
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.3 * nrows + 0.6),
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
      ax.set_axis_off()
    for ax, (a, r) in zip(axes.flat, panels):
      by_m = summary_t.get(r, {})
      for k, (label, pts) in enumerate(series.items()):
        have = [(x, by_m[m][a]) for x, m in pts if a in by_m.get(m, {})]
        if not have:
          continue
        nudge = (k - (len(series) - 1) / 2) * 0.012 * span
        x = np.asarray([p[0] for p in have]) + nudge
        mean = np.asarray([v["mean"] for _, v in have])
        std = np.asarray([v["std"] if v["n"] > 1 else 0.0 for _, v in have])
        ax.errorbar(x, mean, yerr=std, marker="o", markersize=4, capsize=3, linewidth=1.2,
                    color=colour[label], label=label)
      for j, (label, m) in enumerate(lines.items()):
        v = by_m.get(m, {}).get(a)
        if v is not None:
          ax.axhline(v["mean"], color="gray" if j == 0 else "black", linewidth=0.9,
                     linestyle=("--", ":", "-.")[j % 3], label=label)
      ax.set_title(f"{r}, {a}", fontsize=9, loc="left")
      ax.set_xlabel("synthetic pairs sent to verification (human budget B)", fontsize=8)
      ax.set_ylabel("accuracy (%)", fontsize=8)
      ax.set_xticks(xs)
      ax.set_xticklabels([f"{x:g}" + (f"\n{tick_notes[x]}" if x in (tick_notes or {}) else "")
                          for x in xs])
      ax.tick_params(labelsize=7)
      ax.grid(alpha=0.3)
    legend = {}  # one legend for all panels, below them
    for ax in axes.flat[:len(panels)]:
      for h, label in zip(*ax.get_legend_handles_labels()):
        legend.setdefault(label, h)
    fig.legend(list(legend.values()), list(legend), loc="upper center",
               bbox_to_anchor=(0.5, 0.0), ncol=min(3, len(legend)), fontsize=8, frameon=False)
    fig.suptitle(f"{title + ', ' if title else ''}test set {t}:\npairwise accuracy (%) vs human "
                 f"budget, mean ± std over {_seeds_note(summary_t)}", fontsize=10)
    fig.tight_layout()
    path = outdir / f"budget_{t}.png"
    io.save_figure(fig, path)
    paths.append(path)
  return paths
