"""The restricted unpickler for NVIDIA's network pickles: what it reads, what it refuses, and how broken files fail.

The pickles are written in each format with tests/nvidia/nvidia_pickling.py, under the genuine global names
(`dnnlib.tflib.network.Network`, `tfutil.Network`, `torch_utils.persistence._reconstruct_persistent_obj`,
`dnnlib.util.EasyDict`, numpy 1's `numpy.core.multiarray`). Their embedded source code creates a marker file if
anyone runs it. The malicious pickles are assembled opcode by opcode.
"""

from __future__ import annotations

import io
import pickle
import re
import subprocess

import numpy as np
import nvidia_pickling as npk
import pytest
import torch

from stylegan_cli.core.errors import SganError, UsageError
from stylegan_cli.nvidia.unpickler import PersistentObject, RefusedError, TFNetwork, load


def _marker_src(marker) -> str:
    return f"open({str(marker)!r}, 'w').write('the embedded source ran')\n"


# --- TensorFlow formats -----------------------------------------------------------------------------------------------

def _tf_networks(marker, version: int, components_type: type[dict] = dict):
    """(G, D, Gs) as StyleGAN (version 3) or StyleGAN2 (version 4) writes them, or Progressive GAN's (version 2)."""
    rng = np.random.default_rng(0)
    src = _marker_src(marker)

    def net(name, variables, components=None):
        return npk.tf_network(name, variables, components, version=version, build_func_name=f"{name}_build",
                              static_kwargs=dict(resolution=16, label_size=np.int64(0)), build_module_src=src,
                              components_type=components_type)

    def variables(*names):
        return {name: rng.standard_normal((3, 2 + i)).astype(np.float32) for i, name in enumerate(names)}

    if version == 2:
        G = net("G", {**variables("4x4/Dense/weight", "ToRGB_lod0/weight"), "lod": np.float32(0)})
        return G, net("D", variables("FromRGB_lod0/weight")), net("Gs", variables("4x4/Dense/weight"))

    def generator(name):
        mapping = net("G_mapping", variables("Dense0/weight", "Dense0/bias"))
        synthesis = net("G_synthesis", {**variables("4x4/Const/const"), "noise0": np.zeros((1, 1, 4, 4), np.float32)})
        dlatent_avg = rng.standard_normal(8).astype(np.float32)
        return net(name, {"dlatent_avg": dlatent_avg}, dict(mapping=mapping, synthesis=synthesis))

    return generator("G"), net("D", variables("4x4/Conv/weight")), generator("Gs")


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("components", ["dict", "EasyDict"])
def test_stylegan_tf_pickles_load_as_networks_with_their_components(tmp_path, protocol, version, components):
    marker = tmp_path / "ran"
    G, D, Gs = _tf_networks(marker, version, components_type={"dict": dict, "EasyDict": npk.EasyDict}[components])
    path = tmp_path / "stylegan.pkl"
    npk.dump_tf(path, G, D, Gs, protocol=protocol, numpy1=False)  # as re-pickled with numpy 2: numpy._core names

    tf_G, tf_D, tf_Gs = load(path)

    assert all(isinstance(net, TFNetwork) for net in (tf_G, tf_D, tf_Gs))
    assert (tf_Gs.name, tf_Gs.version, tf_Gs.build_func_name) == ("Gs", version, "Gs_build")
    assert tf_Gs.static_kwargs == {"resolution": 16, "label_size": 0}
    assert set(tf_Gs.components) == {"mapping", "synthesis"} and tf_Gs.components["mapping"].name == "G_mapping"
    assert list(tf_Gs.variables) == ["dlatent_avg"] and tf_Gs.components["mapping"].components == {}
    params = tf_Gs.params()
    assert list(params) == ["dlatent_avg", "mapping/Dense0/weight", "mapping/Dense0/bias", "synthesis/4x4/Const/const",
                            "synthesis/noise0"]
    expected = dict(Gs.state["variables"])
    for component in ("mapping", "synthesis"):
        expected.update({f"{component}/{n}": v for n, v in Gs.state["components"][component].state["variables"]})
    for name, value in expected.items():
        assert params[name].dtype == np.float32 and params[name].shape == value.shape
        np.testing.assert_array_equal(params[name], value)
    assert not np.array_equal(tf_G.params()["dlatent_avg"], params["dlatent_avg"])
    np.testing.assert_array_equal(tf_D.params()["4x4/Conv/weight"], D.state["variables"][0][1])
    assert not marker.exists()


def test_progressive_gan_tf_pickles_load_without_components(tmp_path):
    marker = tmp_path / "ran"
    G, D, Gs = _tf_networks(marker, version=2)
    path = tmp_path / "pggan.pkl"
    npk.dump_tf(path, G, D, Gs, protocol=2)
    assert b"numpy.core.multiarray" in path.read_bytes()  # as numpy 1 wrote it

    tf_G, tf_D, _ = load(path)

    assert tf_G.version == 2 and tf_G.components == {}
    assert list(tf_G.params()) == ["4x4/Dense/weight", "ToRGB_lod0/weight", "lod"]
    assert tf_G.params()["lod"].shape == () and tf_G.params()["lod"].dtype == np.float32
    np.testing.assert_array_equal(tf_D.variables["FromRGB_lod0/weight"], D.state["variables"][0][1])
    assert not marker.exists()


# --- PyTorch format (StyleGAN2-ADA, StyleGAN3) ------------------------------------------------------------------------
# The network is made of plain torch modules; nvidia_pickling writes each one as NVIDIA's persistence decorator
# reduces theirs, under its class's name.

class Layer(torch.nn.Module):
    """Parameters and buffers, one of each None, and a plain attribute."""

    def __init__(self, cin: int, cout: int, bias: bool = True):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(cout, cin))
        self.bias = torch.nn.Parameter(torch.zeros(cout)) if bias else None
        self.register_buffer("noise_const", torch.randn(4, 4))
        self.register_buffer("unused", None)
        self.activation = "lrelu"


class Mapping(torch.nn.Module):
    """Submodules, and a non-persistent buffer besides a persistent one."""

    def __init__(self):
        super().__init__()
        self.fc0, self.fc1 = Layer(4, 8), Layer(8, 8, bias=False)
        self.register_buffer("w_avg", torch.randn(8))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)


class Generator(torch.nn.Module):
    """Numpy attributes, nested submodules, views of one storage, and a channels_last Parameter."""

    def __init__(self):
        super().__init__()
        self.z_dim, self.img_resolution = 4, 16
        self.in_size = np.broadcast_to(np.asarray(4), [2])  # numpy attributes, as StyleGAN3 keeps them
        self.sampling_rate = np.float64(16.5)
        self.mapping = Mapping()
        self.synthesis = torch.nn.Module()
        self.synthesis.b4 = torch.nn.Module()
        self.synthesis.b4.conv1 = Layer(8, 8)
        base = torch.arange(24, dtype=torch.float32)
        self.register_buffer("transposed", base.reshape(4, 6).t())  # a non-contiguous view
        self.register_buffer("window", base[6:18:2])  # an offset, strided view of the same storage
        weight = torch.randn(8, 8, 3, 3).to(memory_format=torch.channels_last)  # NVIDIA's channels_last layers
        self.synthesis.b4.conv1.weight = torch.nn.Parameter(weight)


def _snapshot() -> dict:
    """A StyleGAN2-ADA snapshot dict, G and G_ema one object, G's init kwargs dnnlib EasyDicts."""
    torch.manual_seed(0)
    G = Generator().eval().requires_grad_(False)
    G._init_args, G._init_kwargs = (), npk.EasyDict(z_dim=4, mapping_kwargs=npk.EasyDict(num_layers=2))
    return dict(G=G, D=Layer(2, 2), G_ema=G, augment_pipe=None, training_set_kwargs=dict(resolution=16))


@pytest.mark.parametrize("protocol", [2, 4])
def test_pytorch_pickles_load_as_persistent_objects_with_every_tensor(tmp_path, protocol):
    marker = tmp_path / "ran"
    snapshot = _snapshot()
    path = tmp_path / "network-snapshot.pkl"
    npk.dump_persistent(path, snapshot, protocol=protocol, module_src=_marker_src(marker), numpy1=False)

    data = load(path)

    assert set(data) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    assert data["augment_pipe"] is None and data["training_set_kwargs"] == {"resolution": 16}
    G = data["G_ema"]
    assert isinstance(G, PersistentObject) and G is data["G"] and G.class_name == "Generator"
    assert G.init_kwargs == {"z_dim": 4, "mapping_kwargs": {"num_layers": 2}} and type(G.init_kwargs) is dict
    assert type(G.init_kwargs["mapping_kwargs"]) is dict and G.init_args == ()
    assert data["D"].init_kwargs == {} and data["D"].attribute("activation") == "lrelu"
    assert G.attribute("z_dim") == 4 and G.attribute("img_resolution") == 16 and G.attribute("c_dim", -1) == -1
    np.testing.assert_array_equal(G.attribute("in_size"), [4, 4])
    assert G.attribute("sampling_rate") == 16.5 and G.attribute("training") is False
    assert "open(" in G.module_src and not marker.exists()

    expected = snapshot["G"].state_dict()
    tensors = G.tensors()
    assert list(tensors) == list(expected)  # "mapping.fc0.weight", "mapping.w_avg", "synthesis.b4.conv1.noise_const"...
    assert {"mapping.fc0.bias", "mapping.w_avg", "synthesis.b4.conv1.noise_const"} <= set(tensors)
    assert "mapping.fc1.bias" not in tensors and "mapping.scratch" not in tensors  # None and non-persistent
    for name, tensor in expected.items():
        assert tensors[name].dtype == tensor.dtype and tensors[name].stride() == tensor.stride(), name
        torch.testing.assert_close(tensors[name], tensor, rtol=0, atol=0)
    assert not tensors["transposed"].is_contiguous() and tensors["window"].storage_offset() == 6
    assert isinstance(tensors["mapping.fc0.weight"], torch.nn.Parameter)
    assert not tensors["mapping.fc0.weight"].requires_grad  # NVIDIA pickles their snapshots with requires_grad_(False)
    assert not isinstance(tensors["mapping.w_avg"], torch.nn.Parameter)


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")
def test_storages_saved_from_a_gpu_load_on_the_cpu(tmp_path):
    blob = io.BytesIO()
    torch.save(torch.arange(6.0).storage(), blob, _use_new_zipfile_serialization=False)  # what storages pickle into
    gpu_blob = blob.getvalue().replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
    assert b"cuda:0" in gpu_blob
    storage = _call(_global("torch.storage", "_load_from_bytes"), _bytes(gpu_blob))
    hooks = _call(_global("collections", "OrderedDict"))
    tensor = _call(_global("torch._utils", "_rebuild_tensor_v2"), storage, _value(2), _value((2, 2)), _value((1, 2)),
                   _value(False), hooks)
    parameter = _call(_global("torch._utils", "_rebuild_parameter_with_state"), tensor, _value(True), hooks, _value({}))
    path = tmp_path / "gpu.pkl"
    path.write_bytes(_protocol2(b"(" + parameter + b"t"))

    (loaded,) = load(path)

    assert isinstance(loaded, torch.nn.Parameter) and loaded.requires_grad and loaded.device.type == "cpu"
    torch.testing.assert_close(loaded.detach(), torch.tensor([[2.0, 4.0], [3.0, 5.0]]))


# --- What it refuses -------------------------------------------------------------------------------------------------

def _global(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def _text(text: str) -> bytes:
    data = text.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


def _bytes(data: bytes) -> bytes:
    return b"B" + len(data).to_bytes(4, "little") + data


def _value(value) -> bytes:
    """A plain value (numbers, tuples, dicts) as opcodes to splice into a hand-made pickle."""
    return pickle.dumps(value, protocol=2)[2:-1]


def _call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"


def _protocol2(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


@pytest.mark.parametrize(("func", "global_name"), [
    (_global("os", "system"), "os.system"),
    (_global("posix", "system"), "posix.system"),
    (_global("builtins", "eval"), "builtins.eval"),
    (_global("builtins", "exec"), "builtins.exec"),
    (_global("__builtin__", "eval"), "builtins.eval"),
])
def test_a_pickle_that_runs_a_shell_command_is_refused_naming_the_global(tmp_path, func, global_name):
    marker = tmp_path / "pwned"
    command = f"touch {marker}" if "system" in global_name else f"__import__('os').system('touch {marker}')"
    path = tmp_path / "evil.pkl"
    path.write_bytes(_protocol2(_call(func, _text(command))))

    with pytest.raises(RefusedError, match=f"`{re.escape(global_name)}`") as error:
        load(path)

    assert str(path) in str(error.value) and "nothing from the file was run" in str(error.value)
    assert not marker.exists()


def test_a_command_hidden_inside_a_genuine_network_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return subprocess.Popen, (["touch", str(marker)],)

    G, D, Gs = _tf_networks(tmp_path / "ran", version=4)
    G.state["static_kwargs"]["payload"] = Payload()
    path = tmp_path / "evil.pkl"
    npk.dump_tf(path, G, D, Gs, protocol=4)

    with pytest.raises(RefusedError, match="`subprocess.Popen`"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize(("cls", "named"), [
    (_global("collections", "OrderedDict"), "collections.OrderedDict"),
    (_global("subprocess", "Popen"), "subprocess.Popen"),
])
def test_copyreg_reconstructor_is_refused_for_any_class_but_the_stand_ins(tmp_path, cls, named):
    path = tmp_path / "evil.pkl"
    path.write_bytes(_protocol2(_call(_global("copy_reg", "_reconstructor"), cls, _global("builtins", "object"), b"N")))

    with pytest.raises(RefusedError, match=f"`{re.escape(named)}`"):
        load(path)


def test_copyreg_reconstructor_builds_the_stand_ins(tmp_path):
    path = tmp_path / "easydict.pkl"
    reconstructor, easydict = _global("copyreg", "_reconstructor"), _global("dnnlib.util", "EasyDict")
    easydict = _call(reconstructor, easydict, _global("builtins", "dict"), b"}")  # an empty dict as the state
    path.write_bytes(_protocol2(b"(" + easydict + b"t"))

    (data,) = load(path)

    assert data == {} and type(data).__name__ == "EasyDict"


def test_a_storage_blob_that_runs_a_command_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    blob = _protocol2(_call(_global("posix", "system"), _text(f"touch {marker}")))
    path = tmp_path / "evil.pkl"
    path.write_bytes(_protocol2(_call(_global("torch.storage", "_load_from_bytes"), _bytes(blob))))

    with pytest.raises(RefusedError, match="tensor storage"):
        load(path)
    assert not marker.exists()


def test_numpy_arrays_of_object_dtype_and_forged_dtypes_are_refused(tmp_path):
    path = tmp_path / "objects.pkl"
    path.write_bytes(pickle.dumps({"a": np.array([1, None], dtype=object)}, protocol=2))
    with pytest.raises(RefusedError, match="object dtype"):
        load(path)

    class Pickler(pickle.Pickler):  # a float64 dtype whose state claims that it holds Python objects
        def reducer_override(self, obj):
            if isinstance(obj, np.dtype):
                return np.dtype, ("f8", False, True), (3, "<", None, None, None, -1, -1, 63)
            return NotImplemented

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({"a": np.zeros(2)})
    path.write_bytes(buffer.getvalue())
    with pytest.raises(RefusedError, match="change the state of numpy dtype"):
        load(path)


def test_persistent_objects_other_than_classes_are_refused(tmp_path):
    class Persistent:
        def __reduce__(self):
            return npk.persistent_reduction(dict(type="function", version=6, module_src="", class_name="f", state={}))

    path = tmp_path / "function.pkl"
    path.write_bytes(npk.dumps({"G": Persistent()}, protocol=2))
    with pytest.raises(RefusedError, match="'function'"):
        load(path)


# --- Broken files -----------------------------------------------------------------------------------------------------

def _one_sentence(error: pytest.ExceptionInfo, path) -> str:
    message = str(error.value)
    assert str(path) in message and re.fullmatch(r"[^\n]+\.", message), message
    assert ". " not in message.replace(str(path), "PATH"), message  # no second sentence
    return message


def test_a_missing_path_or_a_directory_is_a_usage_error(tmp_path):
    for path in (tmp_path / "nothing.pkl", tmp_path):
        with pytest.raises(UsageError) as error:
            load(path)
        assert error.value.exit_code == 2
        _one_sentence(error, path)


@pytest.mark.parametrize(("content", "says"), [
    (b"", "empty"),
    (np.random.default_rng(1).integers(0, 0x80, 4096, dtype=np.uint8).tobytes(), "not a pickle"),
])
def test_empty_files_and_random_bytes_are_not_pickles(tmp_path, content, says):
    path = tmp_path / "network.pkl"
    path.write_bytes(content)
    with pytest.raises(SganError) as error:
        load(path)
    assert type(error.value) is SganError and error.value.exit_code == 1
    assert says in _one_sentence(error, path)


def test_a_pytorch_zip_checkpoint_is_recognised(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"G": torch.zeros(3)}, path)
    with pytest.raises(SganError) as error:
        load(path)
    assert type(error.value) is SganError
    assert "looks like a PyTorch checkpoint or zip archive" in _one_sentence(error, path)


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("kind", ["tf", "torch"])
def test_a_pickle_cut_anywhere_says_it_is_truncated(tmp_path, kind, protocol):
    if kind == "tf":
        data = npk.dumps(_tf_networks(tmp_path / "ran", version=4), protocol=protocol)
    else:
        data = npk.dumps(_snapshot(), protocol=protocol, module_src="pass")
    path = tmp_path / "network.pkl"
    for cut in sorted({1, 2, 3, 4, 5, 8, 13, len(data) - 1, len(data) - 2, *range(20, len(data), len(data) // 37)}):
        path.write_bytes(data[:cut])
        with pytest.raises(SganError) as error:
            load(path)
        assert type(error.value) is SganError, (cut, error.value)
        assert "truncated" in _one_sentence(error, path), cut
