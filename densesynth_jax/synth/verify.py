"""Verification of synthetic pairs by people: export for judging, import and vote.

  python -m densesynth_jax.synth.verify export --synth=runs/demo/synth/smiling \\
      --out=verify/smiling [--attribute-text="smile"] [--base-url=https://host/verify/smiling/]
  python -m densesynth_jax.synth.verify import --synth=runs/demo/synth/smiling \\
      --answers verify/smiling/answers_*.csv [--min-agreement=0.6]

Active verification (synth/active.py): people judge only the B most questionable pairs.

  python -m densesynth_jax.synth.verify export --synth=runs/demo/synth/smiling \\
      --out=verify/smiling --select=active --budget=100 [--scorer=measure] [--run=runs/demo]
  python -m densesynth_jax.synth.verify import --synth=runs/demo/synth/smiling \\
      --answers verify/smiling/answers_*.csv --selection verify/smiling/selection.json

`--select=active` scores every pair of the set with `--scorer` (`measure`: the run's independent
measurement of the rendered pair, fitted on the run's real images; the run is the synth folder's
grandparent unless `--run` names it) and exports the top `--budget`; `--select=random` exports
`--budget` pairs drawn at random (`--seed`). Both write `selection.json` (the exported pair ids
and how they were chosen) beside the page. Import with `--selection` (one file per round) records
which pairs were sent: a selected pair takes its verified label or is dropped, every other pair
keeps its auto label (`active.merged_pairs`). An answer to a pair no selection exported is an
error. `real_margin` needs the replicate's real pairs and exists only inside a run
(`dsynth_active_real_margin@B`).

Export writes, into --out:
- `pairs.csv`: pair_id, image_a, image_b (file names under `images/`);
- `images/`: one PNG per pair member, upscaled for a readable size;
- `verify.html`: ONE self-contained page (images embedded as data URIs, no server, no network)
  that shows one pair at a time, asks "Which image shows more <attribute>?" with A / B / can't
  tell, has keyboard shortcuts, and downloads the answers as CSV (worker_id, pair_id, answer);
- `batch.csv` (with --base-url): a crowd platform's batch format, one row per pair with
  pair_id, image_a_url, image_b_url; the same page loads it through its "batch CSV" input.
The auto labels are NOT in any file shown to people; import reads them from the synthetic set.

Import reads one or many answer files (several workers per pair; columns worker_id, pair_id,
answer with answer in A / B / cant_tell), majority-votes each pair, and keeps a pair when its
majority is A or B with agreement (majority votes / all votes) ≥ --min-agreement. A pair whose
majority is "can't tell", whose top answers tie, or with no votes is dropped. The verified label
may differ from the auto label (a flip); the report says how often people agreed with the auto
labels (the paper: 78% on average). Output: `verified.npz` (pair indices into the synthetic set,
verified labels, agreement as weights) and `verification.json` (the report), in the synth folder.
"""

from __future__ import annotations

import argparse
import base64
import csv
import dataclasses
import io as pyio
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from densesynth_jax import io
from densesynth_jax.synth import active, store
from densesynth_jax.synth.jitter import SynthSet
from densesynth_jax.types import PairSet

ANSWERS = {"A": 1, "B": -1, "cant_tell": 0}
SELECTION_FILE = "selection.json"
ANSWER_COLUMNS = ("worker_id", "pair_id", "answer")


@dataclasses.dataclass(frozen=True)
class Vote:
  worker: str
  pair_id: int
  vote: int  # +1: image A (the pair's `a`) shows more, -1: B shows more, 0: can't tell


@dataclasses.dataclass(frozen=True)
class Verification:
  """Per-pair outcome of the vote over a synthetic PairSet of P pairs."""
  label: np.ndarray      # int8 (P,) verified label (majority), 0 where not decided
  agreement: np.ndarray  # float32 (P,) majority votes / votes (0 with no votes)
  num_votes: np.ndarray  # int32 (P,)
  keep: np.ndarray       # bool (P,) decided A/B with agreement >= threshold
  report: dict
  # bool (P,): the pairs sent to people when only a selection was (active verification); None
  # when every pair was.
  selected: np.ndarray | None = None


def _png_bytes(img: np.ndarray, upscale: int) -> bytes:
  im = Image.fromarray(img)
  if upscale > 1:
    im = im.resize((img.shape[1] * upscale, img.shape[0] * upscale), Image.NEAREST)
  buf = pyio.BytesIO()
  im.save(buf, format="PNG")
  return buf.getvalue()


def export(s: SynthSet, out: str | Path, *, attribute_text: str | None = None,
           base_url: str | None = None, embed: bool = True, upscale: int = 4,
           pair_ids: Sequence[int] | None = None, selection: dict | None = None) -> Path:
  """Writes pairs.csv, images/, verify.html (and batch.csv with base_url) into `out`; with
  `selection` (a record of how `pair_ids` were chosen) also selection.json, with the ids."""
  out = Path(out)
  ids = np.arange(len(s.pairs)) if pair_ids is None else np.asarray(pair_ids)
  if ids.size == 0:
    raise ValueError(f"no pairs to export for attribute {s.attribute!r}")
  bad = ids[(ids < 0) | (ids >= len(s.pairs))]
  if bad.size:
    raise IndexError(f"pair id {int(bad[0])} out of range for {len(s.pairs)} synthetic pairs")
  attribute_text = attribute_text or s.attribute.replace("_", " ")
  page = resources.files("densesynth_jax.synth").joinpath("verify_page.html").read_text()
  with io.atomic_dir(out) as tmp:
    (tmp / "images").mkdir()
    rows, batch, pairs_js = [], [], []
    for pid in ids:
      names = []
      urls = []
      for side, idx in (("a", s.pairs.a[pid]), ("b", s.pairs.b[pid])):
        name = f"pair{pid:06d}_{side}.png"
        png = _png_bytes(s.images.images[idx], upscale)
        (tmp / "images" / name).write_bytes(png)
        names.append(name)
        urls.append("data:image/png;base64," + base64.b64encode(png).decode() if embed
                    else f"images/{name}")
      rows.append([int(pid), *names])
      pairs_js.append(dict(id=str(int(pid)), a=urls[0], b=urls[1]))
      if base_url is not None:
        prefix = base_url if base_url.endswith("/") else base_url + "/"
        batch.append([int(pid), f"{prefix}images/{names[0]}", f"{prefix}images/{names[1]}"])
    _write_csv(tmp / "pairs.csv", ["pair_id", "image_a", "image_b"], rows)
    if base_url is not None:
      _write_csv(tmp / "batch.csv", ["pair_id", "image_a_url", "image_b_url"], batch)
    html = (page.replace("__PAIRS_JSON__", json.dumps(pairs_js))
            .replace("__ATTRIBUTE_JSON__", json.dumps(s.attribute))
            .replace("__ATTRIBUTE__", attribute_text))
    (tmp / "verify.html").write_text(html)
    if selection is not None:
      io.write_json(tmp / SELECTION_FILE, dict(selection, pair_ids=[int(i) for i in ids]))
  return out / "verify.html"


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
  with path.open("w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)


def read_answers(paths: Sequence[str | Path], num_pairs: int) -> list[Vote]:
  """Reads answer CSVs; a malformed line raises ValueError naming the file and line number."""
  if not paths:
    raise ValueError("no answer files given")
  votes = []
  for path in map(Path, paths):
    if not path.is_file():
      raise FileNotFoundError(f"missing answer file: {path}")
    with path.open(newline="") as f:
      reader = csv.reader(f)
      header = next(reader, None)
      if header is None or [h.strip() for h in header[:3]] != list(ANSWER_COLUMNS):
        raise ValueError(f"{path}:1: expected header {','.join(ANSWER_COLUMNS)}, got {header}")
      for row in reader:
        line = reader.line_num
        if not row or not "".join(row).strip():
          continue
        if len(row) < 3:
          raise ValueError(f"{path}:{line}: expected 3 fields, got {len(row)}: {row}")
        worker, pair_id, answer = (x.strip() for x in row[:3])
        if answer not in ANSWERS:
          raise ValueError(f"{path}:{line}: answer {answer!r} not in {sorted(ANSWERS)}")
        try:
          pid = int(pair_id)
        except ValueError:
          raise ValueError(f"{path}:{line}: pair_id {pair_id!r} is not an integer") from None
        if not 0 <= pid < num_pairs:
          raise ValueError(f"{path}:{line}: pair_id {pid} out of range for {num_pairs} pairs")
        votes.append(Vote(worker or "anonymous", pid, ANSWERS[answer]))
  return votes


def aggregate(votes: Sequence[Vote], auto_label: np.ndarray, min_agreement: float = 0.6
              ) -> Verification:
  """Majority vote per pair. A worker's repeated answer to one pair counts once (the last)."""
  num_pairs = len(auto_label)
  last: dict[tuple[str, int], int] = {}
  for v in votes:
    last[(v.worker, v.pair_id)] = v.vote
  counts = np.zeros((num_pairs, 3), np.int32)  # columns: vote -1, 0, +1
  for (_, pid), vote in last.items():
    counts[pid, vote + 1] += 1
  n = counts.sum(1)
  top = counts.max(1)
  tie = (counts == top[:, None]).sum(1) > 1
  majority = counts.argmax(1) - 1
  decided = (n > 0) & ~tie
  label = np.where(decided, majority, 0).astype(np.int8)
  agreement = np.where(n > 0, top / np.maximum(n, 1), 0.0).astype(np.float32)
  keep = decided & (label != 0) & (agreement >= min_agreement)
  voted = n > 0
  judged = decided & (label != 0)  # a clear A/B majority
  agree_auto = label == np.asarray(auto_label)
  workers = sorted({w for w, _ in last})
  vote_arr = np.array([vote for vote in last.values()], np.int8)
  pid_arr = np.array([pid for _, pid in last], np.int64)
  report = dict(
      num_pairs=num_pairs, num_workers=len(workers), num_votes=len(last),
      pairs_with_votes=int(voted.sum()), kept=int(keep.sum()),
      dropped_no_votes=int((~voted).sum()), dropped_tie=int((voted & tie).sum()),
      dropped_cant_tell=int((decided & (label == 0)).sum()),
      dropped_low_agreement=int((judged & (agreement < min_agreement)).sum()),
      min_agreement=float(min_agreement),
      mean_agreement=float(agreement[voted].mean()) if voted.any() else None,
      # How often people agreed with the auto labels: over pairs with a clear A/B majority,
      # over kept pairs, and over single votes.
      auto_label_agreement_decided=float(agree_auto[judged].mean()) if judged.any() else None,
      auto_label_agreement_kept=float(agree_auto[keep].mean()) if keep.any() else None,
      auto_label_agreement_votes=(float(np.mean(vote_arr == np.asarray(auto_label)[pid_arr]))
                                  if len(vote_arr) else None),
      flipped=int((keep & ~agree_auto).sum()),
  )
  return Verification(label, agreement, n.astype(np.int32), keep, report)


def verified_pairs(s: SynthSet, v: Verification) -> PairSet:
  """The kept synthetic pairs with their VERIFIED labels, weighted by agreement."""
  idx = np.flatnonzero(v.keep)
  p = s.pairs.take(idx)
  return PairSet(p.a, p.b, v.label[idx], v.agreement[idx], p.source, p.attribute)


def restrict_to_selection(v: Verification, selected: np.ndarray) -> Verification:
  """The vote of an active-verification round: only the `selected` (bool (P,)) pairs were sent
  to people. Votes on other pairs are an error; the report counts within the selection."""
  selected = np.asarray(selected, bool)
  stray = np.flatnonzero(~selected & (v.num_votes > 0))
  if stray.size:
    raise ValueError(f"the answers judge pair {int(stray[0])}, which no selection exported "
                     f"(pass every round's selection.json)")
  report = dict(v.report, selected=int(selected.sum()),
                not_selected=int((~selected).sum()),
                dropped_no_votes=int((selected & (v.num_votes == 0)).sum()))
  return dataclasses.replace(v, report=report, selected=selected)


def save_verification(folder: str | Path, v: Verification) -> None:
  folder = Path(folder)
  extra = {} if v.selected is None else dict(selected=v.selected)
  io.save_npz(folder / "verified.npz", label=v.label, agreement=v.agreement,
              num_votes=v.num_votes, keep=v.keep, **extra)
  io.write_json(folder / "verification.json", v.report)


def load_verification(folder: str | Path) -> Verification:
  folder = Path(folder)
  d = io.load_npz(folder / "verified.npz")
  return Verification(d["label"], d["agreement"], d["num_votes"], d["keep"],
                      io.read_json(folder / "verification.json"), d.get("selected"))


def _export_ids(args, s: SynthSet, fp: str) -> tuple[np.ndarray | None, dict | None]:
  """The pair ids `export` writes (None: all) and the selection record (None without one)."""
  if args.select == "all" and args.budget is None:
    return (None if args.limit is None else np.arange(min(args.limit, len(s.pairs)))), None
  if args.limit is not None:
    raise ValueError("--limit and --select/--budget exclude each other")
  synth = Path(args.synth)
  ids, record = active.export_selection(
      s, args.select, args.budget, args.scorer, run=args.run or synth.parent.parent,
      attribute=synth.name, seed=args.seed, feature=args.measure_feature)
  return ids, dict(record, synth_fingerprint=fp)


def _import_selection(paths: Sequence[str] | None, fp: str, num_pairs: int) -> np.ndarray | None:
  """bool (num_pairs,): the pairs the selection files exported (None without files)."""
  if not paths:
    return None
  records = []
  for path in map(Path, paths):
    if not path.is_file():
      raise FileNotFoundError(f"missing selection file: {path}")
    record = io.read_json(path)
    if record.get("synth_fingerprint") != fp:
      raise ValueError(f"{path}: exported from another synthetic set (fingerprint "
                       f"{record.get('synth_fingerprint')}, this set {fp})")
    records.append(record)
  return active.selected_mask(records, num_pairs)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m densesynth_jax.synth.verify",
                                   description=__doc__.split("\n\n")[0])
  sub = parser.add_subparsers(dest="command", required=True)
  ex = sub.add_parser("export", help="write pairs.csv, images/, verify.html (and batch.csv)")
  ex.add_argument("--synth", required=True, help="a synthetic set folder, e.g. runs/demo/synth/smiling")
  ex.add_argument("--out", required=True, help="output folder")
  ex.add_argument("--attribute-text", default=None, help="how the question names the attribute")
  ex.add_argument("--base-url", default=None, help="where the images folder will be served from "
                  "(writes batch.csv for a crowd platform)")
  ex.add_argument("--limit", type=int, default=None, help="export only the first N pairs")
  ex.add_argument("--no-embed", action="store_true", help="reference images/ instead of embedding")
  ex.add_argument("--select", default="all", help=f"which pairs: {' / '.join(active.SELECTIONS)} "
                  "(active: the --budget most questionable by --scorer)")
  ex.add_argument("--budget", type=int, default=None, help="pairs to export with --select")
  ex.add_argument("--scorer", default="measure", help="the questionable score of --select=active "
                  f"({', '.join(active.EXPORT_SCORERS)})")
  ex.add_argument("--run", default=None, help="the run whose measurement scores pairs (default: "
                  "the synth folder's grandparent)")
  ex.add_argument("--measure-feature", default=None, help="features of the measurement (default: "
                  "the run's active.measure_feature, else verification.measure_feature)")
  ex.add_argument("--seed", type=int, default=0, help="the draw of --select=random")
  im = sub.add_parser("import", help="vote over answer files and write verified.npz")
  im.add_argument("--synth", required=True)
  im.add_argument("--answers", nargs="+", required=True, help="answer CSV files")
  im.add_argument("--min-agreement", type=float, default=0.6)
  im.add_argument("--selection", nargs="+", default=None, help="the selection.json of every "
                  "active-verification round whose answers are imported")
  args = parser.parse_args(argv)
  try:
    s, fp = store.load(args.synth)
    if args.command == "export":
      ids, selection = _export_ids(args, s, fp)
      page = export(s, args.out, attribute_text=args.attribute_text, base_url=args.base_url,
                    embed=not args.no_embed, pair_ids=ids, selection=selection)
      print(f"wrote {page} ({len(s.pairs) if ids is None else len(ids)} pairs)")
    else:
      selected = _import_selection(args.selection, fp, len(s.pairs))
      v = aggregate(read_answers(args.answers, len(s.pairs)), s.pairs.label, args.min_agreement)
      if selected is not None:
        v = restrict_to_selection(v, selected)
      save_verification(args.synth, v)
      print(json.dumps(v.report, indent=2))
  except (FileNotFoundError, ValueError, IndexError, KeyError) as e:
    print(f"verify: error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
