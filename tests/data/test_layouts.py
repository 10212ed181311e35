"""Layout functions: each dataset's (lq, gt) pairs on tiny folders in its layout, on the real
reference sets when ../shared/data is present, and errors that name the layout and the files."""

from __future__ import annotations

import re

import pytest

from restore.data import (
    ImagePair,
    PairedImageDataset,
    gopro_avgframes_pairs,
    gopro_pairs,
    lol_pairs,
    paired_paths_from_folders,
    rain100_pairs,
    sots_pairs,
)
from tests.data.conftest import SHARED_DATA, needs_shared


def names(pairs: list[ImagePair]) -> list[tuple[str, str]]:
    return [(pair.lq.name, pair.gt.name) for pair in pairs]


# -- each layout -------------------------------------------------------------------------------
def test_paired_folders_match_by_stem(paired_dirs):
    lq_dir, gt_dir = paired_dirs
    pairs = paired_paths_from_folders(lq_dir, gt_dir)
    assert names(pairs) == [("0.png", "0.png"), ("1.png", "1.png"), ("2.png", "2.png")]
    assert all(isinstance(p, ImagePair) and p.lq.parent == lq_dir and p.gt.parent == gt_dir for p in pairs)
    assert [p.name for p in pairs] == ["0", "1", "2"]


def test_paired_folders_stem_map_many_to_one(tmp_path, make_png):
    for k in (1, 2):
        make_png(tmp_path / "clear" / f"{k}.png", seed=k)
        make_png(tmp_path / "hazy" / f"{k}_1.png", seed=k)
        make_png(tmp_path / "hazy" / f"{k}_2.png", seed=k)
    pairs = paired_paths_from_folders(tmp_path / "hazy", tmp_path / "clear", stem_map=[r"(.*)_\d+", r"\1"])
    assert names(pairs) == [("1_1.png", "1.png"), ("1_2.png", "1.png"), ("2_1.png", "2.png"), ("2_2.png", "2.png")]
    with pytest.raises(ValueError, match="stem_map"):
        paired_paths_from_folders(tmp_path / "hazy", tmp_path / "clear", stem_map="(.*)")


def test_gopro_official_layout_names_by_sequence(data_root):
    pairs = gopro_pairs(data_root / "GoPro_Large", split="test")
    assert [p.name for p in pairs] == ["GOPR0001_00_000000", "GOPR0001_00_000001", "GOPR0002_00_000000",
                                       "GOPR0002_00_000001"]
    assert all(p.lq.parent.name == "blur" and p.gt.parent.name == "sharp" for p in pairs)
    assert len(gopro_pairs(data_root, split="train")) == 4  # the folder holding GoPro_Large also works


def test_gopro_avgframes_blur_to_gt_suffix(shared_root):
    pairs = gopro_avgframes_pairs(shared_root / "data" / "deblur" / "GoPro_avgframes")
    assert names(pairs)[0] == ("GOPR0374_11_00_st_frame-1_n_avg-8.png", "GOPR0374_11_00_st_frame-1_n_avg-8_gt.png")
    assert len(pairs) == 3 and pairs[0].name == "GOPR0374_11_00_st_frame-1_n_avg-8"


def test_rain100l_prenet_layout_clean_images_at_top_level(shared_root):
    root = shared_root / "data" / "derain" / "Rain100L"
    pairs = rain100_pairs(root)
    assert names(pairs) == [("rain-001.png", "norain-001.png"), ("rain-002.png", "norain-002.png"),
                            ("rain-010.png", "norain-010.png")]
    assert all(p.gt.parent == root for p in pairs)


def test_rain100_other_layouts(shared_root, data_root, tmp_path, make_png):
    rain100h = rain100_pairs(shared_root / "data" / "derain" / "Rain100H")  # inputcrop/N ↔ cleancrop/N
    assert [(p.lq.parent.name, p.gt.parent.name) for p in rain100h] == [("inputcrop", "cleancrop")] * 3
    assert [p.name for p in rain100h] == ["1", "2", "10"]  # natural order
    jorder = rain100_pairs(data_root / "RainTrainL")  # rainy/rain-N ↔ norain/norain-N
    assert names(jorder) == [("rain-1.png", "norain-1.png"), ("rain-2.png", "norain-2.png")]
    for k in (1, 2):  # PromptIR: rainy/rain-N ↔ gt/norain-N; PReNet's training sets: both at the top level
        make_png(tmp_path / "promptir" / "rainy" / f"rain-{k}.png")
        make_png(tmp_path / "promptir" / "gt" / f"norain-{k}.png")
        make_png(tmp_path / "train" / f"rain-{k}.png")
        make_png(tmp_path / "train" / f"norain-{k}.png")
    assert names(rain100_pairs(tmp_path / "promptir")) == [("rain-1.png", "norain-1.png"),
                                                          ("rain-2.png", "norain-2.png")]
    assert names(rain100_pairs(tmp_path / "train")) == [("rain-1.png", "norain-1.png"), ("rain-2.png", "norain-2.png")]


def test_sots_indoor_and_outdoor_layouts(shared_root, data_root):
    indoor = sots_pairs(shared_root / "data" / "dehaze" / "SOTS_samples" / "indoor")  # hazy/ID_k ↔ gt/ID
    assert names(indoor) == [("1400_9.png", "1400.png"), ("1402_9.png", "1402.png"), ("1403_8.png", "1403.png")]
    # outdoor: input/ID_A_β.jpg ↔ target/ID.png
    outdoor = sots_pairs(shared_root / "data" / "dehaze" / "SOTS_samples" / "outdoor")
    assert names(outdoor) == [("0001_0.8_0.2.jpg", "0001.png"), ("0002_0.8_0.08.jpg", "0002.png")]
    reside = sots_pairs(data_root / "RESIDE" / "OTS")  # hazy/ ↔ clear/, several hazy per clear
    assert len(reside) == 4 and {p.gt.name for p in reside} == {"0001.png", "0002.png"}


def test_lol_low_to_high(shared_root):
    pairs = lol_pairs(shared_root / "data" / "lowlight" / "LOL_eval15")
    assert [(p.lq.parent.name, p.gt.parent.name, p.name) for p in pairs] == [
        ("low", "high", "1"), ("low", "high", "2"), ("low", "high", "10")]


# -- errors name the layout and the folder or files --------------------------------------------
@pytest.mark.parametrize("layout, dataset, expected", [
    (gopro_pairs, "GoPro", "{train,test}/<sequence>/{blur,blur_gamma,sharp}/<frame>.png"),
    (gopro_avgframes_pairs, "GoPro_avgframes", "<root>/blur/<S>.png ↔ <root>/gt/<S>_gt.png"),
    (rain100_pairs, "Rain100", "rainy/rain-<n>.png ↔ norain-<n>.png at the root"),
    (sots_pairs, "SOTS", "input/<id>_<A>_<beta>.jpg ↔ target/<id>.png"),
    (lol_pairs, "LOL", "<root>/low/<n>.png ↔ <root>/high/<n>.png"),
])
def test_missing_root_names_the_folder_and_the_layout(tmp_path, layout, dataset, expected):
    missing = tmp_path / "nowhere"
    message = rf"{dataset} root {missing} not found; expected .*{re.escape(expected)}"
    with pytest.raises(FileNotFoundError, match=message):
        layout(missing)


def test_missing_sub_folders_are_named(tmp_path, make_png):
    (tmp_path / "rain" / "photos").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no rainy \(lq\) image folder; found sub-folders \['photos'\]"):
        rain100_pairs(tmp_path / "rain")
    make_png(tmp_path / "sots" / "hazy" / "1_1.png")
    with pytest.raises(FileNotFoundError, match=r"SOTS root .*: no gt/ \(or clear/, target/\) sub-folder.*expected"):
        sots_pairs(tmp_path / "sots")
    make_png(tmp_path / "lol" / "low" / "1.png")
    with pytest.raises(FileNotFoundError, match=rf"gt folder {tmp_path / 'lol' / 'high'} not found; expected .*low"):
        lol_pairs(tmp_path / "lol")
    (tmp_path / "gopro" / "train" / "SEQ" / "blur").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'gopro' / 'train' / 'SEQ' / 'sharp'} not found"):
        gopro_pairs(tmp_path / "gopro")
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'gopro' / 'test'} not found"):
        gopro_pairs(tmp_path / "gopro", split="test")


def test_empty_folder_is_named_with_the_layout(tmp_path, make_png):
    (tmp_path / "lq").mkdir()
    make_png(tmp_path / "gt" / "a.png")
    (tmp_path / "lq" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=rf"lq folder {tmp_path / 'lq'} contains no images"):
        paired_paths_from_folders(tmp_path / "lq", tmp_path / "gt")
    (tmp_path / "lol" / "low").mkdir(parents=True)
    make_png(tmp_path / "lol" / "high" / "1.png")
    with pytest.raises(ValueError, match=r"lq folder .*low contains no images .*; expected <root>/low/<n>.png"):
        lol_pairs(tmp_path / "lol")


def test_unmatched_stems_name_both_files(paired_dirs, make_png, shared_root):
    lq_dir, gt_dir = paired_dirs
    make_png(lq_dir / "7.png")
    with pytest.raises(ValueError, match=rf"4 lq images in {lq_dir}, 3 gt images in {gt_dir}; first unmatched: "
                                         rf"lq {lq_dir / '7.png'} has no gt image {re.escape(str(gt_dir / '7.*'))}"):
        paired_paths_from_folders(lq_dir, gt_dir)
    (lq_dir / "7.png").unlink()
    make_png(gt_dir / "8.png")
    with pytest.raises(ValueError, match=rf"3 lq images.*4 gt images.*gt {gt_dir / '8.png'} has no lq image"):
        paired_paths_from_folders(lq_dir, gt_dir)
    root = shared_root / "data" / "deblur" / "GoPro_avgframes"
    (root / "gt" / "GOPR0374_11_00_st_frame-2_n_avg-8_gt.png").unlink()
    lq = root / "blur" / "GOPR0374_11_00_st_frame-2_n_avg-8.png"
    gt = root / "gt" / "GOPR0374_11_00_st_frame-2_n_avg-8_gt.*"
    with pytest.raises(ValueError, match=rf"lq {lq} has no gt image {re.escape(str(gt))}; expected <root>/blur"):
        gopro_avgframes_pairs(root)
    rain = shared_root / "data" / "derain" / "Rain100L"
    (rain / "norain-002.png").unlink()
    with pytest.raises(ValueError, match=rf"lq {rain / 'rainy' / 'rain-002.png'} has no gt image .*"
                                         rf"{re.escape(str(rain / 'norain-002.*'))}; expected"):
        rain100_pairs(rain)


# -- the real reference sets -------------------------------------------------------------------
SHARED_SETS = [
    ("derain/Rain100L", rain100_pairs, 100, ("rain-001.png", "norain-001.png")),
    ("derain/Rain100H", rain100_pairs, 100, ("1.png", "1.png")),
    ("lowlight/LOL_eval15", lol_pairs, 15, ("1.png", "1.png")),
    ("dehaze/SOTS_samples/indoor", sots_pairs, 5, ("1400_9.png", "1400.png")),
    ("dehaze/SOTS_samples/outdoor", sots_pairs, 2, ("0001_0.8_0.2.jpg", "0001.png")),
    ("deblur/GoPro_avgframes", gopro_avgframes_pairs, 18, None),
]


@pytest.mark.parametrize("folder, layout, count, first",
                         [pytest.param(*s, marks=needs_shared(*s[0].split("/")), id=s[0]) for s in SHARED_SETS])
def test_shared_reference_sets(folder, layout, count, first):
    pairs = layout(SHARED_DATA / folder)
    assert len(pairs) == count and len({p.name for p in pairs}) == count
    if first:
        assert names(pairs)[0] == first
    dataset = PairedImageDataset(pairs, seed=0)  # every pair's lq/gt sizes agree (read from the headers)
    assert len(dataset) == count
