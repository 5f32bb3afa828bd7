"""Latents files (docs/design.md §11): labels, and rows that carry their own noise maps (`sgan project`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import small_stylegan2

from stylegan_cli.core.errors import UsageError
from stylegan_cli.synthesis.latents import Latent, parse_latents, save_latents
from stylegan_cli.synthesis.render import noise_resolutions, synthesize, to_ws


@pytest.fixture(scope="module")
def G():
    return small_stylegan2()[0]


def own_noise(G, seed: int) -> list[np.ndarray]:
    rng = np.random.RandomState(seed)
    return [rng.randn(r, r).astype(np.float32) for r in noise_resolutions(G)]


def test_names_and_noise_maps_come_back_from_the_file(G, tmp_path):
    ws = torch.randn(3, G.num_ws, G.w_dim)
    latents = [Latent(name, noise=own_noise(G, i)) for i, name in enumerate(["me", "../up", ".hidden"])]
    path = save_latents(tmp_path / "latents.npz", latents, ws, names=True)
    with np.load(path) as npz:
        assert sorted(npz.files) == sorted(["w", "names", *(f"noise{i}" for i in range(7))])
        assert npz["noise3"].shape == (3, 16, 16) and npz["noise3"].dtype == np.float32
    back = parse_latents(str(path), G.z_dim)
    # a stored name labels its row (and names its files) only where it is a plain file name
    assert [x.label for x in back] == ["me", "latents-1", "latents-2"]
    for latent, original, w in zip(back, latents, ws):
        assert np.array_equal(latent.w, w.numpy()) and latent.z is None and latent.seed is None
        assert all(np.array_equal(a, b) for a, b in zip(latent.noise, original.noise, strict=True))
    assert parse_latents(f"{path}:2", G.z_dim)[0].noise[0].shape == (4, 4)


def test_an_image_with_noise_maps_is_rendered_with_them_and_its_neighbours_with_the_mode(G):
    ws = to_ws(G, parse_latents("1,2", G.z_dim))
    maps = own_noise(G, 0)
    together = synthesize(G, ws, 2, "const", own_noise=[maps, None])
    alone = synthesize(G, ws[:1], 1, "random", own_noise=[maps])  # the maps win over the mode
    plain = synthesize(G, ws[1:], 1, "const")
    assert np.array_equal(together[0], alone[0]) and np.array_equal(together[1], plain[0])
    assert not np.array_equal(alone[0], synthesize(G, ws[:1], 1, "const")[0])


def test_noise_maps_that_do_not_fit_the_generator_are_a_usage_error(G):
    wrong = own_noise(G, 0)[:-1]
    latent = Latent("me", w=np.zeros(G.w_dim, np.float32), noise=wrong)
    with pytest.raises(UsageError, match=r"me: its noise maps are 4x4, 8x8, 8x8, 16x16, 16x16, 32x32; this "
                                         r"generator's noise inputs are 4x4, 8x8, 8x8, 16x16, 16x16, 32x32, 32x32\."):
        to_ws(G, [latent])
