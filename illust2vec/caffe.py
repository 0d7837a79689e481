"""Read the weights out of a binary .caffemodel without Caffe installed.

A .caffemodel is a serialised `caffe.NetParameter` protocol buffer. Only the fields that carry
weights are described here, with caffe.proto's field numbers; protobuf skips every other field
(layer parameters, solver state), so the schema stays a dozen lines. Both layer formats are read:
the pre-2015 `layers` (V1LayerParameter, NetParameter field 2, 4-D num/channels/height/width
blobs) and the current `layer` (LayerParameter, field 100, blobs with an N-D `shape`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "illust2vec.caffe_subset"

# message -> (field, number, type, repeated, message type name); numbers are caffe.proto's.
SCHEMA: dict[str, list[tuple[str, int, int, bool, str | None]]] = {
    "BlobShape": [("dim", 1, _F.TYPE_INT64, True, None)],
    "BlobProto": [("num", 1, _F.TYPE_INT32, False, None), ("channels", 2, _F.TYPE_INT32, False, None),
                  ("height", 3, _F.TYPE_INT32, False, None), ("width", 4, _F.TYPE_INT32, False, None),
                  ("data", 5, _F.TYPE_FLOAT, True, None), ("shape", 7, _F.TYPE_MESSAGE, False, "BlobShape"),
                  ("double_data", 8, _F.TYPE_DOUBLE, True, None)],
    "V1LayerParameter": [("name", 4, _F.TYPE_STRING, False, None), ("type", 5, _F.TYPE_INT32, False, None),
                         ("blobs", 6, _F.TYPE_MESSAGE, True, "BlobProto")],
    "LayerParameter": [("name", 1, _F.TYPE_STRING, False, None), ("type", 2, _F.TYPE_STRING, False, None),
                       ("blobs", 7, _F.TYPE_MESSAGE, True, "BlobProto")],
    "NetParameter": [("name", 1, _F.TYPE_STRING, False, None),
                     ("layers", 2, _F.TYPE_MESSAGE, True, "V1LayerParameter"),
                     ("layer", 100, _F.TYPE_MESSAGE, True, "LayerParameter")],
}


@functools.cache
def message_classes() -> dict[str, type]:
    """Build the protobuf classes from SCHEMA at run time (no protoc, no generated code)."""
    proto = descriptor_pb2.FileDescriptorProto(name="illust2vec_caffe_subset.proto", package=_PACKAGE,
                                               syntax="proto2")
    for message_name, fields in SCHEMA.items():
        message = proto.message_type.add(name=message_name)
        for name, number, kind, repeated, type_name in fields:
            field = message.field.add(name=name, number=number, type=kind,
                                      label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"
            if repeated and kind in (_F.TYPE_FLOAT, _F.TYPE_DOUBLE, _F.TYPE_INT64):
                field.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
            for name in SCHEMA}


def _blob_array(blob) -> np.ndarray:
    values = blob.data if len(blob.data) else blob.double_data
    array = np.array(values, dtype=np.float32)
    if blob.HasField("shape"):
        shape = tuple(blob.shape.dim)
    else:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    if int(np.prod(shape)) != array.size:
        raise ValueError(f"blob declares shape {shape} but holds {array.size} values")
    return array.reshape(shape)


def read_caffemodel(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Layer name -> its blobs (weights, then bias), for every layer that has any, in file order.

    Raises ValueError when the file is not a NetParameter or a layer is malformed.
    """
    net = message_classes()["NetParameter"]()
    try:
        net.ParseFromString(Path(path).read_bytes())
    except DecodeError as exc:
        raise ValueError(f"not a Caffe model (protobuf decoding failed: {exc})") from None
    weights: dict[str, list[np.ndarray]] = {}
    for layer in [*net.layers, *net.layer]:
        if not layer.blobs:
            continue
        if layer.name in weights:
            raise ValueError(f"layer {layer.name!r} appears twice")
        try:
            weights[layer.name] = [_blob_array(blob) for blob in layer.blobs]
        except ValueError as exc:
            raise ValueError(f"layer {layer.name!r}: {exc}") from None
    if not weights:
        raise ValueError("no layer with weights in it (is this a .prototxt or an empty model?)")
    return weights
