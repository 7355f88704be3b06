"""β-VAE: the source's effective β, the (latent size, β) grid and its tables, per-digit quality,
encoder codes against codes optimised per image, the latent-size check, rate and
distortion, and the chapter's parameters and jobs."""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from vaebook import beta_vae as bv
from vaebook import chapters
from vaebook.chapters import beta_vae as chapter
from vaebook.config import ParameterError
from vaebook.evaluate import decode
from vaebook.models import VAE, VAEConfig
from vaebook.train import fit


# --- the source's effective β -------------------------------------------------------------------------

def _source_loss_numpy(logits, x, mu, logvar):
    """The source's Keras loss, term by term in float64: mean BCE − 0.0005 · mean(1 + logσ² − μ² − σ²)."""
    p = 1 / (1 + np.exp(-logits))
    bce = -(x * np.log(p) + (1 - x) * np.log(1 - p))
    return bce.reshape(len(x), -1).mean(1) - 0.0005 * (1 + logvar - mu ** 2 - np.exp(logvar)).mean(1)


@pytest.mark.parametrize("d, expected", [(5, 0.1568), (10, 0.0784), (15, 0.784 / 15), (20, 0.0392)])
def test_effective_beta_reproduces_source_loss(d, expected):
    assert bv.source_effective_beta(d) == pytest.approx(expected, rel=1e-12)
    rng = np.random.default_rng(d)
    logits = rng.normal(0, 2, (6, 1, 28, 28))
    x = rng.uniform(0, 1, (6, 1, 28, 28))
    mu, logvar = rng.normal(0, 1.5, (6, d)), rng.normal(0, 1, (6, d))
    direct = _source_loss_numpy(logits, x, mu, logvar)
    # summed ELBO terms, also by hand: recon = Σ BCE, KL = ½ Σ (μ² + σ² − 1 − log σ²)
    p = 1 / (1 + np.exp(-logits))
    recon = -(x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(6, -1).sum(1)
    kl = 0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar).sum(1)
    np.testing.assert_allclose(784 * direct, recon + bv.source_effective_beta(d) * kl, rtol=1e-10)
    # and the library's float32 version of the source loss agrees with the direct one
    t = [torch.tensor(a, dtype=torch.float32) for a in (logits, x, mu, logvar)]
    np.testing.assert_allclose(bv.source_loss(*t).numpy(), direct, rtol=1e-4)


def test_beta_resolution_and_the_betas_parameter():
    assert bv.resolve_beta("source", 10) == pytest.approx(0.0784)
    assert bv.resolve_beta(1, 10) == 1.0
    assert bv.beta_label("source", 5) == "source (0.157)"
    assert chapter.check_betas("betas", ["source", 1, 0.5]) == ("source", 1.0, 0.5)
    assert chapter.check_betas("betas", 2) == (2.0,)
    for bad, match in ((["sauce"], "unknown named beta 'sauce'"), ([-1.0], "finite number >= 0"), ([], "non-empty"),
                       (["source", "source"], "repeated"), ([1, 1.0], "repeated"), ([float("inf")], "finite number")):
        with pytest.raises(ParameterError, match=match) as info:
            replace(chapter.DEFAULT, betas=bad)
        assert "\n" not in str(info.value) and str(info.value).startswith("betas")
    with pytest.raises(ParameterError):
        bv.source_effective_beta(0)


def test_the_grid_is_built_once_with_resolved_values_and_labels():
    grid = bv.beta_grid([5, 20], ["source", 1.0])
    assert [(s.d, s.name) for s in grid] == [(5, "source"), (5, 1.0), (20, "source"), (20, 1.0)]
    assert grid[0] == bv.Setting(5, "source", 784 * 0.001 / 5, "source (0.157)") and grid[0].is_source
    assert grid[3] == bv.Setting(20, 1.0, 1.0, "1") and not grid[3].is_source
    assert {grid[0]: "a"}[bv.Setting.of(5, "source")] == "a"   # a dict key, rebuilt from its parts
    with pytest.raises(ParameterError):
        bv.Setting.of(5, "sauce")
    table = bv.grid_table({s: {"x": i} for i, s in enumerate(grid)}, beta_value=True)
    assert list(table.index) == [(5, "source (0.157)"), (5, "1"), (20, "source (0.039)"), (20, "1")]
    assert list(table.columns) == ["β value", "x"] and table["β value"].tolist() == [s.value for s in grid]
    run = chapters.resolve("beta_vae", "full")
    assert len(chapter.settings(run)) == 16


def test_jobs_keep_the_names_and_training_settings_of_the_grid():
    run = chapters.resolve("beta_vae", "smoke")
    assert run.seeds == 2 and chapters.resolve("beta_vae", "default").seeds == 3
    assert chapters.resolve("beta_vae", "full").seeds == 3
    jobs = chapter.jobs(run)
    # the own seed's grid first, names as before the seeds (so its cached models still load), then the
    # source-β models of the further seed, one per latent size
    assert [j.name for j in jobs] == ["beta_vae-d5-beta0.1568", "beta_vae-d5-beta1.0000",
                                      "beta_vae-d20-beta0.0392", "beta_vae-d20-beta1.0000",
                                      "beta_vae-d5-beta0.1568-seed1", "beta_vae-d20-beta0.0392-seed1"]
    assert [j.seed for j in jobs] == [0, 0, 0, 0, 1, 1]
    assert len(jobs) == chapter.n_models(run.params) == 6
    model = jobs[2].model()
    assert model.config == VAEConfig(latent_size=20, arch="conv", beta=784 * 0.001 / 20)
    # 1,000 training images drawn, 20% of them held out for validation
    assert jobs[0].extra_key == {"tracker": "beta-vae-loss-v1", "val": 200}
    x, y = jobs[0].data()
    assert len(x) == len(y) == 800
    assert (jobs[0].epochs, jobs[0].batch_size, jobs[0].lr, jobs[0].seed) == (1, 32, 1e-3, 0)
    assert all(j.hooks is not None for j in jobs[:4])
    # a replicate: the same model and training settings at the source's β, its own seed's draw of the
    # training images, no per-epoch hooks
    rep = jobs[5]
    assert rep.model().config == model.config
    assert (rep.epochs, rep.batch_size, rep.lr, rep.threads, rep.precision) == (1, 32, 1e-3, 1, "auto")
    assert rep.hooks is None and rep.extra_key != jobs[2].extra_key
    rx, ry = rep.data()
    assert len(rx) == 800 and not torch.equal(rx, x)
    own_draw = chapter.chapter_data(replace(run.params, seed=1)).train.x
    assert torch.equal(rx, own_draw)


def test_replicates_only_at_the_source_beta_and_the_seed_sizes():
    run = chapters.resolve("beta_vae", "smoke", {"latent_sizes": [5, 10, 20], "seeds": 3})
    jobs = chapter.jobs(run)
    grid, reps = jobs[:6], jobs[6:]
    # smoke's seed_sizes are (5, 20): d = 10 is trained with the own seed only
    assert chapter.replicated_sizes(run.params) == (5, 20)
    assert [(j.name, j.seed) for j in reps] == [(f"beta_vae-d{d}-beta{784 * 0.001 / d:.4f}-seed{s}", s)
                                                for s in (1, 2) for d in (5, 20)]
    assert all(j.model().config.beta == pytest.approx(bv.source_effective_beta(j.model().config.latent_size))
               for j in reps)
    assert [j.seed for j in grid] == [0] * 6
    # no source β in the grid: nothing is replicated, and the seeds are not trained at all
    no_source = chapters.resolve("beta_vae", "smoke", {"betas": [1.0, 2.0]})
    assert [j.name for j in chapter.jobs(no_source)] == ["beta_vae-d5-beta1.0000", "beta_vae-d5-beta2.0000",
                                                         "beta_vae-d20-beta1.0000", "beta_vae-d20-beta2.0000"]
    assert chapter.n_models(no_source.params) == 4
    # the default and full profiles replicate the two sizes of the source's headline, d = 15 and 20;
    # seed sizes that are not latent sizes are skipped, in the order of latent_sizes
    default = chapters.resolve("beta_vae", "default").params
    assert chapter.replicated_sizes(default) == (15, 20)
    assert chapter.n_models(default) == 8 + 2 * 2
    assert chapter.n_models(chapter.PROFILES["full"]) == 16 + 2 * 2
    assert chapter.replicated_sizes(replace(default, latent_sizes=(20, 10, 15), seed_sizes=(15, 20, 30))) == (20, 15)
    assert chapter.replicated_sizes(replace(default, seed_sizes=(3,))) == ()


def test_split_fits_by_hand_and_its_error():
    p = chapter.PROFILES["smoke"]                  # d 5, 20; β source, 1; seeds 0, 1
    fits = ["g5s", "g5b1", "g20s", "g20b1", "r5", "r20"]
    own, by_seed = chapter.split_fits(p, fits)
    assert own == {bv.Setting.of(5, "source"): "g5s", bv.Setting.of(5, 1.0): "g5b1",
                   bv.Setting.of(20, "source"): "g20s", bv.Setting.of(20, 1.0): "g20b1"}
    assert list(own) == bv.beta_grid((5, 20), ("source", 1.0))
    assert by_seed == {0: {5: "g5s", 20: "g20s"}, 1: {5: "r5", 20: "r20"}}
    three = replace(p, seeds=3, seed=4)
    own, by_seed = chapter.split_fits(three, fits + ["q5", "q20"])
    assert by_seed == {4: {5: "g5s", 20: "g20s"}, 5: {5: "r5", 20: "r20"}, 6: {5: "q5", 20: "q20"}}
    for wrong in (fits[:-1], fits + ["extra"], fits[:4]):
        with pytest.raises(ValueError, match=f"i.e. 6 fits, got {len(wrong)}"):
            chapter.split_fits(p, wrong)
    no_source = replace(p, betas=(1.0,))
    assert chapter.split_fits(no_source, ["a", "b"]) == ({bv.Setting.of(5, 1.0): "a", bv.Setting.of(20, 1.0): "b"}, {})
    with pytest.raises(ValueError, match="i.e. 2 fits, got 3"):
        chapter.split_fits(no_source, ["a", "b", "c"])


class _Scaled:
    """A stand-in model whose reconstruction is the input times a factor plus a constant."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def reconstruct(self, x):
        return self.a * x + self.b


def test_seed_psnr_is_the_pages_per_digit_mean_by_hand():
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(1)
    x = torch.rand(30, 1, 4, 4, generator=g)
    labels = torch.tensor([0] * 4 + [1] * 20 + [2] * 6)   # unbalanced: the mean over digits is not over images
    by_seed = {3: {5: SimpleNamespace(model=_Scaled(0.9, 0.0)), 20: SimpleNamespace(model=_Scaled(0.95, 0.03))},
               4: {5: SimpleNamespace(model=_Scaled(0.8, 0.02)), 20: SimpleNamespace(model=_Scaled(0.7, 0.0))}}
    table = chapter.seed_psnr(by_seed, x, labels)
    assert list(table.index) == [(3, 5), (3, 20), (4, 5), (4, 20)]
    assert table.index.names == ["seed", "latent size"] and list(table.columns) == [chapter.PSNR]
    xa, ya = x.double().numpy().reshape(30, -1), labels.numpy()
    for (seed, d), value in table[chapter.PSNR].items():
        m = by_seed[seed][d].model
        db = np.array([10 * math.log10(1 / np.mean((xa[i] - (m.a * xa[i] + m.b)) ** 2)) for i in range(30)])
        per_digit = [db[ya == c].mean() for c in range(3)]
        assert value == pytest.approx(np.mean(per_digit), rel=1e-5)
        assert abs(np.mean(per_digit) - db.mean()) > 1e-3          # (so the test tells the two means apart)
    empty = chapter.seed_psnr({}, x, labels)
    assert len(empty) == 0 and list(empty.columns) == [chapter.PSNR]
    assert chapter.psnr_drop(empty) == {"drops": {}, "dropped": {}, "n_dropped": 0, "n_seeds": 0,
                                        "measured": False, "mean": {}, "sd": {}}


def _psnr_table(values):
    """A seed_psnr-shaped table from {(seed, d): PSNR}."""
    index = pd.MultiIndex.from_tuples(list(values), names=["seed", "latent size"])
    return pd.DataFrame({chapter.PSNR: list(values.values())}, index=index)


def test_psnr_drop_by_hand():
    d15, d20 = {0: 20.0, 1: 19.5, 2: 21.0}, {0: 19.0, 1: 19.8, 2: 20.5}
    values = {}
    for seed in (0, 1, 2):
        values.update({(seed, 5): 15.0 + seed, (seed, 15): d15[seed], (seed, 20): d20[seed]})
    ev = chapter.psnr_drop(_psnr_table(values))
    assert ev["measured"] and ev["n_seeds"] == 3
    assert list(ev["drops"]) == [0, 1, 2]
    assert list(ev["drops"].values()) == pytest.approx([1.0, -0.3, 0.5])
    assert ev["dropped"] == {0: True, 1: False, 2: True} and ev["n_dropped"] == 2
    assert list(ev["mean"]) == [5, 15, 20]
    assert ev["mean"][15] == pytest.approx(60.5 / 3) and ev["mean"][5] == pytest.approx(16.0)
    # sample standard deviation of 20, 19.5, 21 by hand: mean 20.1667, squares 0.02778 + 0.44444 + 0.69444
    assert ev["sd"][15] == pytest.approx(math.sqrt((1 / 36 + 4 / 9 + 25 / 36) / 2))
    assert ev["sd"][5] == pytest.approx(1.0)
    # a drop on every seed; and other sizes compared when asked
    all_drop = chapter.psnr_drop(_psnr_table({**values, (1, 20): 19.4}))
    assert all_drop["n_dropped"] == 3 and all(all_drop["dropped"].values())
    assert list(chapter.psnr_drop(_psnr_table(values), 5, 15)["drops"].values()) == pytest.approx([-5.0, -3.5, -4.0])
    # d = 15 missing (the smoke profile's sizes 5, 20): not measured, no drops; one seed: no sd
    smoke = chapter.psnr_drop(_psnr_table({(0, 5): 14.0, (0, 20): 15.0}))
    assert not smoke["measured"] and smoke["drops"] == {} and smoke["n_dropped"] == 0 and smoke["n_seeds"] == 1
    assert smoke["mean"] == {5: 14.0, 20: 15.0} and math.isnan(smoke["sd"][5])


# --- representative images and per-digit metrics ----------------------------------------------------

def test_representatives_are_seeded_and_of_the_right_digit(mnist):
    labels = mnist["test"].y
    a = bv.representative_indices(labels, 10, seed=3)
    b = bv.representative_indices(labels, 10, seed=3)
    c = bv.representative_indices(labels, 10, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(a) == 100 and len(torch.unique(a)) == 100
    assert torch.equal(labels[a], torch.arange(10).repeat_interleave(10))
    # the stated rule, by hand: first 10 of a randperm seeded with seed + digit
    idx7 = np.flatnonzero(labels.numpy() == 7)
    perm = torch.randperm(len(idx7), generator=torch.Generator().manual_seed(3 + 7)).numpy()
    np.testing.assert_array_equal(a[70:80].numpy(), idx7[perm[:10]])
    with pytest.raises(ParameterError):
        bv.representative_indices(labels[:30], 10)


def test_per_digit_metrics_match_a_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 1, 28, 28, generator=g)
    x_hat = (x + 0.2 * torch.randn(60, 1, 28, 28, generator=g)).clamp(0, 1)
    labels = torch.randint(0, 4, (60,), generator=g)
    table = bv.per_digit_metrics(x, x_hat, labels)
    xa, ha, ya = x.double().numpy(), x_hat.double().numpy(), labels.numpy()
    for digit in range(4):
        errs, dbs = [], []
        for i in range(60):
            if ya[i] == digit:
                e = float(np.mean((xa[i] - ha[i]) ** 2))
                errs.append(e)
                dbs.append(10 * math.log10(1 / e))
        assert table.loc[digit, "images"] == len(errs)
        assert table.loc[digit, "mse"] == pytest.approx(np.mean(errs), rel=1e-5)
        assert table.loc[digit, "psnr"] == pytest.approx(np.mean(dbs), rel=1e-5)
    summary = bv.summarise_per_digit(table)
    assert summary["psnr"] == pytest.approx(table["psnr"].mean())


def _digit_table(psnr, mse, images=100):
    """A per_digit_metrics-shaped table with the given per-digit values."""
    return pd.DataFrame({"images": images, "mse": mse, "psnr": psnr},
                        index=pd.Index(range(len(psnr)), name="digit"))


def test_digit_by_size_and_the_long_table_by_hand():
    grid = bv.beta_grid([5, 20], ["source", 1.0])
    all_images = {s: _digit_table([10 * i + s.d + k for k in range(3)], [0.1 * i + k for k in range(3)])
                  for i, s in enumerate(grid)}
    reps = {s: _digit_table([t.psnr[k] + 0.5 for k in range(3)], [t.mse[k] + 0.01 for k in range(3)], 10)
            for s, t in all_images.items()}
    wide = bv.digit_by_size(all_images, "psnr", "source")
    assert list(wide.columns) == [5, 20] and wide.columns.name == "latent size" and wide.index.name == "digit"
    assert wide[5].tolist() == [5, 6, 7] and wide[20].tolist() == [40, 41, 42]    # settings 0 and 2
    assert bv.digit_by_size(all_images, "mse", 1.0)[20].tolist() == pytest.approx([0.3, 1.3, 2.3])
    with pytest.raises(ValueError, match="no table with β entry 2.0"):
        bv.digit_by_size(all_images, "psnr", 2.0)
    long = bv.per_digit_long(all_images, reps)
    assert len(long) == 12
    row = long[(long["latent size"] == 20) & (long["β"] == "1") & (long["digit"] == 2)].iloc[0]
    assert (row["PSNR all"], row["PSNR 10 reps"], row["test images"]) == (52, 52.5, 100)
    assert row["MSE all"] == pytest.approx(2.3)
    with pytest.raises(ValueError):
        bv.per_digit_long(all_images, {grid[0]: reps[grid[0]]})


def test_digit_difficulty_by_hand_and_by_brute_force_ranks():
    long = pd.DataFrame({"digit": [0, 1, 2, 0, 1, 2], "PSNR all": [10.0, 14.0, 9.0, 12.0, 16.0, 7.0],
                         "MSE all": [0.2, 0.1, 0.3, 0.4, 0.1, 0.5]})
    # three digits whose images have mean intensity 0.3, 0.1 and 0.2
    images = torch.tensor([0.3, 0.3, 0.1, 0.2, 0.1]).reshape(5, 1, 1, 1) * torch.ones(5, 1, 2, 2)
    labels = torch.tensor([0, 0, 1, 2, 1])
    table, rho = bv.digit_difficulty(long, images, labels)
    assert list(table.index) == [1, 0, 2]                                  # mean PSNR 15, 11, 8
    assert table.loc[0, "mean MSE over models"] == pytest.approx(0.3)
    assert table["mean pixel intensity"].tolist() == pytest.approx([0.1, 0.3, 0.2])
    # Spearman = Pearson correlation of the ranks: ink ranks (3, 1, 2), MSE ranks (2, 1, 3) for digits 0, 1, 2
    assert rho == pytest.approx(np.corrcoef([3, 1, 2], [2, 1, 3])[0, 1])


def test_model_selection_picks_the_lowest_validation_elbo():
    grid = bv.beta_grid([5, 10], ["source", 1.0])
    elbos = [101.0, 99.5, 100.0, 99.7]
    histories = {s: pd.DataFrame({"epoch": [1, 2], "val_neg_elbo": [200.0, e], "val_loss": [150.0, e - 1]})
                 for s, e in zip(grid, elbos)}
    table, chosen = bv.model_selection(histories)
    assert chosen == grid[1] == bv.Setting(5, 1.0, 1.0, "1")
    assert table.loc[(10, "1"), "validation −ELBO (nats)"] == 99.7
    assert table.loc[(10, "1"), "validation loss L_β"] == 98.7
    assert table.loc[(5, "source (0.157)"), "β value"] == pytest.approx(0.1568)
    with pytest.raises(ValueError, match="no loss_tracker"):
        bv.model_selection({grid[0]: pd.DataFrame({"epoch": [1], "loss": [1.0]})})



def test_larger_latent_worse_known_answer():
    # d = 10 is best so far; 15 and 20 exceed it (by 1.5 and 0.3), 8 is below 5 (fine), 12 ties 10 + 0.2
    elbos = {5: 110.0, 8: 104.0, 10: 100.0, 12: 100.2, 15: 101.5, 20: 100.3}
    out = bv.larger_latent_worse(elbos)
    assert out["latent size"].tolist() == [12, 15, 20]
    assert out["smaller size"].tolist() == [10, 10, 10]
    assert out["excess (nats)"].tolist() == pytest.approx([0.2, 1.5, 0.3])
    assert out.set_index("latent size").loc[15, "−ELBO"] == 101.5
    assert out.set_index("latent size").loc[15, "its −ELBO"] == 100.0
    assert bv.larger_latent_worse(elbos, tolerance=0.25)["latent size"].tolist() == [15, 20]
    assert bv.larger_latent_worse(elbos, tolerance=1.0)["latent size"].tolist() == [15]
    # order of the mapping does not matter; a monotone sequence flags nothing
    assert bv.larger_latent_worse(dict(reversed(list(elbos.items())))).equals(out)
    assert bv.larger_latent_worse({5: 3.0, 10: 2.0, 20: 1.0}).empty
    assert bv.larger_latent_worse({}).empty
    # brute force: d is flagged iff some smaller size is lower by more than the tolerance
    rng = np.random.default_rng(0)
    for _ in range(50):
        vals = dict(zip([2, 4, 6, 8, 10], rng.normal(100, 2, 5)))
        expected = [d for d in vals if any(vals[d] > vals[e] + 0.5 for e in vals if e < d)]
        assert bv.larger_latent_worse(vals, tolerance=0.5)["latent size"].tolist() == expected

def test_source_comparison_and_verdict_by_hand():
    assert bv.SOURCE_RESULTS == {5: (0.0239, 16.67), 10: (0.0132, 19.17), 15: (0.0091, 20.77), 20: (0.0143, 18.88)}
    grid = bv.beta_grid([5, 10, 25], ["source", 1.0])
    # d = 5: mean PSNR 17.0 (beats 16.67), easiest digit 2, hardest 0; d = 10: 18.0 (below 19.17)
    psnr = {5: [16.0, 17.0, 18.0], 10: [18.5, 17.0, 18.5], 25: [30.0, 30.0, 30.0]}
    all_images = {s: _digit_table(psnr[s.d] if s.is_source else [50.0] * 3, [0.02, 0.01, 0.03]) for s in grid}
    reps = {s: _digit_table([10.0, 11.0, 12.0], [0.05] * 3, 10) for s in grid}
    table = bv.source_comparison(all_images, reps)
    assert list(table.index) == [5, 10]                    # no source number for d = 25; β = 1 left out
    assert table.loc[5, "our PSNR (dB)"] == pytest.approx(17.0)
    assert table.loc[5, "PSNR difference (dB)"] == pytest.approx(17.0 - 16.67)
    assert table.loc[10, "source MSE"] == 0.0132 and table.loc[10, "our MSE"] == pytest.approx(0.02)
    assert table.loc[10, "our PSNR, 10 reps (dB)"] == pytest.approx(11.0)
    assert table.loc[10, "β_eff"] == pytest.approx(0.0784)
    assert table["beats source"].tolist() == [True, False]
    verdict = bv.source_verdict(table, all_images)
    assert verdict == {"holds": False, "beats": 1, "sizes": 2, "best latent size": 10,
                       "easiest": {5: 2, 10: 0}, "hardest": {5: 0, 10: 1}}
    assert bv.source_comparison({s: t for s, t in all_images.items() if not s.is_source},
                                {s: t for s, t in reps.items() if not s.is_source}).empty


# --- decoder-only reconstruction --------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(mnist):
    # a small MLP VAE keeps this fast; the optimisation is the same for any decoder (the chapter runs conv)
    x = mnist["train"].x[:3000]
    result = fit(lambda: VAE(VAEConfig(latent_size=5, arch="mlp", hidden_size=200, beta=1.0)), x, epochs=2,
                 batch_size=64, lr=1e-3, seed=0, device="cpu", cache=False, progress=False)
    return result.model, mnist["test"].x[:24]


def test_decoder_only_beats_the_encoder_on_a_fixed_batch(trained):
    model, x = trained
    before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    z, obj = bv.decoder_only_latents(model, x, steps=150, lr=0.05, prior_weight=0.0, batch_size=10)
    for k, v in model.decoder.state_dict().items():
        assert torch.equal(v, before[k]), "the decoder must stay frozen"
    full = model.reconstruct(x)
    dec = decode(model, z)
    enc_obj = bv.encoder_objective(model, x, prior_weight=0.0)
    # objective (the reconstruction NLL) and pixel error both fall below the amortised encoder's
    assert obj.mean() < enc_obj.mean() - 1.0
    gap = bv.optimised_code_gap(x, full, dec)
    assert gap["optimised MSE"] < gap["encoder MSE"] and gap["PSNR gain (dB)"] > 0
    assert gap["MSE gain"] == pytest.approx(gap["encoder MSE"] - gap["optimised MSE"])
    assert gap["encoder MSE"] == pytest.approx(((x - full) ** 2).mean().item(), rel=1e-5)
    assert gap["optimised PSNR"] == pytest.approx((10 * torch.log10(1 / ((x - dec) ** 2).mean((1, 2, 3)))).mean().item(),
                                                  rel=1e-5)
    # the returned objective is what the codes achieve
    with torch.no_grad():
        torch.testing.assert_close(obj, bv.decoder_only_objective(model, z, x, 0.0), rtol=1e-5, atol=1e-3)


def test_decoder_only_map_objective_and_determinism(trained):
    model, x = trained
    z1, obj1 = bv.decoder_only_latents(model, x, steps=100, prior_weight=1.0, init="prior", seed=5, batch_size=24)
    z2, obj2 = bv.decoder_only_latents(model, x, steps=100, prior_weight=1.0, init="prior", seed=5, batch_size=24)
    assert torch.equal(z1, z2) and torch.equal(obj1, obj2)
    z0, obj0 = bv.decoder_only_latents(model, x, steps=100, prior_weight=1.0, batch_size=24)
    assert obj0.mean() < bv.encoder_objective(model, x, prior_weight=1.0).mean()
    with pytest.raises(ParameterError):
        bv.decoder_only_latents(model, x, init="encoder")


def test_optimised_code_table_matches_its_parts(trained):
    model, x = trained
    other = VAE(replace(model.config, beta=0.25))
    other.load_state_dict(model.state_dict())
    models = {5: model, 6: other}             # keyed by latent size; the same weights, two values of β
    full = {d: m.reconstruct(x) for d, m in models.items()}
    table, recon = bv.optimised_code_table(models, x, full, steps=20, lr=0.1, seed=0)
    assert list(table.index) == [5, 6]
    for d, m in models.items():
        z, objective = bv.decoder_only_latents(m, x, steps=20, lr=0.1, prior_weight=m.config.beta, seed=0)
        torch.testing.assert_close(recon[d], m.decode(z).detach())
        row = table.loc[d]
        for key, value in bv.optimised_code_gap(x, full[d], recon[d]).items():
            assert row[key] == pytest.approx(value)
        assert row["J at optimised code"] == pytest.approx(objective.mean().item())
        assert row["J at encoder code"] == pytest.approx(bv.encoder_objective(m, x, m.config.beta).mean().item())
        wins = sum(float(((x[i] - recon[d][i]) ** 2).mean()) < float(((x[i] - full[d][i]) ** 2).mean())
                   for i in range(len(x)))
        assert row["share optimised better (MSE)"] == pytest.approx(wins / len(x))
    # a larger β weighs ½‖z‖² more
    assert table.loc[5, "J at encoder code"] > table.loc[6, "J at encoder code"]
    with pytest.raises(ValueError, match="same latent sizes"):
        bv.optimised_code_table(models, x, {5: full[5]}, steps=1, lr=0.1)


# --- traversals, rate, t-SNE -------------------------------------------------------------------

def test_latent_traversal_and_kl_per_dimension(trained):
    model, x = trained
    z0 = torch.tensor([0.1, -0.2, 0.3, 0.0, 0.5])
    imgs = bv.latent_traversal(model, z0, dims=[1, 3], values=[-2.0, 0.0, 2.0])
    assert imgs.shape == (6, 1, 28, 28)
    z = z0.clone()
    z[3] = 2.0
    torch.testing.assert_close(imgs[5], model.decode(z[None])[0].detach())
    with pytest.raises(ValueError):
        bv.latent_traversal(model, z0, dims=[5], values=[0.0])
    kl = bv.kl_per_dimension(model, x)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        total = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1).mean()
    assert kl.shape == (5,) and kl.sum().item() == pytest.approx(total.item(), rel=1e-4)
    rd = bv.rate_distortion(model, x, seed=1)
    assert rd["neg_elbo"] == pytest.approx(rd["rate"] + rd["distortion"], rel=1e-6)
    assert rd["rate"] == pytest.approx(total.item(), rel=1e-4)
    assert rd == bv.rate_distortion(model, x, seed=1)
    assert rd == bv.rate_distortion(model, x, x_hat=model.reconstruct(x), seed=1)
    other = VAE(replace(model.config, beta=2.0))
    other.load_state_dict(model.state_dict())
    a, b = bv.Setting.of(5, 1.0), bv.Setting.of(5, 2.0)
    table = bv.rate_distortion_table({a: model, b: other}, x, {a: model.reconstruct(x), b: other.reconstruct(x)},
                                     seed=1)
    assert list(table.index) == [(5, "1"), (5, "2")] and table["β value"].tolist() == [1.0, 2.0]
    assert table.loc[(5, "1")].drop("β value").to_dict() == rd
    assert table.loc[(5, "2")].drop("β value").to_dict() == bv.rate_distortion(other, x, seed=1)


def test_tsne_embedding_is_seeded_and_two_dimensional():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    codes = rng.normal(0, 10, (3, 4))[labels] + rng.normal(0, 0.1, (60, 4))
    emb = bv.tsne_embedding(codes, seed=0)
    assert emb.shape == (60, 2) and np.isfinite(emb).all()
    np.testing.assert_array_equal(emb, bv.tsne_embedding(torch.tensor(codes), seed=0))


def test_suboptimal_models_known_answer():
    rd = pd.DataFrame([
        # d = 15: the beta = 0.5 model has less rate AND more distortion than the beta = 1 model, so the
        # beta = 1 model scores 80 + 0.5 * 21 = 90.5 < 88 + 0.5 * 20 = 98 on beta = 0.5's own objective
        {"latent size": 15, "β value": 0.5, "rate": 20.0, "distortion": 88.0},
        {"latent size": 15, "β value": 1.0, "rate": 21.0, "distortion": 80.0},
        {"latent size": 15, "β value": 2.0, "rate": 10.0, "distortion": 95.0},
        # d = 5: a consistent frontier (lower beta, more rate, less distortion): nobody is beaten
        {"latent size": 5, "β value": 0.5, "rate": 30.0, "distortion": 90.0},
        {"latent size": 5, "β value": 1.0, "rate": 20.0, "distortion": 96.0},
    ])
    out = bv.suboptimal_models(rd)
    assert list(out["latent size"]) == [15] and list(out["β"]) == [0.5]
    row = out.iloc[0]
    assert row["beaten by β"] == 1.0
    assert row["own objective"] == pytest.approx(98.0) and row["its value"] == pytest.approx(90.5)
    assert row["excess (nats)"] == pytest.approx(7.5)
    assert bv.suboptimal_models(rd, tolerance=7.4)["β"].tolist() == [0.5]
    assert bv.suboptimal_models(rd, tolerance=7.6).empty
    # a brute-force check of the definition on random frontiers
    rng = np.random.default_rng(0)
    for _ in range(20):
        frame = pd.DataFrame({"latent size": 5, "β value": [0.25, 0.5, 1.0, 2.0],
                              "rate": rng.uniform(5, 40, 4), "distortion": rng.uniform(60, 120, 4)})
        flagged = set(bv.suboptimal_models(frame)["β"])
        expected = {a.β_value for a in frame.rename(columns={"β value": "β_value"}).itertuples()
                    if any(b.distortion + a.β_value * b.rate < a.distortion + a.β_value * a.rate
                           for b in frame.rename(columns={"β value": "β_value"}).itertuples() if b.Index != a.Index)}
        assert flagged == expected
