"""Sanity tests of the NVIDIA-format test files (nvidia_files, nvidia_pickling) and the independent forward passes
(oracles): the pickles carry NVIDIA's names, read back as a plain unpickler reads them, and round-trip through the
product's reader (stylegan_cli.nvidia.unpickler); names and shapes are NVIDIA's; the TF StyleGAN2
forward pass equals the PyTorch one on weights converted by legacy.py's conventions; the kernel-flip and
fused-layer identities hold where the mathematics says they do (and not where it does not); every variable
changes the output."""

from __future__ import annotations

import functools
import io
import pickle
import pickletools
import sys

import numpy as np
import nvidia_files as nf
import nvidia_pickling as npk
import oracles
import pytest
import torch

from stylegan_cli.nvidia.unpickler import EasyDict, PersistentObject, load

# ----------------------------------------------------------------------------------------------------------------
# Helpers.


def _globals(data: bytes) -> set[str]:
    """The "module name" pairs a pickle stream imports (GLOBAL, and STACK_GLOBAL on strings pushed or memoised)."""
    found: set[str] = set()
    pushed: list[object] = []  # the value each pushing opcode left on top (None for anything but a string)
    memo: dict[int, object] = {}
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            found.add(arg.replace("\n", " "))
        elif op.name == "STACK_GLOBAL":
            found.add(f"{pushed[-2]} {pushed[-1]}")
            pushed.append(None)
        elif op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = pushed[-1] if pushed else None
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(int(arg)))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            pushed.append(arg)
        else:
            pushed.append(None)
    return found


class _Plain:
    """Any NVIDIA class, read as legacy.py reads TF networks: the pickled state lands in __dict__."""


class _PlainDict(dict):
    pass


class _ForeignUnpickler(pickle.Unpickler):
    """Reads a file without the stand-ins, as a loader of the real files does: NVIDIA's names mapped to plain
    classes, everything else (numpy's legacy names included) resolved as the installed packages resolve it."""

    def find_class(self, module: str, name: str):
        if (module, name) in (("tfutil", "Network"), ("dnnlib.tflib.network", "Network")):
            return _Plain
        if (module, name) == ("dnnlib.util", "EasyDict"):
            return _PlainDict
        if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return dict
        return super().find_class(module, name)


def _foreign_load(path) -> object:
    return _ForeignUnpickler(io.BytesIO(path.read_bytes())).load()


def _submodule(obj: PersistentObject, dotted: str) -> PersistentObject:
    """The persistent submodule at a state_dict-style path ("synthesis.b8.conv0")."""
    for name in dotted.split("."):
        obj = obj.attribute("_modules")[name]
    return obj


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-7) -> bool:
    return bool((a - b).abs().max() <= rtol * b.abs().max())


def _rot180(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w[::-1, ::-1])


def _z(n: int, dim: int, seed: int = 7) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, dim)))


def _images(n: int, res: int, seed: int = 8) -> torch.Tensor:
    """Smooth random images (white noise would be averaged away by the discriminators' downsampling)."""
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((n, 3, res // 4, res // 4)))
    return torch.nn.functional.interpolate(x, size=(res, res), mode="bilinear", align_corners=False)


# ----------------------------------------------------------------------------------------------------------------
# Pickles.


@pytest.mark.parametrize("kind", ["pggan", "stylegan", "stylegan2_tf"])
def test_tf_pickles_round_trip(tmp_path, kind):
    path = tmp_path / f"{kind}.pkl"
    write = {"pggan": nf.write_pggan, "stylegan": nf.write_stylegan, "stylegan2_tf": nf.write_stylegan2_tf}[kind]
    stubbed = ("tfutil", "dnnlib", "dnnlib.tflib.network", "torch_utils", "numpy.core.multiarray")
    before = {name: sys.modules.get(name) for name in stubbed}
    data = write(path, 16, fmap_base=256, fmap_max=16, seed=1)
    assert {name: sys.modules.get(name) for name in stubbed} == before  # the stand-ins are gone again
    names = _globals(path.read_bytes())
    module = "tfutil" if kind == "pggan" else "dnnlib.tflib.network"
    assert f"{module} Network" in names
    assert "numpy.core.multiarray _reconstruct" in names and "numpy.core.multiarray scalar" in names
    assert not any(n.startswith(("numpy._core", "nvidia_", "oracles")) for n in names), names

    version = {"pggan": 2, "stylegan": 3, "stylegan2_tf": 4}[kind]
    foreign = _foreign_load(path)
    assert [net.name for net in foreign] == ["G", "D", "Gs"]
    expected_keys = ["version", "name", "static_kwargs"] + (["components"] if version > 2 else [])
    assert list(vars(foreign[0])) == expected_keys + ["build_module_src", "build_func_name", "variables"]
    for net in foreign:  # 0-d variables are np.float32 scalars, as TensorFlow's Session.run returned them
        assert all(isinstance(v, np.ndarray) == (np.ndim(v) > 0) for _, v in net.variables)
    assert all(np.array_equal(a, data["D"][n]) for n, a in foreign[1].variables)

    G, D, Gs = load(path)
    assert [net.name for net in (G, D, Gs)] == ["G", "D", "Gs"]
    assert all(net.version == version for net in (G, D, Gs))
    assert G.static_kwargs["resolution"] == 16 and G.static_kwargs["fmap_max"] == 16
    for key, net in (("G", G), ("D", D), ("Gs", Gs)):
        params = net.params()
        assert list(params) == list(data[key])
        for name, value in params.items():
            assert value.dtype == np.float32 and np.array_equal(value, data[key][name]), name
    if version > 2:
        assert list(G.components) == ["synthesis", "mapping"]
        assert G.components["synthesis"].name == "G_synthesis" and G.components["mapping"].name == "G_mapping"
        assert G.components["mapping"].static_kwargs["dlatent_broadcast"] == 6
        assert D.components == {}


@pytest.mark.parametrize("flavour", nf.FLAVOURS)
def test_persistent_pickle_round_trip(tmp_path, flavour):
    path = tmp_path / "network-snapshot.pkl"
    nets = nf.write_stylegan2_pt(path, 16, channel_base=256, channel_max=16, mapping_layers=2, z_dim=12, w_dim=10,
                                 flavour=flavour)
    names = _globals(path.read_bytes())
    for expected in ("torch_utils.persistence _reconstruct_persistent_obj", "dnnlib.util EasyDict",
                     "torch._utils _rebuild_parameter", "torch._utils _rebuild_tensor_v2",
                     "numpy.core.multiarray scalar", "collections OrderedDict"):
        assert expected in names
    assert not any(n.startswith(("numpy._core", "nvidia_", "oracles")) for n in names), names
    foreign = _foreign_load(path)
    assert foreign["G"]["class_name"] == "Generator" and foreign["G"]["version"] == 6
    assert foreign["G"]["type"] == "class" and "class Generator" in foreign["G"]["module_src"]
    assert isinstance(foreign["G"]["state"]["_init_kwargs"]["mapping_kwargs"], _PlainDict)

    data = load(path)
    assert list(data) == ["training_set_kwargs", "G", "D", "G_ema", "augment_pipe"]
    assert data["augment_pipe"] is None and data["training_set_kwargs"]["resolution"] == 16
    G = data["G_ema"]
    assert isinstance(G, PersistentObject) and G.class_name == "Generator"
    assert G.version == 6 and "class Generator" in G.module_src
    assert _submodule(G, "synthesis").class_name == "SynthesisNetwork"
    layer = _submodule(G, "synthesis.b8.conv0")
    assert layer.class_name == "SynthesisLayer" and layer.attribute("up") == 2
    assert _submodule(layer, "affine").class_name == "FullyConnectedLayer"
    assert type(_submodule(layer, "affine").attribute("weight_gain")) is np.float64
    kwargs = G.attribute("_init_kwargs")  # as written: dnnlib's EasyDicts where NVIDIA's train.py makes them
    if flavour == "ada":
        assert type(kwargs["synthesis_kwargs"]) is EasyDict and kwargs["synthesis_kwargs"].channel_max == 16
        assert "channel_base" not in kwargs
    else:
        assert kwargs["channel_base"] == 256 and "synthesis_kwargs" not in kwargs
    assert type(kwargs["mapping_kwargs"]) is EasyDict and kwargs["mapping_kwargs"]["num_layers"] == 2
    assert _submodule(data["D"], "b4.mbstd").class_name == "MinibatchStdLayer"
    for key in ("G", "D", "G_ema"):
        loaded = data[key].tensors()
        original = nets[key].state_dict()
        assert list(loaded) == list(original)
        assert all(torch.equal(loaded[k], original[k]) for k in original)
    fc0 = _submodule(G, "mapping.fc0")
    assert isinstance(fc0.tensors()["weight"], torch.nn.Parameter)
    assert not fc0.tensors()["weight"].requires_grad and fc0.attribute("training") is False


def test_stubs_restore_sys_modules():
    sentinel = object()
    sys.modules["tfutil"] = sentinel
    try:
        with npk.nvidia_stubs():
            assert sys.modules["tfutil"] is not sentinel and "dnnlib.tflib.network" in sys.modules
        assert sys.modules["tfutil"] is sentinel and "dnnlib.tflib.network" not in sys.modules
    finally:
        del sys.modules["tfutil"]


# ----------------------------------------------------------------------------------------------------------------
# Names and shapes as NVIDIA's code makes them.


def test_pggan_names_and_shapes():
    data = nf.pggan(8)  # published fmap_base 8192, fmap_max 512, latent 512
    G, D = data["G"], data["D"]
    assert G["4x4/Dense/weight"].shape == (512, 8192) and G["4x4/Dense/bias"].shape == (512,)
    assert G["8x8/Conv0_up/weight"].shape == (3, 3, 512, 512) and G["ToRGB_lod1/weight"].shape == (1, 1, 512, 3)
    assert list(G)[:7] == ["lod", "4x4/Dense/weight", "4x4/Dense/bias", "4x4/Conv/weight", "4x4/Conv/bias",
                           "ToRGB_lod1/weight", "ToRGB_lod1/bias"]
    assert D["4x4/Conv/weight"].shape == (3, 3, 513, 512) and D["4x4/Dense0/weight"].shape == (8192, 512)
    assert D["4x4/Dense1/weight"].shape == (512, 1) and "FromRGB_lod1/weight" in D and "8x8/Conv1_down/bias" in D

    small = nf.pggan(32, fmap_base=64, fmap_max=16, latent_size=16)
    assert small["G"]["32x32/Conv0_up/weight"].shape == (3, 3, 4, 8)  # [k, k, fmaps_out, fmaps_in]
    separate = nf.pggan(32, fmap_base=64, fmap_max=16, latent_size=16, fused=False)
    assert separate["G"]["32x32/Conv0/weight"].shape == (3, 3, 8, 4)  # [k, k, in, out]
    assert "32x32/Conv1/weight" in separate["D"] and "32x32/Conv1_down/weight" not in separate["D"]
    assert float(small["G"]["lod"]) == 0.0 and small["G"]["lod"].shape == ()
    with pytest.raises(ValueError, match="no feature maps"):  # int(fmap_base / 2**stage) = 0 at 128x128
        nf.pggan(128, fmap_base=32, fmap_max=16)


def test_stylegan_names_and_shapes():
    data = nf.stylegan(256)
    G, D = data["G"], data["G"]
    assert G["synthesis/4x4/Const/const"].shape == (1, 512, 4, 4)
    assert G["synthesis/noise0"].shape == (1, 1, 4, 4) and G["synthesis/noise13"].shape == (1, 1, 256, 256)
    assert "synthesis/noise14" not in G
    assert G["synthesis/4x4/Const/StyleMod/weight"].shape == (512, 1024)
    assert G["synthesis/256x256/Conv0_up/weight"].shape == (3, 3, 128, 64)  # [k, k, in, out], fused or not
    assert G["synthesis/64x64/Conv0_up/Noise/weight"].shape == (256,)
    assert G["mapping/Dense0/weight"].shape == (512, 512) and G["dlatent_avg"].shape == (512,)
    assert G["synthesis/ToRGB_lod0/weight"].shape == (1, 1, 64, 3)
    D = data["D"]
    assert D["FromRGB_lod0/weight"].shape == (1, 1, 3, 64) and D["256x256/Conv1_down/weight"].shape == (3, 3, 64, 128)
    assert D["4x4/Dense1/weight"].shape == (512, 1)
    for key in ("lod", "dlatent_avg", "synthesis/noise5"):  # non-trainables: Gs's equal G's
        assert np.array_equal(data["G"][key], data["Gs"][key])
    assert not np.array_equal(data["G"]["synthesis/4x4/Conv/weight"], data["Gs"]["synthesis/4x4/Conv/weight"])
    # fused_scale='auto': fused up-convolutions produce >= 128 pixels, fused down-convolutions read >= 128.
    assert [r for r in range(3, 11) if nf.stylegan_fused_up(r)] == [7, 8, 9, 10]
    assert [r for r in range(3, 11) if nf.stylegan_fused_down(r)] == [7, 8, 9, 10]
    assert nf.stylegan(64, fmap_max=16)["G"]["mapping/Dense7/weight"].shape == (512, 512)


def test_stylegan2_names_and_shapes():
    data = nf.stylegan2_tf(64, z_dim=32, w_dim=48, mapping_layers=2)
    G, D = data["G"], data["D"]
    assert G["mapping/Dense0/weight"].shape == (32, 512) and G["mapping/Dense1/weight"].shape == (512, 48)
    assert G["synthesis/noise0"].shape == (1, 1, 4, 4) and G["synthesis/noise8"].shape == (1, 1, 64, 64)
    assert "synthesis/noise9" not in G  # ToRGB layers take no noise: num_layers - 1 maps
    assert G["synthesis/4x4/Conv/mod_weight"].shape == (48, 512) and G["synthesis/4x4/Conv/noise_strength"].shape == ()
    assert G["synthesis/64x64/Conv0_up/weight"].shape == (3, 3, 512, 512)
    assert G["synthesis/64x64/ToRGB/mod_bias"].shape == (512,) and G["synthesis/64x64/ToRGB/bias"].shape == (3,)
    assert "synthesis/lod" not in G and "lod" in G
    assert D["64x64/FromRGB/weight"].shape == (1, 1, 3, 512) and "32x32/FromRGB/weight" not in D
    assert D["64x64/Skip/weight"].shape == (1, 1, 512, 512) and "64x64/Skip/bias" not in D
    assert D["Output/weight"].shape == (512, 1)

    nets = nf.stylegan2_pt(1024, channel_max=32, channel_base=32768, mapping_layers=1, z_dim=8, w_dim=8)
    sd = nets["G_ema"].state_dict()
    assert sd["synthesis.b1024.conv1.weight"].shape == (32, 32, 3, 3) and sd["synthesis.b4.const"].shape == (32, 4, 4)
    assert sd["synthesis.b1024.conv1.noise_const"].shape == (1024, 1024)
    assert sd["synthesis.b8.conv0.resample_filter"].shape == (4, 4)
    assert nets["G_ema"].num_ws == 18 and nets["G_ema"].synthesis.b1024.use_fp16
    assert not nets["G_ema"].synthesis.b64.use_fp16
    assert "b1024.fromrgb.weight" in nets["D"].state_dict() and "b512.fromrgb.weight" not in nets["D"].state_dict()
    assert nets["D"].b4.fc.weight.shape == (32, 32 * 16)


def test_conditional_stylegan2_names_and_shapes(tmp_path):
    """StyleGAN2-ADA's conditional layouts: TF G_mapping's LabelEmbed (latent_size wide) before Dense0, which reads
    z and the embedding; D_main's LabelEmbed and Mapping{i} (nf(0) wide, created first) and a cmap-wide Output;
    PyTorch's mapping.embed (w_dim wide), and D's own MappingNetwork without w_avg, b4.out giving cmap_dim."""
    path = tmp_path / "conditional-tf.pkl"
    data = nf.write_stylegan2_tf(path, 16, fmap_base=64, fmap_max=16, z_dim=20, w_dim=24, mapping_layers=2, c_dim=10,
                                 d_mapping_layers=2)
    G, D = data["Gs"], data["D"]
    assert G["mapping/LabelEmbed/weight"].shape == (10, 20) and G["mapping/LabelEmbed/bias"].shape == (20,)
    assert G["mapping/Dense0/weight"].shape == (40, 512) and G["mapping/Dense1/weight"].shape == (512, 24)
    assert list(D)[:4] == ["LabelEmbed/weight", "LabelEmbed/bias", "Mapping0/weight", "Mapping0/bias"]
    assert D["LabelEmbed/weight"].shape == (10, 16) and D["Mapping1/weight"].shape == (16, 16)
    assert D["Output/weight"].shape == (16, 16) and D["Output/bias"].shape == (16,)
    G_net, D_net, Gs_net = load(path)
    assert Gs_net.static_kwargs["label_size"] == 10 and D_net.static_kwargs["mapping_layers"] == 2
    assert (G_net.build_func_name, D_net.build_func_name) == ("G_main", "D_main")
    assert Gs_net.components["synthesis"].build_func_name == "G_synthesis"
    assert list(Gs_net.components["mapping"].params())[:2] == ["LabelEmbed/weight", "LabelEmbed/bias"]
    assert "mapping_lrmul" not in D_net.static_kwargs  # D_main's default, 0.1, is not stored
    assert nf.stylegan2_tf(16, fmap_base=64, fmap_max=16, z_dim=8, w_dim=8, mapping_layers=1, c_dim=3,
                           label_fmaps=6)["Gs"]["mapping/Dense0/weight"].shape == (14, 8)

    path = tmp_path / "conditional-pt.pkl"
    nets = nf.write_stylegan2_pt(path, 16, channel_base=256, channel_max=16, mapping_layers=2, z_dim=12, w_dim=10,
                                 c_dim=5)
    g, d = nets["G_ema"].state_dict(), nets["D"].state_dict()
    assert g["mapping.embed.weight"].shape == (10, 5) and g["mapping.fc0.weight"].shape == (10, 22)
    mapping = [k for k, _ in nets["G_ema"].mapping.named_parameters()]
    assert mapping[:3] == ["embed.weight", "embed.bias", "fc0.weight"] and "mapping.w_avg" in g
    assert d["mapping.embed.weight"].shape == (16, 5) and d["mapping.fc7.weight"].shape == (16, 16)
    assert "mapping.fc8.weight" not in d and "mapping.w_avg" not in d and d["b4.out.weight"].shape == (16, 16)
    assert nets["D"].mapping.num_ws is None and nets["D"].b4.cmap_dim == 16
    loaded = load(path)
    assert loaded["training_set_kwargs"]["use_labels"] and loaded["D"].attribute("c_dim") == 5
    for key in ("G_ema", "D"):
        tensors, original = loaded[key].tensors(), nets[key].state_dict()
        assert list(tensors) == list(original) and all(torch.equal(tensors[k], original[k]) for k in original)
    other = nf.stylegan2_pt(16, channel_base=256, channel_max=16, mapping_layers=1, z_dim=12, w_dim=10, c_dim=5,
                            embed_features=4, d_mapping_kwargs={"num_layers": 0, "lr_multiplier": 0.1}, cmap_dim=6)
    g, d = other["G_ema"].state_dict(), other["D"].state_dict()
    assert g["mapping.embed.weight"].shape == (4, 5) and g["mapping.fc0.weight"].shape == (10, 16)
    assert d["mapping.embed.weight"].shape == (6, 5) and "mapping.fc0.weight" not in d
    assert d["b4.out.weight"].shape == (6, 16)


# ----------------------------------------------------------------------------------------------------------------
# TF StyleGAN2 == PyTorch StyleGAN2 on weights converted with legacy.py's conventions.


def _tf_to_pt_generator(p: dict[str, np.ndarray], flip_up: bool = True, mod_bias_one: bool = True) -> dict:
    """G_main's variables under StyleGAN2-ADA's names (legacy.py's conventions): dense weights transposed, conv
    kernels [k, k, in, out] -> [out, in, k, k], up-convolution kernels rotated by 180 degrees, mod biases + 1,
    the constant and noise images without their leading dimensions."""
    out: dict[str, torch.Tensor] = {"mapping.w_avg": p["dlatent_avg"]}
    t = torch.from_numpy
    for name, value in p.items():
        if name.startswith("mapping/Dense"):
            idx, kind = name[len("mapping/Dense"):].split("/")
            out[f"mapping.fc{idx}.{kind}"] = value.T if kind == "weight" else value
        elif name.startswith("mapping/LabelEmbed/"):
            kind = name.split("/")[-1]
            out[f"mapping.embed.{kind}"] = value.T if kind == "weight" else value
    sizes = [int(n.split("/")[1].split("x")[0]) for n in p if n.startswith("synthesis/") and "x" in n.split("/")[1]]
    log2 = max(sizes).bit_length() - 1
    out["synthesis.b4.const"] = p["synthesis/4x4/Const/const"][0]
    for res in range(2, log2 + 1):
        r, s = 2**res, f"synthesis/{2**res}x{2**res}"
        layers = [("conv1", "Conv", 0)] if res == 2 else [("conv0", "Conv0_up", 2 * res - 5), ("conv1", "Conv1",
                                                                                               2 * res - 4)]
        for pt, tf_name, noise in layers:
            w = p[f"{s}/{tf_name}/weight"]
            if tf_name == "Conv0_up" and flip_up:
                w = _rot180(w)
            out[f"synthesis.b{r}.{pt}.weight"] = w.transpose(3, 2, 0, 1)
            out[f"synthesis.b{r}.{pt}.bias"] = p[f"{s}/{tf_name}/bias"]
            out[f"synthesis.b{r}.{pt}.noise_const"] = p[f"synthesis/noise{noise}"][0, 0]
            out[f"synthesis.b{r}.{pt}.noise_strength"] = p[f"{s}/{tf_name}/noise_strength"]
            out[f"synthesis.b{r}.{pt}.affine.weight"] = p[f"{s}/{tf_name}/mod_weight"].T
            out[f"synthesis.b{r}.{pt}.affine.bias"] = p[f"{s}/{tf_name}/mod_bias"] + (1 if mod_bias_one else 0)
        out[f"synthesis.b{r}.torgb.weight"] = p[f"{s}/ToRGB/weight"].transpose(3, 2, 0, 1)
        out[f"synthesis.b{r}.torgb.bias"] = p[f"{s}/ToRGB/bias"]
        out[f"synthesis.b{r}.torgb.affine.weight"] = p[f"{s}/ToRGB/mod_weight"].T
        out[f"synthesis.b{r}.torgb.affine.bias"] = p[f"{s}/ToRGB/mod_bias"] + (1 if mod_bias_one else 0)
    return {k: t(np.require(v, np.float32, "C")) for k, v in out.items()}


def _tf_to_pt_discriminator(p: dict[str, np.ndarray]) -> dict:
    """D_stylegan2's / D_main's variables under StyleGAN2-ADA's names (legacy.py's conventions; no kernel is
    rotated; the label mapping's LabelEmbed and Mapping{i} become mapping.embed and mapping.fc{i})."""
    layers = {"FromRGB": "fromrgb", "Conv0": "conv0", "Conv1_down": "conv1", "Skip": "skip", "Conv": "conv",
              "Dense0": "fc", "Output": "out", "LabelEmbed": "embed"}
    out = {}
    for name, value in p.items():
        *scope, layer, kind = name.split("/")
        block = f"b{scope[0].split('x')[0]}" if scope else "b4"
        if layer == "LabelEmbed" or layer.startswith("Mapping"):
            block, layer = "mapping", layer.replace("Mapping", "fc")
        if value.ndim == 4:
            value = value.transpose(3, 2, 0, 1)
        elif value.ndim == 2:
            value = value.T
        out[f"{block}.{layers.get(layer, layer)}.{kind}"] = value
    return {k: torch.from_numpy(np.require(v, np.float32, "C")) for k, v in out.items()}


def test_stylegan2_tf_equals_pytorch_after_legacy_conversion():
    data = nf.stylegan2_tf(32, fmap_base=512, fmap_max=32, mapping_layers=3, z_dim=24, w_dim=32, mapping_fmaps=32,
                           seed=2)
    Gs = data["Gs"]
    converted = _tf_to_pt_generator(Gs)
    reference = nf.stylegan2_pt(32, channel_base=1024, channel_max=32, mapping_layers=3, z_dim=24, w_dim=32)
    expected = {k: tuple(v.shape) for k, v in reference["G_ema"].state_dict().items() if "resample_filter" not in k}
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected

    z = _z(4, 24)
    for psi, cutoff in ((1.0, None), (0.6, None), (0.5, 4)):
        tf_img = oracles.stylegan2_tf_G(Gs, z, psi, cutoff)
        pt_img = oracles.stylegan2_pt_G(converted, z, psi, cutoff)
        assert tf_img.shape == (4, 3, 32, 32) and tf_img.dtype == torch.float64
        assert _close(pt_img, tf_img, 1e-6)
    assert not _close(oracles.stylegan2_tf_G(Gs, z, 0.6, 4), oracles.stylegan2_tf_G(Gs, z, 0.6, None), 1e-3)
    # The up-convolution kernels' rotation and the mod biases' + 1 are not optional.
    assert not _close(oracles.stylegan2_pt_G(_tf_to_pt_generator(Gs, flip_up=False), z), tf_img, 1e-3)
    assert not _close(oracles.stylegan2_pt_G(_tf_to_pt_generator(Gs, mod_bias_one=False), z), tf_img, 1e-3)

    images = _images(8, 32)
    converted_d = _tf_to_pt_discriminator(data["D"])
    expected = {k: tuple(v.shape) for k, v in reference["D"].state_dict().items() if "resample_filter" not in k}
    assert {k: tuple(v.shape) for k, v in converted_d.items()} == expected
    tf_scores = oracles.stylegan2_tf_D(data["D"], images)
    pt_scores = oracles.stylegan2_pt_D(converted_d, images)
    assert tf_scores.shape == (8,) and _close(pt_scores, tf_scores, 1e-9)
    assert tf_scores.std() > 1e-3 * tf_scores.abs().max()


def _one_hot(classes: list[int], c_dim: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(classes), c_dim).double()


def test_conditional_stylegan2_tf_equals_pytorch_after_legacy_conversion():
    """StyleGAN2-ADA's conditional TF networks (G_mapping's LabelEmbed, D_main's label mapping at its lrmul 0.1) compute
    what its PyTorch networks compute on the weights legacy.py converts; the labels change both outputs."""
    data = nf.stylegan2_tf(16, fmap_base=128, fmap_max=16, mapping_layers=2, z_dim=24, w_dim=32, mapping_fmaps=32,
                           c_dim=6, d_mapping_layers=2, seed=4)
    reference = nf.stylegan2_pt(16, channel_base=256, channel_max=16, mapping_layers=2, z_dim=24, w_dim=32, c_dim=6,
                                embed_features=24, d_mapping_kwargs={"num_layers": 2, "lr_multiplier": 0.1})
    converted, converted_d = _tf_to_pt_generator(data["Gs"]), _tf_to_pt_discriminator(data["D"])
    for net, ours in (("G_ema", converted), ("D", converted_d)):
        expected = {k: tuple(v.shape) for k, v in reference[net].state_dict().items() if "resample_filter" not in k}
        assert {k: tuple(v.shape) for k, v in ours.items()} == expected, net
    z, c = _z(4, 24), _one_hot([0, 3, 5, 3], 6)
    tf_img = oracles.stylegan2_tf_G(data["Gs"], z, 0.7, 2, c=c)
    assert _close(oracles.stylegan2_pt_G(converted, z, 0.7, 2, c=c), tf_img, 1e-6)
    assert not _close(oracles.stylegan2_tf_G(data["Gs"], z, 0.7, 2, c=_one_hot([1, 3, 5, 3], 6))[:1], tf_img[:1], 1e-3)
    images, c8 = _images(8, 16), _one_hot([0, 1, 2, 3, 4, 5, 0, 1], 6)
    tf_scores = oracles.stylegan2_tf_D(data["D"], images, c=c8)
    assert tf_scores.shape == (8,) and _close(oracles.stylegan2_pt_D(converted_d, images, c=c8, mapping_lr=0.1),
                                              tf_scores, 1e-9)
    assert not _close(oracles.stylegan2_tf_D(data["D"], images, c=c8.roll(1, 0)), tf_scores, 1e-3)
    with pytest.raises(ValueError, match="needs labels"):
        oracles.stylegan2_tf_G(data["Gs"], z)


def test_stylegan2_pt_oracle_reads_the_written_modules():
    nets = nf.stylegan2_pt(16, channel_base=256, channel_max=16, mapping_layers=2, z_dim=12, w_dim=10)
    img = oracles.stylegan2_pt_G(nets["G_ema"].state_dict(), _z(2, 12), 0.7, 2)
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
    # The published networks' conv_clamp (256) never binds here.
    clamped = oracles.stylegan2_pt_G(nets["G_ema"].state_dict(), _z(2, 12), 0.7, 2, conv_clamp=256)
    assert torch.equal(img, clamped)
    scores = oracles.stylegan2_pt_D(nets["D"].state_dict(), _images(4, 16))
    assert scores.shape == (4,)


# ----------------------------------------------------------------------------------------------------------------
# Kernel flips and fused layers: what the mathematics says.


def test_tf_conv2d_transpose_is_the_adjoint_of_conv2d():
    rng = np.random.default_rng(3)
    w = torch.from_numpy(rng.standard_normal((4, 4, 5, 3)))  # conv2d [k, k, in=5, out=3]; transpose [k, k, 5, 3]
    y = torch.from_numpy(rng.standard_normal((2, 5, 8, 8)))
    x = torch.from_numpy(rng.standard_normal((2, 3, 4, 4)))
    for padding in ("SAME", "VALID"):
        conv = oracles.tf_conv2d(y, w, stride=2, padding=padding)
        x_ = x if padding == "SAME" else torch.from_numpy(rng.standard_normal(conv.shape))
        back = oracles.tf_conv2d_transpose(x_, w, (8, 8), 2, padding)
        assert torch.allclose((conv * x_).sum(), (y * back).sum())


def test_fused_upscale_is_upscale_then_conv_with_the_rotated_kernel():
    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.standard_normal((2, 3, 5, 5)))
    w = rng.standard_normal((3, 3, 4, 3))  # [k, k, out, in] as upscale2d_conv2d takes it
    fused = oracles.fused_upscale_conv(x, torch.from_numpy(w))
    separate = oracles.tf_conv2d(oracles.nearest_upscale(x), torch.from_numpy(_rot180(w).transpose(0, 1, 3, 2)))
    assert _close(fused, separate, 1e-12)
    unflipped = oracles.tf_conv2d(oracles.nearest_upscale(x), torch.from_numpy(w.transpose(0, 1, 3, 2).copy()))
    assert not _close(fused, unflipped, 1e-3)


def test_fused_downscale_is_conv_then_box_filter_without_flip():
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((2, 3, 8, 8)))
    w = torch.from_numpy(rng.standard_normal((3, 3, 3, 4)))
    assert _close(oracles.fused_conv_downscale(x, w), oracles.tf_avg_pool2(oracles.tf_conv2d(x, w)), 1e-12)


def test_pggan_fused_and_separate_generators():
    """Conv0_up [k, k, out, in] equals the separate layout's Conv0 rotated by 180 degrees with in / out swapped."""
    fused = nf.pggan(16, fmap_base=64, fmap_max=16, latent_size=16, seed=3)["Gs"]
    separate = {}
    for name, value in fused.items():
        if "/Conv0_up/" in name:
            name = name.replace("Conv0_up", "Conv0")
            value = _rot180(value).transpose(0, 1, 3, 2) if name.endswith("weight") else value
        separate[name] = value
    z = _z(3, 16)
    img = oracles.pggan_G(fused, z)
    assert img.shape == (3, 3, 16, 16) and _close(oracles.pggan_G(separate, z), img, 1e-10)
    unrotated = {k: (_rot180(v) if "/Conv0/weight" in k else v) for k, v in separate.items()}
    assert not _close(oracles.pggan_G(unrotated, z), img, 1e-3)


def test_pggan_fused_and_separate_discriminators_differ():
    """D_paper's separate layout pools after the bias and leaky ReLU, the fused one before: not the same
    function of the same weights."""
    D = nf.pggan(16, fmap_base=64, fmap_max=16, latent_size=16, seed=3)["D"]
    separate = {k.replace("Conv1_down", "Conv1"): v for k, v in D.items()}
    images = _images(4, 16)
    assert not _close(oracles.pggan_D(separate, images), oracles.pggan_D(D, images), 1e-3)


def test_stylegan_fused_layers_from_128():
    data = nf.stylegan(128, fmap_base=256, fmap_max=4, mapping_layers=2, dlatent_size=8, latent_size=8,
                       mapping_fmaps=8, seed=6)
    Gs, D = data["Gs"], data["D"]
    z = _z(2, 8)
    auto = oracles.stylegan_G(Gs, z)
    assert _close(oracles.stylegan_G(Gs, z, fused_scale="auto"), auto, 0)
    assert not _close(oracles.stylegan_G(Gs, z, fused_scale=False), auto, 1e-3)
    rotated = {k: (_rot180(v) if k == "synthesis/128x128/Conv0_up/weight" else v) for k, v in Gs.items()}
    assert _close(oracles.stylegan_G(rotated, z, fused_scale=False), auto, 1e-9)  # only 128x128 is fused
    images = _images(4, 128)
    assert _close(oracles.stylegan_D(D, images, fused_scale=True), oracles.stylegan_D(D, images, fused_scale=False),
                  1e-9)


def test_minibatch_stddev_groups_like_a_reshape():
    x = torch.zeros(8, 2, 4, 4, dtype=torch.float64)
    x[1::2] = torch.arange(4, dtype=torch.float64).reshape(4, 1, 1, 1)  # group 1 = samples 1, 3, 5, 7
    y = oracles.minibatch_stddev(x, 4)
    assert torch.allclose(y[0::2, 2], torch.full_like(y[0::2, 2], 1e-4))
    assert torch.allclose(y[1::2, 2], torch.full_like(y[1::2, 2], float(np.sqrt(1.25 + 1e-8))))


def test_upfirdn_keeps_constants():
    x = torch.ones(1, 1, 8, 8, dtype=torch.float64)
    k = oracles.fir_kernel()
    assert torch.allclose(oracles.tf_upsample_2d(x, k)[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12,
                                                                                    dtype=torch.float64))
    assert oracles.tf_upsample_2d(x, k).shape == (1, 1, 16, 16)


# ----------------------------------------------------------------------------------------------------------------
# Every variable matters (so a wrong scale anywhere shows).


def _unused(name: str) -> bool:
    """Progressive networks' lower-resolution ToRGB / FromRGB layers are not used at lod 0."""
    return any(f"{layer}_lod{i}/" in name for layer in ("ToRGB", "FromRGB") for i in range(1, 10)) or \
        name.endswith("lod")


@pytest.mark.parametrize("kind", ["pggan", "stylegan", "stylegan2_tf", "stylegan2_pt", "stylegan2_tf_cond",
                                  "stylegan2_pt_cond"])
def test_every_variable_changes_the_output(kind):
    c_dim = 4 if kind.endswith("_cond") else 0
    c2, c4 = (_one_hot([1, 2], c_dim), _one_hot([0, 1, 3, 1], c_dim)) if c_dim else (None, None)
    if kind.startswith("stylegan2_pt"):
        nets = nf.stylegan2_pt(16, channel_base=128, channel_max=8, mapping_layers=2, z_dim=8, w_dim=8, c_dim=c_dim,
                               d_mapping_kwargs={"num_layers": 1})
        G = {k: v for k, v in nets["G_ema"].state_dict().items() if "resample_filter" not in k}
        D = {k: v for k, v in nets["D"].state_dict().items() if "resample_filter" not in k}
        gen = functools.partial(oracles.stylegan2_pt_G, c=c2)
        disc, z_dim = functools.partial(oracles.stylegan2_pt_D, c=c4), 8
    elif kind == "stylegan2_tf_cond":
        data = nf.stylegan2_tf(16, fmap_base=64, fmap_max=8, z_dim=8, w_dim=8, mapping_fmaps=8, mapping_layers=2,
                               c_dim=c_dim, d_mapping_layers=1)
        G, D = data["Gs"], data["D"]
        gen = functools.partial(oracles.stylegan2_tf_G, c=c2)
        disc, z_dim = functools.partial(oracles.stylegan2_tf_D, c=c4), 8
    else:
        build = {"pggan": nf.pggan, "stylegan": nf.stylegan, "stylegan2_tf": nf.stylegan2_tf}[kind]
        extra = {"pggan": {"latent_size": 8}, "stylegan": {"dlatent_size": 8, "latent_size": 8, "mapping_fmaps": 8},
                 "stylegan2_tf": {"z_dim": 8, "w_dim": 8, "mapping_fmaps": 8}}[kind]
        if kind != "pggan":
            extra["mapping_layers"] = 2
        data = build(16, fmap_base=64, fmap_max=8, **extra)
        G, D = data["Gs"], data["D"]
        gen = {"pggan": lambda p, z, psi: oracles.pggan_G(p, z), "stylegan": oracles.stylegan_G,
               "stylegan2_tf": oracles.stylegan2_tf_G}[kind]
        disc = {"pggan": oracles.pggan_D, "stylegan": oracles.stylegan_D, "stylegan2_tf": oracles.stylegan2_tf_D}[kind]
        z_dim = 8
    z, images = _z(2, z_dim), _images(4, 16)
    img = gen(G, z, 0.7)
    scores = disc(D, images)
    for params, run, out in ((G, lambda p: gen(p, z, 0.7), img), (D, lambda p: disc(p, images), scores)):
        for name in params:
            if _unused(name):
                continue
            changed = dict(params)  # not a plain rescale: demodulation makes modulated kernels scale-invariant
            factor = np.asarray(1 + 0.5 * np.random.default_rng(9).random(np.shape(params[name]), dtype=np.float32))
            changed[name] = params[name] * (torch.from_numpy(factor) if torch.is_tensor(params[name]) else factor)
            assert not _close(run(changed), out, 1e-6), f"{kind}: {name} does not change the output"
