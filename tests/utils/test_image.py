import numpy as np
import pytest
import torch
from PIL import Image

from restore.utils.image import from_tensor, read_image, to_tensor, write_image


def test_write_then_read_is_lossless_at_8_bits(tmp_path):
    x = torch.rand(3, 9, 11)
    path = write_image(x, tmp_path / "sub" / "a.png")
    y = read_image(path)
    assert y.shape == (3, 9, 11) and (y - x).abs().max() <= 0.5 / 255 + 1e-6
    gray = read_image(write_image(torch.rand(1, 5, 7), tmp_path / "g.png"))
    assert gray.shape == (1, 5, 7)
    assert read_image(tmp_path / "g.png", channels=3).shape == (3, 5, 7)


def test_truncated_file_is_named(tmp_path):
    path = tmp_path / "broken.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(OSError, match="broken.png"):
        read_image(path)


def test_round_trip_keeps_kind_and_values():
    arr = np.random.default_rng(0).random((6, 7, 3)).astype(np.float32)
    t, kind = to_tensor(arr)
    assert t.shape == (1, 3, 6, 7)
    np.testing.assert_allclose(from_tensor(t, kind), arr, atol=1e-7)
    u16 = (np.random.default_rng(1).random((4, 5)) * 65535).astype(np.uint16)
    t, kind = to_tensor(u16)
    assert t.max() <= 1 and from_tensor(t, kind).dtype == np.uint16
