"""illust2vec: the Caffe reader against an independent protobuf encoder, conversion checks, tagging."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from illust2vec import CATEGORIES, Illust2Vec, network_input, tag_indices, tag_list
from illust2vec.cli import main
from illust2vec.convert import convert_caffemodel
from illust2vec.model import MEAN_BGR, picture_tensor
from illust2vec.network import Illust2VecNet

WIDTH = 1 / 32  # channels 2 ... 32: the published layer structure at a size tests can afford


# ---------------------------------------------------------------- protobuf wire format, written by hand
# Independent of illust2vec.caffe's schema: field numbers straight from caffe.proto.
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def number_field(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def blob(array: np.ndarray, legacy: bool) -> bytes:
    data = field(5, array.astype("<f4").tobytes())
    if legacy:  # V1: always 4-D num/channels/height/width, leading ones for vectors and matrices
        dims = (1,) * (4 - array.ndim) + array.shape
        return b"".join(number_field(i + 1, d) for i, d in enumerate(dims)) + data
    return field(7, field(1, b"".join(varint(d) for d in array.shape))) + data


def layer(name: str, arrays: list[np.ndarray], legacy: bool) -> bytes:
    if legacy:  # V1LayerParameter: name 4, type 5 (enum; 4 = CONVOLUTION, 18 = RELU), blobs 6
        kind = number_field(5, 4 if arrays else 18)
        return field(4, name.encode()) + kind + b"".join(field(6, blob(a, True)) for a in arrays)
    kind = field(2, b"Convolution" if arrays else b"ReLU")  # LayerParameter: name 1, type 2, blobs 7
    return field(1, name.encode()) + kind + b"".join(field(7, blob(a, False)) for a in arrays)


def caffemodel(state: dict[str, torch.Tensor], legacy: bool, extra: dict | None = None) -> bytes:
    layers = {}
    for key, value in state.items():
        layers.setdefault(key.rsplit(".", 1)[0], []).append(value.numpy())
    layers.update(extra or {})
    body = b"".join(field(2 if legacy else 100, layer(name, arrays, legacy)) for name, arrays in layers.items())
    relu = field(2 if legacy else 100, layer("relu1_1", [], legacy))
    return field(1, b"illust2vec_tag") + relu + body


def small_net(variant: str = "tag") -> Illust2VecNet:
    torch.manual_seed(0)
    return Illust2VecNet(variant, WIDTH)


# ---------------------------------------------------------------- conversion
@pytest.mark.parametrize("legacy", [True, False], ids=["V1-layers", "layer"])
@pytest.mark.parametrize("variant", ["tag", "feature"])
def test_caffemodel_round_trips_to_the_same_network(tmp_path, legacy, variant):
    net = small_net(variant)
    source = tmp_path / "m.caffemodel"
    decoder = [np.zeros((1539, 4096), np.float32), np.zeros(1539, np.float32)]
    extra = {"encode2": decoder} if variant == "feature" else {}
    source.write_bytes(caffemodel(net.state_dict(), legacy, extra))
    assert convert_caffemodel(source, tmp_path / "m.safetensors") == variant
    loaded = Illust2Vec.load(tmp_path / "m.safetensors")
    for key, value in net.state_dict().items():
        torch.testing.assert_close(loaded.net.state_dict()[key], value, rtol=0, atol=0)
    x = torch.rand(2, 3, 224, 224)
    expected = net.eval()(network_input(x))
    got = loaded.probabilities(x) if variant == "tag" else loaded.features(x)
    torch.testing.assert_close(got, expected)


def test_shape_mismatch_is_refused_naming_the_layer(tmp_path):
    state = small_net().state_dict()
    state["conv3_2.weight"] = torch.zeros(8, 7, 3, 3)
    (tmp_path / "m.caffemodel").write_bytes(caffemodel(state, legacy=True))
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "m.caffemodel"), "-o", str(tmp_path / "o.st")])
    assert result.exit_code == 1
    assert "layer conv3_2 weight" in result.output and "(8, 7, 3, 3)" in result.output
    assert not (tmp_path / "o.st").exists()


def test_unknown_and_missing_layers_are_refused_by_name(tmp_path):
    state = small_net().state_dict()
    extra = {"fc_extra": [np.zeros((3, 3), np.float32), np.zeros(3, np.float32)]}
    (tmp_path / "a.caffemodel").write_bytes(caffemodel(state, legacy=False, extra=extra))
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "a.caffemodel"), "-o", str(tmp_path / "a.st")])
    assert result.exit_code == 1 and "unknown layer(s) fc_extra" in result.output
    del state["conv4_1.weight"], state["conv4_1.bias"]
    (tmp_path / "b.caffemodel").write_bytes(caffemodel(state, legacy=False))
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "b.caffemodel"), "-o", str(tmp_path / "b.st")])
    assert result.exit_code == 1 and "conv4_1" in result.output and "missing" in result.output


def test_files_that_are_not_caffe_models_are_refused(tmp_path):
    (tmp_path / "x.caffemodel").write_bytes(b"\xff\xff\xff garbage")
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "x.caffemodel"), "-o", str(tmp_path / "x.st")])
    assert result.exit_code == 1 and "not a Caffe model" in result.output
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "none.caffemodel"), "-o", str(tmp_path / "x.st")])
    assert result.exit_code == 1 and "not found" in result.output


def test_the_published_architecture_sizes():
    tag, feature = Illust2VecNet("tag"), Illust2VecNet("feature")
    assert sum(p.numel() for p in tag.parameters()) == 47_001_475
    assert feature.encode1.in_features == 1024 * 7 * 7 and feature.encode1.out_features == 4096
    assert [n for n, _ in tag.named_children()][-1] == "conv6_4"


# ---------------------------------------------------------------- tags and preprocessing
def test_tag_list_and_categories():
    names = tag_list()
    assert len(names) == 1539 and names[:2] == ("1girl", "solo")
    assert names[CATEGORIES["rating"]] == ("safe", "questionable", "explicit")
    assert tag_indices(["blue eyes", "safe"]) == [names.index("blue eyes"), 1536]
    with pytest.raises(KeyError, match="blue eye'.*did you mean"):
        tag_indices(["blue eye"])


@pytest.fixture(scope="module")
def ramp_weights(tmp_path_factory):
    """A tag model whose probabilities rise with the tag index, whatever the picture."""
    net = small_net()
    with torch.no_grad():
        net.conv6_4.weight.zero_()
        net.conv6_4.bias.copy_(torch.linspace(-4, 4, 1539))
    path = tmp_path_factory.mktemp("weights") / "ramp.caffemodel"
    path.write_bytes(caffemodel(net.state_dict(), legacy=True))
    convert_caffemodel(path, path.with_suffix(".safetensors"))
    return path.with_suffix(".safetensors")


def test_tags_are_ranked_within_each_category(ramp_weights):
    result = Illust2Vec.load(ramp_weights).tags([Image.new("RGB", (50, 40), "red")], top_k=3)[0]
    names = tag_list()
    assert [t for t, _ in result["general"]] == list(names[509:512][::-1])
    assert [t for t, _ in result["character"]] == list(names[1021:1024][::-1])
    assert [t for t, _ in result["rating"]] == ["explicit", "questionable", "safe"]
    above = Illust2Vec.load(ramp_weights).tags([Image.new("RGB", (8, 8))], threshold=0.98)[0]
    assert all(p > 0.98 for _, p in above["copyright"]) and len(above["copyright"]) > 0
    assert above["general"] == []


def test_tag_command_prints_each_category(tmp_path, ramp_weights):
    Image.new("L", (30, 30), 128).save(tmp_path / "grey.png")
    result = CliRunner().invoke(main, ["tag", str(tmp_path / "grey.png"), "-w", str(ramp_weights), "--top-k", "2"])
    assert result.exit_code == 0, result.output
    assert "general" in result.output and tag_list()[511] in result.output
    as_json = CliRunner().invoke(main, ["tag", str(tmp_path / "grey.png"), "-w", str(ramp_weights), "--json"])
    assert len(json.loads(as_json.output)[str(tmp_path / "grey.png")]["general"]) == 10


def test_missing_or_wrong_weights_say_what_file_is_needed(tmp_path, ramp_weights):
    Image.new("RGB", (8, 8)).save(tmp_path / "p.png")
    result = CliRunner().invoke(main, ["tag", str(tmp_path / "p.png"), "-w", str(tmp_path / "none.safetensors")])
    assert result.exit_code == 1
    assert "illust2vec_tag_ver200.caffemodel" in result.output and "illust2vec convert" in result.output
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    result = CliRunner().invoke(main, ["tag", str(tmp_path / "p.png"), "-w", str(tmp_path / "bad.safetensors")])
    assert result.exit_code == 1 and "is not a .safetensors file" in result.output
    with pytest.raises(Exception, match="needs the feature model"):
        Illust2Vec.load(ramp_weights).features([Image.new("RGB", (8, 8))])


def test_preprocessing_is_the_originals():
    grey = picture_tensor(Image.new("L", (4, 4), 51))
    assert grey.shape == (3, 4, 4) and torch.allclose(grey, torch.full((3, 4, 4), 0.2))
    rgba = picture_tensor(Image.new("RGBA", (4, 4), (255, 0, 0, 0)))
    assert torch.equal(rgba[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))  # alpha dropped, not composited
    x = network_input(torch.tensor([1.0, 0.5, 0.0])[None, :, None, None].expand(1, 3, 10, 20))
    assert x.shape == (1, 3, 224, 224)
    expected = torch.tensor([0.0, 127.5, 255.0]) - torch.tensor(MEAN_BGR)  # BGR order
    torch.testing.assert_close(x[0, :, 100, 100], expected.float())


# ---------------------------------------------------------------- a package of its own
def test_the_package_imports_nothing_of_twingan():
    code = ("import sys, illust2vec, illust2vec.cli, illust2vec.convert, illust2vec.weights_file; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'twingan'))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_unreadable_pictures_get_one_line(tmp_path, ramp_weights):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not a picture")
    for name, message in (("empty.png", "empty file"), ("text.png", "not a readable image file")):
        result = CliRunner().invoke(main, ["tag", str(tmp_path / name), "-w", str(ramp_weights)])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_twingan_reports_illust2vec_errors_in_one_line(tmp_path):
    from conftest import write_preset
    from test_training import TINY

    from twingan.cli import main as twingan

    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    preset = write_preset(tmp_path, TINY, {"model": {"character": "illust2vec",
                                                     "illust2vec_weights": str(tmp_path / "junk.safetensors")}},
                          image_size=24)
    result = CliRunner().invoke(twingan, ["train", str(preset), "--run-dir", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 1 and "is not a .safetensors file" in result.output, result.output
    assert "Traceback" not in result.output
