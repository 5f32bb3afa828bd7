"""The catalogue of NVIDIA's published networks (docs/design.md §16): every entry is a network `sgan import` reads,
named `<family>-<dataset>-<resolution>`, downloadable from NVIDIA over https or saying where to get it by hand,
under the licence its repository states; `$SGAN_CATALOGUE` replaces fields or adds networks; `sgan models` lists
them."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest
from conftest import sgan_here

from stylegan_cli.core.errors import UsageError
from stylegan_cli.nvidia import catalogue, tf_pickles, torch_pickles

RAW = json.loads(resources.files("stylegan_cli.nvidia").joinpath("catalogue.json").read_text(encoding="utf-8"))
NETWORKS = catalogue.load().networks
# family: (name prefix, the format NVIDIA's files of that family are in, licence, where NVIDIA serves them)
FAMILIES = {
    "Progressive GAN": ("pggan", tf_pickles.PGGAN, "cc-by-nc-4.0", None),
    "StyleGAN": ("stylegan", tf_pickles.STYLEGAN, "cc-by-nc-4.0", None),
    "StyleGAN2": ("stylegan2", tf_pickles.STYLEGAN2, "nvidia-nc-sg2", "https://nvlabs-fi-cdn.nvidia.com/stylegan2/"
                                                                       "networks/"),
    "StyleGAN2-ADA": ("stylegan2-ada", torch_pickles.FORMAT, "nvidia-nc-ada",
                      "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"),
    "StyleGAN2 (StyleGAN3 repo)": ("stylegan2-sg3", torch_pickles.FORMAT, "nvidia-nc-sg3",
                                   "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/"),
}


def test_the_catalogue_has_the_networks_nvidia_published_for_each_paper():
    expected = (["pggan-celebahq-1024"] + [f"pggan-{c}-256" for c in ("bedroom", "church", "cat", "car", "horse")]
                + [f"stylegan-{d}" for d in ("ffhq-1024", "celebahq-1024", "bedroom-256", "car-512", "cat-256")]
                + [f"stylegan2-{d}" for d in ("ffhq-1024", "car-512", "cat-256", "church-256", "horse-256")]
                + [f"stylegan2-ada-{d}" for d in ("ffhq-1024", "metfaces-1024", "afhqcat-512", "afhqdog-512",
                                                  "afhqwild-512", "brecahad-512", "cifar10-32")]
                + [f"stylegan2-sg3-{d}" for d in ("ffhq-1024", "ffhq-512", "ffhq-256", "ffhqu-1024", "metfaces-1024",
                                                  "afhqv2-512", "cifar10-32", "celebahq-256", "dog-256")])
    assert set(expected) <= set(NETWORKS)
    assert len([n for n in NETWORKS if n.startswith("pggan-") and n.endswith("-256")]) == 30  # LSUN's categories


def test_names_are_unique_and_say_family_dataset_and_resolution():
    names = [entry["name"] for entry in RAW["networks"]]
    assert len(names) == len(set(names))
    assert not set(RAW["aliases"]) & set(names) and set(RAW["aliases"].values()) <= set(names)
    assert catalogue.load().find("ffhq-1024") == NETWORKS["stylegan2-ada-ffhq-1024"]
    for network in NETWORKS.values():
        prefix = FAMILIES[network.family][0]
        dataset = network.name[len(prefix) + 1:].rsplit("-", 1)[0]
        assert network.name == f"{prefix}-{dataset}-{network.resolution}" and re.fullmatch(r"[a-z0-9]+", dataset)


def test_every_entry_is_in_a_format_sgan_import_reads_at_a_power_of_two():
    for network in NETWORKS.values():
        assert network.format in catalogue.FORMATS and network.format == FAMILIES[network.family][1], network.name
        r = network.resolution
        assert r >= 4 and r & (r - 1) == 0, network.name


def test_downloads_are_nvidias_own_https_urls_and_the_others_say_where_to_get_the_file():
    for network in NETWORKS.values():
        base = FAMILIES[network.family][3]
        if base is None:  # published on Google Drive only
            assert network.url is None and network.manual.startswith("https://drive.google.com/"), network.name
        else:
            assert network.url == base + network.file and network.manual is None, network.name


def test_digests_and_sizes_are_stated_only_in_their_form():
    for network in NETWORKS.values():
        assert network.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", network.sha256)
        assert network.size is None or network.size > 0


def test_each_family_has_the_licence_its_repository_states():
    for network in NETWORKS.values():
        licence = network.licence
        assert licence.id == FAMILIES[network.family][2], network.name
        assert licence.url.startswith("https://") and licence.terms.startswith("non-commercial use only")
    assert {n.licence.name for n in NETWORKS.values()} >= {"CC BY-NC 4.0", "Nvidia Source Code License-NC"}


def _extra(tmp_path, monkeypatch, doc) -> None:
    path = tmp_path / "mine.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    monkeypatch.setenv(catalogue.CATALOGUE_ENV, str(path))


def test_sgan_catalogue_replaces_the_fields_it_names_and_adds_networks(tmp_path, monkeypatch):
    mirror = "https://mirror.example.org/stylegan2-ffhq-config-f.pkl"
    _extra(tmp_path, monkeypatch, {"licences": {"mine": {"name": "Mine", "url": "https://example.org", "terms": "t"}},
                                   "networks": [{"name": "stylegan2-ffhq-1024", "url": mirror, "sha256": "a" * 64},
                                                {"name": "mine-faces-64", "family": "Mine", "dataset": "Faces",
                                                 "resolution": 64, "format": torch_pickles.FORMAT, "file": "f.pkl",
                                                 "url": "https://example.org/f.pkl", "manual": None, "size": 10,
                                                 "sha256": None, "licence": "mine"}]})
    networks = catalogue.load().networks
    assert networks["stylegan2-ffhq-1024"].url == mirror and networks["stylegan2-ffhq-1024"].sha256 == "a" * 64
    assert networks["stylegan2-ffhq-1024"].file == "stylegan2-ffhq-config-f.pkl"  # the rest kept
    assert networks["mine-faces-64"].licence.name == "Mine" and len(networks) == len(NETWORKS) + 1


@pytest.mark.parametrize("doc, words", [
    ("{not json", "not a catalogue"),
    ({"networks": [{"name": "stylegan2-ffhq-1024", "format": "StyleGAN3 (PyTorch)"}]}, "StyleGAN3 (PyTorch)"),
    ({"networks": [{"name": "stylegan2-ffhq-1024", "resolution": 384}]}, "power of two"),
    ({"networks": [{"name": "new-net-64"}]}, "lacks"),
    ({"networks": [{"name": "stylegan2-ffhq-1024", "licence": "nowhere"}]}, "nowhere"),
    ({"aliases": {"faces": "no-such-network-64"}}, "no-such-network-64"),
])
def test_a_broken_sgan_catalogue_is_a_usage_error_naming_what_is_wrong(tmp_path, monkeypatch, doc, words):
    _extra(tmp_path, monkeypatch, doc)
    with pytest.raises(UsageError, match=re.escape(words)):
        catalogue.load()


def test_sgan_models_lists_every_network_as_a_table_or_as_json(capsys):
    code, out, err = sgan_here(capsys, "models")
    assert code == 0 and out == "" and all(name in err for name in NETWORKS)
    code, out, err = sgan_here(capsys, "models", "--json")
    listed = json.loads(out)
    assert code == 0 and [n["name"] for n in listed["networks"]] == list(NETWORKS)
    first = listed["networks"][0]
    assert first["licence"]["name"] and first["format"] in catalogue.FORMATS and "cached" in first
