"""Dataset layouts: functions that find the (lq, gt) image pairs of a dataset on disk.

As BasicSR's ``paired_paths_from_folder``: a layout is a function from folders to a list of
:class:`ImagePair`, and one :class:`restore.data.PairedImageDataset` loads any such list. In a
config the pairs are a nested ``_target_``::

    _target_: restore.data.PairedImageDataset
    pairs: {_target_: restore.data.rain100_pairs, root: ../shared/data/derain/Rain100L}
    task: derain

Layouts (``docs/data.md`` has the table)::

    paired_paths_from_folders   <lq_dir>/<stem>.png  ↔ <gt_dir>/<stem>.png  (stem_map for other naming)
    gopro_pairs                 GoPro_Large/{train,test}/<sequence>/blur/<frame>.png ↔ …/sharp/<frame>.png
    gopro_avgframes_pairs       blur/<S>.png         ↔ gt/<S>_gt.png
    rain100_pairs               rainy/rain-<n>.png   ↔ norain-<n>.png (PReNet) | inputcrop/<n> ↔ cleancrop/<n> | …
    sots_pairs                  hazy/<id>_<k>.png    ↔ gt/<id>.png; input/<id>_<A>_<β>.jpg ↔ target/<id>.png | …
    lol_pairs                   low/<n>.png          ↔ high/<n>.png

Matching is by file stem, so extensions mix freely; files are sorted naturally (``2`` before ``10``).

Errors name the layout expected and the folder: a missing folder raises ``FileNotFoundError``;
an empty folder, an lq image without its gt (naming the lq file and the gt file looked for) or a
gt image without lq raise ``ValueError``. Image sizes are checked by the dataset, not here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from restore.utils.image import IMAGE_EXTENSIONS

__all__ = [
    "ImagePair",
    "list_images",
    "paired_paths_from_folders",
    "gopro_pairs",
    "gopro_avgframes_pairs",
    "rain100_pairs",
    "sots_pairs",
    "lol_pairs",
]


class ImagePair(NamedTuple):
    """One degraded/clean pair of files and the sample's name (the lq stem, or ``<sequence>_<stem>``)."""

    lq: Path
    gt: Path
    name: str


# -- files -------------------------------------------------------------------------------------
def _natural_key(path: Path) -> list:
    """Sort ``2.png`` before ``10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def _expected(layout: str | None) -> str:
    return f"; expected {layout} (see docs/data.md)" if layout else ""


def list_images(folder: str | Path, recursive: bool = False, what: str = "image folder",
                layout: str | None = None) -> list[Path]:
    """Image files (``IMAGE_EXTENSIONS``) in ``folder``, naturally sorted.

    Raises:
        FileNotFoundError: ``folder`` does not exist (named as ``what``, with the ``layout`` expected).
        ValueError: ``folder`` holds no image files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} {folder} not found{_expected(layout)}")
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted((p for p in pattern if _is_image(p)), key=_natural_key)
    if not files:
        raise ValueError(f"{what} {folder} contains no images ({', '.join(IMAGE_EXTENSIONS)})"
                         f"{' in any sub-folder' if recursive else ''}{_expected(layout)}")
    return files


def _require_root(root: str | Path, dataset: str, layout: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset} root {root} not found{_expected(layout)}")
    return root


def _find_subdir(root: Path, pattern: str) -> Path | None:
    """First sub-folder of ``root`` whose name fully matches ``pattern`` (case-insensitive)."""
    regex = re.compile(pattern, re.IGNORECASE)
    return next((d for d in sorted(root.iterdir()) if d.is_dir() and regex.fullmatch(d.name)), None)


def _subdirs(root: Path) -> list[str]:
    return sorted(d.name for d in root.iterdir() if d.is_dir())


# -- pairing -----------------------------------------------------------------------------------
def _pair_files(
    lq_files: Sequence[Path],
    gt_files: Sequence[Path],
    lq_where: Path,
    gt_where: Path,
    gt_stems: Callable[[str], Sequence[str]],
    one_to_one: bool,
    layout: str | None,
) -> list[ImagePair]:
    """Pair each lq file with the gt file whose stem is the first of ``gt_stems(lq_stem)`` present.

    Args:
        lq_where, gt_where: the folders the files came from (for messages).
        one_to_one: also require every gt file to be used (off where several lq share one gt).
    """
    gt_index: dict[str, Path] = {}
    for path in gt_files:
        if path.stem in gt_index:
            raise ValueError(f"two gt images with stem {path.stem!r} in {gt_where}: {gt_index[path.stem].name} and "
                             f"{path.name}{_expected(layout)}")
        gt_index[path.stem] = path
    counts = f"{len(lq_files)} lq images in {lq_where}, {len(gt_index)} gt images in {gt_where}"
    pairs, used = [], set()
    for lq in lq_files:
        candidates = list(dict.fromkeys(gt_stems(lq.stem)))
        gt = next((gt_index[s] for s in candidates if s in gt_index), None)
        if gt is None:
            looked_for = " or ".join(str(gt_where / f"{s}.*") for s in candidates)
            raise ValueError(f"lq/gt mismatch: {counts}; first unmatched: lq {lq} has no gt image {looked_for}"
                             f"{_expected(layout)}")
        pairs.append(ImagePair(lq, gt, lq.stem))
        used.add(gt.stem)
    if one_to_one and len(used) != len(gt_index):
        unused = next(p for s, p in gt_index.items() if s not in used)
        raise ValueError(f"lq/gt mismatch: {counts}; first unmatched: gt {unused} has no lq image in {lq_where}"
                         f"{_expected(layout)}")
    return pairs


def _regex_stem_map(stem_map: Sequence[str] | None) -> Callable[[str], Sequence[str]]:
    """``[pattern, replacement]`` → lq stem ↦ gt stem (``re.fullmatch`` + ``expand``)."""
    if stem_map is None:
        return lambda stem: (stem,)
    if isinstance(stem_map, str) or len(stem_map) != 2:
        raise ValueError(f"stem_map must be [pattern, replacement], e.g. ['(.*)_\\d+', '\\1'], got {stem_map!r}")
    pattern, replacement = re.compile(stem_map[0]), str(stem_map[1])

    def gt_stems(stem: str) -> Sequence[str]:
        match = pattern.fullmatch(stem)
        return (match.expand(replacement),) if match else (stem,)

    return gt_stems


def _pair_folders(lq_dir: Path, gt_dir: Path, gt_stems: Callable[[str], Sequence[str]], one_to_one: bool,
                  layout: str | None) -> list[ImagePair]:
    for what, folder in (("lq folder", lq_dir), ("gt folder", gt_dir)):  # a missing folder first, then empty ones
        if not folder.is_dir():
            raise FileNotFoundError(f"{what} {folder} not found{_expected(layout)}")
    lq_files = list_images(lq_dir, what="lq folder", layout=layout)
    gt_files = list_images(gt_dir, what="gt folder", layout=layout)
    return _pair_files(lq_files, gt_files, lq_dir, gt_dir, gt_stems, one_to_one, layout)


def paired_paths_from_folders(
    lq_dir: str | Path, gt_dir: str | Path, stem_map: Sequence[str] | None = None
) -> list[ImagePair]:
    """Degraded images in ``lq_dir`` matched by file stem to clean images in ``gt_dir``.

    Args:
        lq_dir: folder of degraded images.
        gt_dir: folder of ground-truth images.
        stem_map: ``[pattern, replacement]`` turning an lq stem into its gt stem (``re.fullmatch``
            then ``Match.expand``); stems the pattern does not match are used as they are.
            E.g. ``['(.*)_\\d+', '\\1']`` (``1400_1`` → ``1400``), ``['(.*)', '\\1_gt']``
            (``S`` → ``S_gt``). With a map several lq images may share one gt; without, every
            gt image must have its lq.

    Returns:
        One :class:`ImagePair` per lq image, named by its stem.
    """
    layout = f"<lq_dir>/<stem>.png ↔ <gt_dir>/<stem>.png with lq_dir={lq_dir}, gt_dir={gt_dir}"
    return _pair_folders(Path(lq_dir), Path(gt_dir), _regex_stem_map(stem_map), stem_map is None, layout)


# -- GoPro -------------------------------------------------------------------------------------
GOPRO_LAYOUT = "GoPro_Large/{train,test}/<sequence>/{blur,blur_gamma,sharp}/<frame>.png"


def gopro_pairs(root: str | Path, split: str = "train", blur_dir: str = "blur") -> list[ImagePair]:
    """GoPro deblurring, official layout (Nah et al., CVPR 2017).

    Args:
        root: the ``GoPro_Large`` folder (a folder containing ``GoPro_Large/`` also works).
        split: ``"train"`` or ``"test"``.
        blur_dir: ``"blur"`` or ``"blur_gamma"`` (the gamma-corrected variant).

    Returns:
        Pairs ``<sequence>/<blur_dir>/<frame>`` ↔ ``<sequence>/sharp/<frame>``, named
        ``<sequence>_<frame>`` (frame numbers repeat across sequences).
    """
    root = _require_root(root, "GoPro", GOPRO_LAYOUT)
    if not (root / split).is_dir() and (root / "GoPro_Large" / split).is_dir():
        root = root / "GoPro_Large"
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"GoPro split folder {split_dir} not found; found sub-folders {_subdirs(root)}"
                                f"{_expected(GOPRO_LAYOUT)}")
    sequences = sorted(d for d in split_dir.iterdir() if d.is_dir())
    if not sequences:
        raise ValueError(f"GoPro split folder {split_dir} has no <sequence> folders{_expected(GOPRO_LAYOUT)}")
    pairs = []
    for seq in sequences:
        for pair in _pair_folders(seq / blur_dir, seq / "sharp", lambda stem: (stem,), True, GOPRO_LAYOUT):
            pairs.append(pair._replace(name=f"{seq.name}_{pair.name}"))
    return pairs


GOPRO_AVGFRAMES_LAYOUT = "<root>/blur/<S>.png ↔ <root>/gt/<S>_gt.png"


def gopro_avgframes_pairs(root: str | Path) -> list[ImagePair]:
    """GoPro frame averages (``../shared/data/deblur/GoPro_avgframes``): ``blur/S.png`` ↔ ``gt/S_gt.png``."""
    root = _require_root(root, "GoPro_avgframes", GOPRO_AVGFRAMES_LAYOUT)
    return _pair_folders(root / "blur", root / "gt", lambda stem: (f"{stem}_gt",), True, GOPRO_AVGFRAMES_LAYOUT)


# -- Rain100 -----------------------------------------------------------------------------------
RAIN100_LAYOUT = ("rainy/rain-<n>.png ↔ norain-<n>.png at the root (PReNet's Rain100L), "
                  "inputcrop/<n>.png ↔ cleancrop/<n>.png (Rain100H), "
                  "rainy/rain-<n>.png ↔ {norain,gt}/norain-<n>.png (JORDER, PromptIR) "
                  "or input/<n>.png ↔ target/<n>.png (Restormer)")
_RAIN_DIRS, _CLEAN_DIRS = r"rainy|rain|input.*", r"norain|clean.*|target|gt|groundtruth"


def _rain_gt_stems(stem: str) -> Sequence[str]:
    return (stem, re.sub(r"^rain", "norain", stem), "no" + stem)


def rain100_pairs(root: str | Path, lq_dir: str | None = None, gt_dir: str | None = None) -> list[ImagePair]:
    """Rain100L / Rain100H deraining (Yang et al., CVPR 2017) and their training sets, in any of
    the distributed layouts (``RAIN100_LAYOUT``), detected from the sub-folder names.

    PReNet distributes Rain100L with the clean images at the folder's top level
    (``rainy/rain-001.png`` ↔ ``norain-001.png``); its training sets hold both at the top level
    (``rain-1.png``, ``norain-1.png``). Both are read. gt stems tried for an lq stem ``s``:
    ``s``, ``s`` with ``rain`` → ``norain``, ``"no" + s``.

    Args:
        root: the ``Rain100L`` / ``Rain100H`` / ``RainTrainL`` folder.
        lq_dir: the rainy images' sub-folder name, when auto-detection is not wanted.
        gt_dir: the clean images' sub-folder name, likewise (``gt_dir="."``: the root).
    """
    root = _require_root(root, "Rain100", RAIN100_LAYOUT)
    lq = root / lq_dir if lq_dir else _find_subdir(root, _RAIN_DIRS)
    gt = root / gt_dir if gt_dir else _find_subdir(root, _CLEAN_DIRS)
    top_level = sorted((p for p in root.iterdir() if _is_image(p)), key=_natural_key)
    if lq is None and gt is None and top_level:  # PReNet's training sets: rain-N and norain-N side by side
        lq_files = [p for p in top_level if p.stem.lower().startswith("rain")]
        gt_files = [p for p in top_level if p.stem.lower().startswith("norain")]
        if lq_files and gt_files:
            return _pair_files(lq_files, gt_files, root, root, _rain_gt_stems, True, RAIN100_LAYOUT)
    if gt is None and lq is not None and top_level:  # PReNet's test sets: clean images at the top level
        gt = root
    if lq is None or not lq.is_dir() or gt is None or not gt.is_dir():
        missing = "rainy (lq)" if lq is None or not lq.is_dir() else "clean (gt)"
        raise FileNotFoundError(f"Rain100 root {root}: no {missing} image folder; found sub-folders {_subdirs(root)}"
                                f"{_expected(RAIN100_LAYOUT)}")
    return _pair_folders(lq, gt, _rain_gt_stems, True, RAIN100_LAYOUT)


# -- SOTS --------------------------------------------------------------------------------------
SOTS_LAYOUT = ("hazy/<id>_<k>.png ↔ gt/<id>.png (SOTS indoor), input/<id>_<A>_<beta>.jpg ↔ target/<id>.png "
               "(SOTS outdoor), or hazy/ ↔ clear/ (RESIDE ITS/OTS)")


def sots_pairs(root: str | Path) -> list[ImagePair]:
    """RESIDE dehazing (Li et al., TIP 2019): SOTS indoor/outdoor test sets and the ITS/OTS training sets.

    Several hazy images (``<id>_<k>`` indoor, ``<id>_<A>_<β>`` outdoor) share one clear image: the
    gt stem is the hazy stem up to its first ``_``. Hazy folder: ``hazy`` or ``input``; clear
    folder: ``gt``, ``clear`` or ``target``.

    Args:
        root: e.g. ``SOTS/indoor``, ``SOTS/outdoor``, ``RESIDE/OTS``.
    """
    root = _require_root(root, "SOTS", SOTS_LAYOUT)
    hazy, clear = _find_subdir(root, r"hazy|input"), _find_subdir(root, r"clear|gt|target")
    if hazy is None or clear is None:
        missing = "hazy/ (or input/)" if hazy is None else "gt/ (or clear/, target/)"
        raise FileNotFoundError(f"SOTS root {root}: no {missing} sub-folder; found sub-folders {_subdirs(root)}"
                                f"{_expected(SOTS_LAYOUT)}")
    return _pair_folders(hazy, clear, lambda stem: (stem.split("_", 1)[0], stem), False, SOTS_LAYOUT)


# -- LOL ---------------------------------------------------------------------------------------
LOL_LAYOUT = "<root>/low/<n>.png ↔ <root>/high/<n>.png"


def lol_pairs(root: str | Path) -> list[ImagePair]:
    """LOL low-light enhancement (Wei et al., BMVC 2018): ``low/N.png`` ↔ ``high/N.png`` (eval15, our485)."""
    root = _require_root(root, "LOL", LOL_LAYOUT)
    return _pair_folders(root / "low", root / "high", lambda stem: (stem,), True, LOL_LAYOUT)
