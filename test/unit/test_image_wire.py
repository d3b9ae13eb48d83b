"""Serialized sensor_msgs/Image built from numpy agrees with rclpy's own serializer."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from tablet_workcell.image_wire import ImageWireError, decode_image, encode_image

CASES = [
    ("bgr8", (2, 3, 3), "cam"),
    ("mono8", (3, 5), ""),
    ("rgba8", (4, 4, 4), "ab"),
    ("bgr8", (480, 640, 3), "x"),
]


@pytest.mark.parametrize(("encoding", "shape", "frame_id"), CASES)
def test_encoded_bytes_decode_to_the_same_message_in_rclpy(
    encoding: str, shape: tuple[int, ...], frame_id: str
) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    message = deserialize_message(encode_image(pixels, encoding, 5_000_000_007, frame_id), Image)
    assert (message.header.stamp.sec, message.header.stamp.nanosec) == (5, 7)
    assert message.header.frame_id == frame_id and message.encoding == encoding
    assert (message.height, message.width, message.step) == (shape[0], shape[1], pixels.nbytes // shape[0])
    assert np.array_equal(np.frombuffer(message.data, np.uint8).reshape(shape), pixels)


@pytest.mark.parametrize(("encoding", "shape", "frame_id"), CASES)
def test_rclpy_serialized_image_decodes_to_a_view_of_the_pixels(
    encoding: str, shape: tuple[int, ...], frame_id: str
) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    message = Image(
        height=shape[0],
        width=shape[1],
        encoding=encoding,
        step=pixels.nbytes // shape[0],
        data=pixels.tobytes(),
    )
    message.header.stamp.sec, message.header.stamp.nanosec, message.header.frame_id = 9, 11, frame_id
    wire = decode_image(serialize_message(message))
    assert (wire.stamp_ns, wire.frame_id, wire.encoding) == (9_000_000_011, frame_id, encoding)
    assert wire.pixels.shape == shape and np.array_equal(wire.pixels, pixels)


def test_bad_frames_and_bytes_are_refused_with_the_reason() -> None:
    with pytest.raises(ImageWireError, match="encoding 'yuv422' is not supported"):
        encode_image(np.zeros((2, 2, 3), np.uint8), "yuv422", 0, "")
    with pytest.raises(ImageWireError, match=r"does not match encoding 'bgr8' \(3 uint8 channel"):
        encode_image(np.zeros((2, 2), np.uint8), "bgr8", 0, "")
    with pytest.raises(ImageWireError, match="not little-endian CDR"):
        decode_image(b"\x01\x00\x00\x00" + bytes(40))
    good = encode_image(np.zeros((4, 4, 3), np.uint8), "bgr8", 0, "cam")
    with pytest.raises(ImageWireError, match="truncated or padded"):
        decode_image(good[:-5])
    with pytest.raises(ImageWireError, match="not a sensor_msgs/Image"):
        decode_image(good[:10])
