"""A saved synthetic set as a TFDS dataset that loads without TensorFlow.

  python -m densesynth_jax.synth.export_tfds --synth=runs/demo/synth/smiling --out=DIR [--overwrite]

Reads the set of `synth/store.py` (synth.npz, prior.npz, meta.json) and, when present, its
verification (verified.npz + verification.json, `synth/verify.py`), and writes into DIR a dataset
that `tfds.builder_from_directory(DIR)` opens and `builder.as_data_source()` reads: array_record
files, numpy records, no TensorFlow. `load(DIR)` reads it back into numpy arrays.

Splits (one feature spec serves both: TFDS has one per dataset, so the fields of the other split
are declared optional and read back as None):
- "images", one record per synthetic image: `index` (int64, its position in the set), `image`
  (uint8 H×W×C), `identity` (int64; identity j owns images 3j, 3j+1, 3j+2 = x⁻, x, x⁺),
  `strengths` (float32 (A,), the raw generating strengths y; column names in the metadata);
- "pairs", one record per pair: `index` (int64, the pair id, as in verify's pairs.csv), `a`, `b`
  (int64 image indices), `auto_label` (int8: +1 a shows more, -1 b shows more, 0 equal; the sign
  of the generating strengths' difference), `kind` (int8: 0 intra-identity, 1 inter-identity;
  `jitter.INTRA` / `jitter.INTER`), `strength_a`, `strength_b` (float32, the generating strength
  of the attribute of a and b), `verified_label` (int8: the people's majority, +1 / -1, 0 for a
  "can't tell" majority or a tie; `NO_VERIFICATION` = -2 when the set has no verification or the
  pair got no votes), `verified_kept` (bool: verification keeps the pair, i.e. it is one of
  `verify.verified_pairs`), `agreement` (float32, majority share of the votes, 0 without votes),
  `num_votes` (int32).
Records are written in index order (`disable_shuffling`; TFDS otherwise shuffles them by a hash of
the key), so record i of a data source is image i / pair i; `load` still sorts by `index` and
checks that the indices are 0..N-1.
Metadata (`builder.info.metadata`, metadata.json): the set's fingerprint (meta.json; it hashes the
generator checkpoint's fingerprint, the synthesis config and the attribute), the attribute and
the strength columns' names, the synthesis info dict, the fitted prior, the verification report,
the source folder, the command, and the codes above. The dataset description and DIR/README.md
hold the same card in prose.

Route: a `tfds.core.GeneratorBasedBuilder` subclass whose `_info` builds `DatasetInfo` directly
and `download_and_prepare(file_format="array_record")`, with GCS look-ups off so that nothing
touches the network. The shorter `tfds.dataset_builders.store_as_tfds_dataset` does not work
without TensorFlow in tensorflow-datasets 4.9.10 (its `_split_generators` tests
`isinstance(x, tf.data.Dataset)`, which imports TensorFlow). `dataset_info_from_configs` is not
used because it looks for metadata files beside the builder's module. Images are stored as raw
`Tensor(uint8)` (exact, no codec). The builder writes under a temporary sibling of DIR; its
version folder's files are moved to the top of that folder, the card is added, and the folder is
renamed onto DIR (`io.atomic_dir`), so a failure leaves no partial DIR.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow_datasets as tfds

from densesynth_jax import io
from densesynth_jax.synth import jitter, store, verify
from densesynth_jax.synth.jitter import SynthSet

NAME = "densesynth_synth"
VERSION = "1.0.0"
NO_VERIFICATION = -2  # verified_label of a pair without verification (no verification, no votes)
KIND_NAMES = {jitter.INTRA: "intra", jitter.INTER: "inter"}
IMAGE_FIELDS = ("image", "identity", "strengths")
PAIR_FIELDS = ("a", "b", "auto_label", "kind", "strength_a", "strength_b", "verified_label",
               "verified_kept", "agreement", "num_votes")
CITATION = """@inproceedings{yu2017semantic,
  title={Semantic Jitter: Dense Supervision for Visual Comparisons via Synthetic Images},
  author={Yu, Aron and Grauman, Kristen},
  booktitle={ICCV},
  year={2017}
}"""


def _features(image_shape: tuple[int, ...], num_attributes: int) -> tfds.features.FeaturesDict:
  F = tfds.features
  opt = dict(optional=True)
  return F.FeaturesDict({
      "index": F.Scalar(np.int64, doc="position: image index (images) or pair id (pairs)"),
      "image": F.Tensor(shape=image_shape, dtype=np.uint8, doc="synthetic image, RGB", **opt),
      "identity": F.Scalar(np.int64, doc="identity j (images 3j, 3j+1, 3j+2)", **opt),
      "strengths": F.Tensor(shape=(num_attributes,), dtype=np.float32,
                            doc="generating strengths y (metadata: attribute_names)", **opt),
      "a": F.Scalar(np.int64, doc="image index of member a", **opt),
      "b": F.Scalar(np.int64, doc="image index of member b", **opt),
      "auto_label": F.Scalar(np.int8, doc="+1 a more, -1 b more, 0 equal", **opt),
      "kind": F.Scalar(np.int8, doc="0 intra-identity, 1 inter-identity", **opt),
      "strength_a": F.Scalar(np.float32, doc="generating strength of the attribute of a", **opt),
      "strength_b": F.Scalar(np.float32, doc="generating strength of the attribute of b", **opt),
      "verified_label": F.Scalar(np.int8, doc="people's majority +1/-1, 0 can't tell or tie, "
                                 f"{NO_VERIFICATION} not verified", **opt),
      "verified_kept": F.Scalar(np.bool_, doc="kept by verification", **opt),
      "agreement": F.Scalar(np.float32, doc="majority share of the votes", **opt),
      "num_votes": F.Scalar(np.int32, doc="votes on the pair", **opt),
  })


class _Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Writes the two splits of `_arrays` (see the module doc); built only by `export`."""

  name = NAME
  VERSION = tfds.core.Version(VERSION)

  def __init__(self, *, arrays: dict, card: str, metadata: dict, **kwargs):
    self._arrays, self._card, self._meta = arrays, card, metadata
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    images = self._arrays["image"]
    return tfds.core.DatasetInfo(
        builder=self, description=self._card, citation=CITATION, disable_shuffling=True,
        features=_features(images.shape[1:], self._arrays["strengths"].shape[1]),
        metadata=tfds.core.MetadataDict(self._meta))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"images": self._records(len(self._arrays["image"]), IMAGE_FIELDS, PAIR_FIELDS),
            "pairs": self._records(len(self._arrays["a"]), PAIR_FIELDS, IMAGE_FIELDS)}

  def _records(self, n: int, fields: Sequence[str], absent: Sequence[str]):
    for i in range(n):
      rec = {k: self._arrays[k][i] for k in fields}
      rec.update(index=i, **{k: None for k in absent})
      yield i, rec

  def _generate_examples(self, **kwargs):
    raise NotImplementedError("the splits come from _split_generators")

  # TFDS announces "downloading" into the temporary folder; `export`'s caller reports instead.
  def _log_download_bytes(self) -> None:
    pass

  def _log_download_done(self) -> None:
    pass


def _load_set(folder: Path) -> tuple[SynthSet, str, verify.Verification | None]:
  """The set, its fingerprint and its verification (None without verified.npz); one-line errors."""
  if not folder.is_dir():
    raise FileNotFoundError(f"missing synthetic set folder: {folder}")
  try:
    s, fp = store.load(folder)
  except (KeyError, TypeError, IndexError) as e:
    raise ValueError(f"corrupt synthetic set {folder} (meta.json, synth.npz or prior.npz): "
                     f"{type(e).__name__} {e}") from None
  except ValueError as e:
    if str(folder) in str(e):
      raise
    raise ValueError(f"corrupt synthetic set {folder}: {e}") from None
  p = len(s.pairs)
  if s.kind.shape != (p,) or not np.isin(s.kind, list(KIND_NAMES)).all():
    raise ValueError(f"corrupt synthetic set {folder / 'synth.npz'}: kind must be ({p},) codes "
                     f"in {sorted(KIND_NAMES)}, got shape {s.kind.shape}")
  if s.images.strengths is None or s.attribute not in s.images.attribute_names:
    raise ValueError(f"corrupt synthetic set {folder / 'meta.json'}: attribute {s.attribute!r} "
                     f"is not a strength column of {list(s.images.attribute_names)}")
  v = None
  if (folder / "verified.npz").exists():
    try:
      v = verify.load_verification(folder)
    except KeyError as e:
      raise ValueError(f"corrupt verification {folder / 'verified.npz'}: missing array {e}"
                       ) from None
    for name in ("label", "agreement", "num_votes", "keep"):
      if getattr(v, name).shape != (p,):
        raise ValueError(f"corrupt verification {folder / 'verified.npz'}: {name} has shape "
                         f"{getattr(v, name).shape}, expected ({p},) for the set's pairs")
  return s, fp, v


def _arrays(s: SynthSet, v: verify.Verification | None) -> dict[str, np.ndarray]:
  """Every field of both splits as arrays, in record order (the set's order)."""
  col = s.images.attribute_index(s.attribute)
  strength = s.images.strengths[:, col]
  a, b = s.pairs.a.astype(np.int64), s.pairs.b.astype(np.int64)
  p = len(a)
  if v is None:
    verified = np.full(p, NO_VERIFICATION, np.int8)
    kept, agreement, votes = np.zeros(p, bool), np.zeros(p, np.float32), np.zeros(p, np.int32)
  else:
    votes = v.num_votes.astype(np.int32)
    verified = np.where(votes > 0, v.label, NO_VERIFICATION).astype(np.int8)
    kept, agreement = v.keep.astype(bool), v.agreement.astype(np.float32)
  return dict(
      image=s.images.images, identity=s.images.groups.astype(np.int64),
      strengths=s.images.strengths.astype(np.float32),
      a=a, b=b, auto_label=s.pairs.label.astype(np.int8), kind=s.kind.astype(np.int8),
      strength_a=strength[a].astype(np.float32), strength_b=strength[b].astype(np.float32),
      verified_label=verified, verified_kept=kept, agreement=agreement, num_votes=votes)


def _json_floats(x: np.ndarray) -> list | float | None:
  """A float array as nested lists, infinities as None (strict JSON)."""
  x = np.asarray(x, np.float64)
  return np.where(np.isfinite(x), x.astype(object), None).tolist()


def _metadata(s: SynthSet, fp: str, v: verify.Verification | None, source: Path,
              command: str) -> dict:
  pr = s.prior
  lo, hi = pr.range
  return dict(
      format=f"{NAME} {VERSION}", fingerprint=fp,
      generator_fingerprint=store.generator_fingerprint(source), attribute=s.attribute,
      attribute_names=list(s.images.attribute_names), info=s.info,
      prior=dict(names=list(pr.names), mean=_json_floats(pr.mean), sigma=_json_floats(pr.sigma),
                 cov=_json_floats(pr.cov), lo=_json_floats(lo), hi=_json_floats(hi),
                 z_dim=pr.z_dim, shrinkage=pr.shrinkage, ridge=pr.ridge,
                 num_images=pr.num_images),
      verification=None if v is None else v.report, source=str(source), command=command,
      kind_codes={str(k): name for k, name in KIND_NAMES.items()},
      no_verification=NO_VERIFICATION)


def _card(s: SynthSet, fp: str, v: verify.Verification | None, source: Path, command: str,
          arrays: dict) -> str:
  """The README card (also the dataset's description): how the set was made, what it holds."""
  info = s.info
  g = lambda k: info.get(k, "not recorded")
  sigma = f"{info['sigma']:.4g}" if isinstance(info.get("sigma"), (int, float)) else g("sigma")
  kind = arrays["kind"]
  n_ids = len(np.unique(arrays["identity"]))
  h, w, c = s.images.images.shape[1:]
  if v is None:
    ver = ("none: `verified_label` is -2 and `verified_kept` False for every pair (people judge "
           "pairs with `python -m densesynth_jax.synth.verify`)")
  else:
    r = v.report
    agree = r.get("auto_label_agreement_decided")
    ver = (f"{int((v.num_votes > 0).sum())} of {len(kind)} pairs have votes "
           f"({r.get('num_votes', '?')} votes from {r.get('num_workers', '?')} workers"
           + (f", {r['mode']} crowd" if "mode" in r else "")
           + f"); {int(v.keep.sum())} kept at agreement ≥ {r.get('min_agreement', '?')}"
           + ("" if agree is None else f"; people agree with the auto label on {agree:.1%} of "
              "the pairs with a clear majority"))
  made = [
      f"- attribute: `{s.attribute}` (column {s.images.attribute_index(s.attribute)} of the "
      f"strengths {list(s.images.attribute_names)})",
      f"- δ: {g('delta')} σ (σ = {sigma}); range policy: {g('range_policy')}; "
      f"min gap: {g('min_gap')} δσ",
      f"- identities: {n_ids}; images: {len(arrays['image'])} ({h}×{w}×{c}, uint8)",
      f"- pairs: {len(kind)}: {int((kind == jitter.INTRA).sum())} intra-identity (kind 0), "
      f"{int((kind == jitter.INTER).sum())} inter-identity (kind 1)",
      f"- verification: {ver}",
      f"- generator: `{store.generator_fingerprint(source) or 'not recorded'}` (its "
      "checkpoint's fingerprint @ render side)",
      f"- fingerprint of the synthetic set: `{fp}` (it hashes the generator checkpoint's "
      "fingerprint, the synthesis config and the attribute)",
      f"- source: `{source}`",
      f"- command: `{command}`",
  ]
  return f"""# Synthetic comparison pairs: "{s.attribute}" (semantic jitter)

Made by densesynth_jax (Semantic Jitter, A. Yu and K. Grauman, ICCV 2017): identities (y, z)
were sampled from a Gaussian prior fitted to the generator's real training strengths; each
identity's attribute "{s.attribute}" was moved by ±δσ to render x⁻, x, x⁺ (images 3j, 3j+1, 3j+2
of identity j) with an attribute-conditioned generator, and pairs were drawn within an identity
(intra) and across identities (inter). Auto labels are the sign of the generating strengths'
difference.

{chr(10).join(made)}

## Splits

- `images`: index, image, identity, strengths (float32, one per attribute above).
- `pairs`: index (pair id), a, b (image indices), auto_label (+1 a shows more, -1 b shows more,
  0 equal), kind (0 intra, 1 inter), strength_a, strength_b (generating strengths of the
  attribute), verified_label (+1 / -1 majority, 0 can't tell or tie, {NO_VERIFICATION} not
  verified), verified_kept, agreement, num_votes.

Both splits share one feature spec: the fields of the other split read back as None. Records are
stored in index order (record i of `images` is image i), and each carries its `index`. The
metadata (`builder.info.metadata`) holds the synthesis info, the prior and the verification
report.

## Loading (no TensorFlow)

```python
import tensorflow_datasets as tfds
pairs = tfds.builder_from_directory("path/to/this/folder").as_data_source()["pairs"]
print(len(pairs), pairs[0]["a"], pairs[0]["b"], pairs[0]["auto_label"])
```
"""


def export(synth_dir: str | os.PathLike, out_dir: str | os.PathLike, overwrite: bool = False,
           *, command: str | None = None) -> Path:
  """Writes the set in `synth_dir` as a TFDS dataset folder `out_dir`; returns `out_dir`.

  Refuses an existing non-empty `out_dir` unless `overwrite`. `command` is recorded in the card
  (default: this call).
  """
  synth_dir, out = Path(synth_dir), Path(out_dir)
  if out.exists() and not out.is_dir():
    raise FileExistsError(f"output {out} exists and is not a folder")
  if out.is_dir() and any(out.iterdir()) and not overwrite:
    raise FileExistsError(f"output folder {out} exists and is not empty (pass --overwrite to "
                          "replace it)")
  src, dst = synth_dir.resolve(), out.resolve()
  if dst == src or dst in src.parents:
    raise ValueError(f"output folder {out} would replace the synthetic set {synth_dir}")
  s, fp, v = _load_set(synth_dir)
  command = command or f"densesynth_jax.synth.export_tfds.export({str(synth_dir)!r}, {str(out)!r})"
  arrays = _arrays(s, v)
  card = _card(s, fp, v, synth_dir, command, arrays)
  with io.atomic_dir(out) as tmp:
    builder = _Builder(arrays=arrays, card=card, metadata=_metadata(s, fp, v, synth_dir, command),
                       data_dir=os.fspath(tmp / "build"), file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    for f in Path(builder.data_dir).iterdir():
      os.replace(f, tmp / f.name)
    shutil.rmtree(tmp / "build")
    (tmp / "README.md").write_text(card)
    splits = tfds.builder_from_directory(os.fspath(tmp)).info.splits
    got = {k: splits[k].num_examples for k in ("images", "pairs")}
    if got != dict(images=len(arrays["image"]), pairs=len(arrays["a"])):
      raise ValueError(f"TFDS wrote {got} records for {synth_dir}, expected "
                       f"{len(arrays['image'])} images and {len(arrays['a'])} pairs")
  return out


def load(out_dir: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads an exported dataset back through `tfds.builder_from_directory` + its data sources.

  Returns numpy arrays in index order: `image`, `identity`, `strengths` (images), the pair fields
  (`a`, `b`, `auto_label`, `kind`, `strength_a`, `strength_b`, `verified_label`, `verified_kept`,
  `agreement`, `num_votes`), and `attribute_names` (the columns of `strengths`).
  """
  out = Path(out_dir)
  if not (out / "dataset_info.json").is_file():
    raise FileNotFoundError(f"missing file: {out / 'dataset_info.json'} (not an exported dataset)")
  builder = tfds.builder_from_directory(os.fspath(out))
  features = builder.info.features
  sources = builder.as_data_source()
  result = {}
  for split, fields in (("images", IMAGE_FIELDS), ("pairs", PAIR_FIELDS)):
    src = sources[split]
    records = src.__getitems__(list(range(len(src))))
    index = np.array([r["index"] for r in records], np.int64)
    order = np.argsort(index, kind="stable")
    if not np.array_equal(index[order], np.arange(len(index))):
      raise ValueError(f"split {split!r} of {out}: record indices are not 0..{len(index) - 1}")
    for k in fields:
      result[k] = np.stack([np.asarray(records[i][k], features[k].np_dtype) for i in order]
                           ) if len(order) else np.zeros((0, *features[k].shape),
                                                         features[k].np_dtype)
  result["attribute_names"] = np.asarray(builder.info.metadata["attribute_names"], np.str_)
  return result


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m densesynth_jax.synth.export_tfds",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--synth", required=True,
                      help="a synthetic set folder, e.g. runs/demo/synth/smiling")
  parser.add_argument("--out", required=True, help="the dataset folder to write")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
  args = parser.parse_args(argv)
  argv = sys.argv[1:] if argv is None else list(argv)
  command = " ".join(["python -m densesynth_jax.synth.export_tfds", *map(shlex.quote, argv)])
  tfds.disable_progress_bar()  # the command prints one summary line instead
  try:
    out = export(args.synth, args.out, overwrite=args.overwrite, command=command)
  except (OSError, ValueError, KeyError) as e:
    msg = " ".join(str(e).split())
    print(f"export_tfds: error: {msg}", file=sys.stderr)
    return 1
  splits = tfds.builder_from_directory(os.fspath(out)).info.splits
  print(f"wrote {out}: {splits['images'].num_examples} images, {splits['pairs'].num_examples} "
        "pairs (tfds.builder_from_directory)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
