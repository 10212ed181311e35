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


def write_png16(path, arr: np.ndarray):
    """A 16-bit PNG (gray H×W or RGB H×W×3 uint16), encoded by hand: Pillow cannot write 16-bit RGB."""
    import struct
    import zlib

    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, 2 if arr.ndim == 3 else 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("channels", [None, 1, 3])
@pytest.mark.parametrize("peak", [65535, 200])  # a dark 16-bit image is still 16-bit
def test_16bit_gray_png_keeps_its_values_in_every_channel_count(tmp_path, channels, peak):
    gray = np.linspace(0, peak, 6 * 7).reshape(6, 7).astype(np.uint16)
    path = write_png16(tmp_path / "g16.png", gray)
    x = read_image(path, channels=channels)
    assert x.shape == (3 if channels == 3 else 1, 6, 7)
    for c in range(x.shape[0]):
        np.testing.assert_allclose(x[c].numpy(), gray / 65535.0, atol=1e-6)


def test_16bit_rgb_png_is_right(tmp_path):
    rgb = (np.random.default_rng(0).random((5, 6, 3)) * 65535).astype(np.uint16)
    x = read_image(write_png16(tmp_path / "rgb16.png", rgb))
    assert x.shape == (3, 5, 6)
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), rgb / 65535.0, atol=1 / 255)  # Pillow reads 8 bits


def test_16bit_gray_file_comes_back_16bit(tmp_path):
    gray = np.linspace(0, 65535, 20).reshape(4, 5).astype(np.uint16)
    t, kind = to_tensor(write_png16(tmp_path / "g.png", gray))
    out = from_tensor(t, kind)
    assert out.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(out), gray)
    t, kind = to_tensor(Image.fromarray(gray))
    np.testing.assert_array_equal(np.asarray(from_tensor(t, kind)), gray)


@pytest.mark.parametrize("dtype, scale", [(np.uint8, 255), (np.uint16, 65535)])
def test_integer_arrays_are_scaled_and_come_back_as_given(dtype, scale):
    arr = np.array([[0, scale // 2, scale]], dtype=dtype)
    t, kind = to_tensor(arr)
    np.testing.assert_allclose(t[0, 0].numpy(), arr / scale, atol=1e-7)
    back = from_tensor(t, kind)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_arrays_in_unit_range_come_back_in_their_dtype(dtype):
    arr = np.random.default_rng(0).random((4, 5, 3)).astype(dtype)
    t, kind = to_tensor(arr)
    back = from_tensor(t, kind)
    assert back.dtype == dtype and back.shape == arr.shape
    np.testing.assert_allclose(back, arr, atol=1e-3 if dtype == np.float16 else 1e-7)


@pytest.mark.parametrize("make", [lambda a: a.astype(np.float32), lambda a: a.astype(np.float64),
                                  lambda a: torch.from_numpy(a.astype(np.float32))])
def test_float_images_in_0_255_are_refused(make):
    image = make(np.random.default_rng(0).integers(0, 256, (8, 9, 3)).astype(np.float64))
    if isinstance(image, torch.Tensor):
        image = image.permute(2, 0, 1)
    with pytest.raises(ValueError, match="divide .* by 255"):
        to_tensor(image)


def test_float_values_outside_unit_range_are_kept_unless_they_read_as_0_255():
    for image in (np.full((4, 4), -0.9, np.float32), torch.full((1, 4, 4), 2.4),
                  Image.fromarray(np.full((4, 4), 1.5, np.float32))):  # PIL mode F
        t, _ = to_tensor(image)
        assert float(t.flatten()[0]) == pytest.approx(float(np.asarray(image).flatten()[0]))  # not clipped
    for image in (np.full((4, 4), 4.5, np.float32), Image.fromarray(np.full((4, 4), 30.0, np.float32))):
        with pytest.raises(ValueError, match=r"max .* > 4: looks like 0–255 data"):
            to_tensor(image)


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint32, np.uint64,
                                   np.complex64])
def test_integer_and_bool_arrays_without_a_scale_are_refused(dtype):
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        to_tensor(np.ones((4, 4), dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.bool, torch.int8, torch.int16, torch.int32, torch.int64])
def test_integer_and_bool_tensors_without_a_scale_are_refused(dtype):
    with pytest.raises(TypeError, match=str(dtype)):
        to_tensor(torch.ones(1, 4, 4, dtype=dtype))


@pytest.mark.parametrize("dtype, scale", [(torch.uint8, 255), (torch.uint16, 65535)])
@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 1, 4, 5)])
def test_integer_tensors_are_scaled_and_come_back_as_given(dtype, scale, shape):
    x = (torch.rand(shape) * scale).round().to(torch.int64).to(dtype)
    t, kind = to_tensor(x)
    torch.testing.assert_close(t.reshape(shape), x.to(torch.float32) / scale)
    back = from_tensor(t, kind)
    assert back.dtype == dtype and back.shape == x.shape
    assert torch.equal(back, x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64, torch.bfloat16])
def test_float_tensors_come_back_in_their_dtype(dtype):
    x = torch.rand(3, 4, 5).to(dtype)
    t, kind = to_tensor(x)
    back = from_tensor(t, kind)
    assert back.dtype == dtype and back.shape == x.shape
    torch.testing.assert_close(back, x)


@pytest.mark.parametrize("image", [np.zeros((0, 0), np.uint8), np.zeros((0, 5, 3), np.float32),
                                   np.zeros((5, 0), np.uint16), torch.zeros(3, 0, 0), torch.zeros(0, 4, 4),
                                   torch.zeros(1, 3, 4, 0), Image.new("RGB", (0, 0))], ids=str)
def test_empty_images_are_refused_naming_the_shape(image):
    with pytest.raises(ValueError, match=r"empty: shape \("):
        to_tensor(image)


def test_16bit_pgm_is_read_at_16_bits_and_int32_images_are_refused(tmp_path):
    path = tmp_path / "g.pgm"
    path.write_bytes(b"P5\n3 1\n65535\n" + np.array([0, 1000, 65535], ">u2").tobytes())
    np.testing.assert_allclose(read_image(path)[0, 0].numpy(), [0, 1000 / 65535, 1], atol=1e-6)
    with pytest.raises(TypeError, match="mode 'I'"):
        to_tensor(Image.fromarray(np.array([[0, 200]], np.int32)))
