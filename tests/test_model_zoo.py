"""Model names → weights files: the hook pretrained models plug into."""

from __future__ import annotations

import pytest

import restore
from restore import model_zoo
from restore.model_zoo import UnknownModelError, resolve_model


def test_a_path_resolves_to_itself_and_a_missing_one_is_named(tmp_path):
    path = tmp_path / "net.safetensors"
    path.write_bytes(b"")
    assert resolve_model(str(path)) == path
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        resolve_model(tmp_path / "missing.ckpt")


def test_unknown_name_lists_what_exists(monkeypatch):
    with pytest.raises(UnknownModelError, match="none are shipped"):
        resolve_model("colour_denoiser")
    monkeypatch.setitem(model_zoo.PRETRAINED_MODELS, "colour_denoiser", "colour_denoiser.safetensors")
    assert restore.list_models() == ["colour_denoiser"]
    assert resolve_model("colour_denoiser") == model_zoo.WEIGHTS_DIR / "colour_denoiser.safetensors"
    with pytest.raises(UnknownModelError, match="colour_denoiser"):
        resolve_model("gray_denoiser")
