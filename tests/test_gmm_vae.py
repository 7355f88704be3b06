"""The GMM-VAE method (vaebook.gmm_vae) and its chapter's analysis (vaebook.chapters.gmm_vae), against known
answers: simulated blobs with known truth, closed forms, scikit-learn and scipy, hand-counted tables."""

from __future__ import annotations

import pickle

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import beta, binomtest, norm
from sklearn.mixture import GaussianMixture

from vaebook import chapters
from vaebook.chapters import gmm_vae as chapter
from vaebook.gmm_vae import (DIGITS, ClusteringComparison, InputError, LatentGMM, accuracy_margin,
                             all_correct_lower_bound, and_list, classification_em, classification_report,
                             cluster_majorities, clustering_accuracy, compare_clusterings, draw_mixture, draw_study,
                             em_fits, error_pairs, fit_latent_gmm, ink_width, labelled_holdout, labelled_image_grid,
                             labelled_means, latent_codes, latent_manifold, misclassified, mixed_clusters,
                             mixture_table,
                             most_likely, reconstruction_table, split_counts, train_vae)
from vaebook.models import VAE, VAEConfig

matplotlib.use("Agg")

pytestmark = pytest.mark.usefixtures("single_threaded_module")


# --- the mixture -------------------------------------------------------------------------------------

def _three_blobs(seed=0, n=300):
    """Codes from three well-separated Gaussians; blob j is digit DIGITS[j]."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-4.0, 0.0], [4.0, 1.0], [0.0, 5.0]])
    labels = np.repeat(np.arange(3), n)
    codes = centres[labels] + rng.normal(scale=[0.8, 0.5], size=(3 * n, 2))
    return codes, np.asarray(DIGITS)[labels]


def test_mixture_round_trips_and_matches_scikit_learn(tmp_path):
    codes, labels = _three_blobs()
    val = np.r_[0:5, 300:305, 600:605]
    # the labelled-means start alone (no restarts, no CEM) is scikit-learn's EM from those means
    gmm = fit_latent_gmm(codes, codes[val], labels[val], DIGITS, seed=0, vae_fingerprint="abc", restarts=0,
                         refine=False)
    path = gmm.save(tmp_path / "gmm_params.pkl")
    back = LatentGMM.load(path)
    for name in ("weights", "means", "covariances", "cluster_to_digit", "digits"):
        np.testing.assert_array_equal(getattr(back, name), getattr(gmm, name))
    assert back.vae_fingerprint == "abc"
    # per-digit probabilities equal scikit-learn's responsibilities of the mapped clusters
    sk = GaussianMixture(3, covariance_type="full", means_init=np.stack(
        [codes[val][labels[val] == d].mean(0) for d in DIGITS]), random_state=0, max_iter=500,
        reg_covar=1e-6).fit(codes)
    resp = sk.predict_proba(codes)
    expected = np.stack([resp[:, back.cluster_to_digit == d].sum(1) for d in DIGITS], axis=1)
    np.testing.assert_allclose(back.predict_proba(codes), expected, atol=1e-6)
    assert (back.predict(codes) == labels).mean() > 0.99


def test_map_is_taken_from_the_labels_not_hard_coded():
    codes, labels = _three_blobs()
    val = np.r_[0:5, 300:305, 600:605]
    base = fit_latent_gmm(codes, codes[val], labels[val], DIGITS).predict(codes)
    perm = np.random.default_rng(3).permutation(len(val))
    permuted = fit_latent_gmm(codes, codes[val][perm], labels[val][perm], DIGITS).predict(codes)
    np.testing.assert_array_equal(permuted, base)
    swap = {1: 8, 4: 4, 8: 1}      # call the 1s "8" and the 8s "1": predictions must swap too
    swapped_labels = np.array([swap[v] for v in labels[val]])
    swapped = fit_latent_gmm(codes, codes[val], swapped_labels, DIGITS).predict(codes)
    np.testing.assert_array_equal(swapped, np.array([swap[v] for v in base]))


def _failure_case(seed=0):
    """Simulated codes in which the source's start fails (the failure of seed 3 in the chapter): a long
    band of 1s below, a broad cloud of 4s above, a compact cloud of 8s between them touching both, and the
    five labelled 1s taken from the far left end of their band. Returns codes, labels, the labelled
    indices and the true mixture's Bayes classification of every code (the known answer)."""
    rng = np.random.default_rng(seed)
    n = np.array([1800, 1600, 1500])
    means = np.array([[0.0, -1.4], [0.0, 1.4], [0.0, 0.0]])
    covs = np.array([[[1.2, 0.3], [0.3, 0.3]], [[0.8, 0.0], [0.0, 0.5]], [[0.3, 0.05], [0.05, 0.12]]])
    codes = np.concatenate([rng.multivariate_normal(m, c, size=k) for m, c, k in zip(means, covs, n)])
    labels = np.repeat(np.asarray(DIGITS), n)
    ones = np.nonzero(labels == 1)[0]
    pick = np.random.default_rng(1)
    labelled = np.r_[ones[np.argsort(codes[ones, 0])[:5]],
                     pick.choice(np.nonzero(labels == 4)[0], 5, replace=False),
                     pick.choice(np.nonzero(labels == 8)[0], 5, replace=False)]
    # Bayes classifier of the generating mixture: argmax_k log pi_k + log N(z; m_k, S_k), by scipy
    from scipy.stats import multivariate_normal
    log_joint = np.stack([np.log(k / n.sum()) + multivariate_normal(m, c).logpdf(codes)
                          for m, c, k in zip(means, covs, n)], axis=1)
    return codes, labels, labelled, np.asarray(DIGITS)[log_joint.argmax(1)], means


def test_fixed_method_recovers_the_labels_where_the_labelled_start_fails():
    codes, labels, lab, bayes, true_means = _failure_case()
    assert (bayes == labels).mean() == pytest.approx(0.926, abs=0.01)     # the best any classifier can do
    # the failure mode occurs: EM from the labelled means ends in a poor, less likely optimum
    old = fit_latent_gmm(codes, codes[lab], labels[lab], DIGITS, restarts=0, refine=False)
    assert (old.predict(codes) == labels).mean() < 0.8
    fits = em_fits(codes, labelled_means(codes[lab], labels[lab], DIGITS), restarts=8, seed=0)
    assert fits[0].start == "labelled means" and fits[1].start == "k-means++ (best of 8)"
    assert fits[1].log_likelihood > fits[0].log_likelihood + 0.03 and most_likely(fits) is fits[1]
    # the fixed method: the Bayes classifier's answer on nearly every code, and its accuracy
    new = fit_latent_gmm(codes, codes[lab], labels[lab], DIGITS, seed=0)
    predicted = new.predict(codes)
    assert (predicted == bayes).mean() > 0.97
    assert (predicted == labels).mean() > (bayes == labels).mean() - 0.01
    # each digit's component sits near that digit's true mean (classification EM's hard assignment cuts
    # off each cloud's overlap with its neighbours, which moves overlapping components apart a little)
    for d, m in zip(DIGITS, true_means):
        np.testing.assert_allclose(new.means[new.cluster_to_digit == d][0], m, atol=0.25)
    # and it does not depend on the draw: any other five labelled images per digit give the same answer
    other = labelled_holdout(labels, 5, DIGITS, seed=3)
    again = fit_latent_gmm(codes, codes[other], labels[other], DIGITS, seed=0)
    np.testing.assert_array_equal(again.predict(codes), predicted)


def test_draw_study_on_the_failure_case():
    codes, labels, _, _, _ = _failure_case()
    study = draw_study(codes, labels, codes, labels, DIGITS, n_draws=4, seed=0)
    assert study.shape == (4, 2) and study.index.name == "draw"
    assert study["this method"].nunique() == 1                      # the draw only names the clusters
    idx = labelled_holdout(labels, 5, DIGITS, seed=102)             # draw 2 is drawn with seed + 100 + 2
    expected = (fit_latent_gmm(codes, codes[idx], labels[idx], DIGITS, restarts=0, refine=False).predict(codes)
                == labels).mean()
    assert study.loc[2, "labelled start"] == pytest.approx(expected)
    assert (study["this method"] >= study["labelled start"] - 0.005).all()


def test_classification_em_ends_at_the_ml_fit_of_its_own_partition():
    codes, labels, _, _, true_means = _failure_case()
    k = np.searchsorted(DIGITS, labels)
    weights = np.bincount(k) / len(k)
    covs = np.stack([np.cov(codes[k == j].T) for j in range(3)])
    w, m, c, steps = classification_em(codes, weights, true_means, covs)
    assert 1 <= steps < 100
    # a fixed point: the partition its mixture makes is the one it was fitted to (independent numpy fit)
    from scipy.stats import multivariate_normal
    part = np.stack([np.log(w[j]) + multivariate_normal(m[j], c[j]).logpdf(codes) for j in range(3)], 1).argmax(1)
    np.testing.assert_allclose(w, np.bincount(part, minlength=3) / len(codes))
    for j in range(3):
        np.testing.assert_allclose(m[j], codes[part == j].mean(0))
        np.testing.assert_allclose(c[j], np.cov(codes[part == j].T, bias=True) + 1e-6 * np.eye(2))

    def classification_log_lik(w_, m_, c_):
        return sum(np.max(np.stack([np.log(w_[j]) + multivariate_normal(m_[j], c_[j]).logpdf(codes)
                                    for j in range(3)], 1), axis=1))
    # each step raises the classification likelihood
    values = [classification_log_lik(*classification_em(codes, weights, true_means, covs, max_iter=i)[:3])
              for i in (1, 2, 3)]
    assert values[0] <= values[1] + 1e-6 and values[1] <= values[2] + 1e-6
    # a component that would be left with too few codes stops it, keeping the last mixture
    w2, m2, c2, steps2 = classification_em(codes, [0.5, 0.5 - 1e-9, 1e-9], true_means + [[0, 0], [0, 0], [50, 50]],
                                           covs)
    assert steps2 == 0 and m2[2].tolist() == [50.0, 50.0]


def test_restarts_are_checked():
    codes, labels = _three_blobs(n=50)
    with pytest.raises(ValueError, match="restarts must be an integer >= 0"):
        fit_latent_gmm(codes, codes[:15], labels[:15], restarts=-1)


def test_pickle_is_refused(tmp_path):
    path = tmp_path / "gmm_params.pkl"
    path.write_bytes(pickle.dumps({"weights": np.ones(3)}))
    with pytest.raises(InputError, match="pickle"):
        LatentGMM.load(path)


def test_clustering_accuracy_known_answer():
    # clusters 5 -> 0, 3 -> 1, 7 -> 2; the third "3" is the single mistake
    assert clustering_accuracy([0, 0, 1, 1, 2, 2], [5, 5, 3, 3, 3, 7]) == pytest.approx(5 / 6)
    assert clustering_accuracy([0, 1, 2], [2, 0, 1]) == 1.0


def test_ellipse_and_manifold():
    gmm = LatentGMM(np.ones(1), np.zeros((1, 2)), np.diag([4.0, 1.0])[None], np.array([1]), np.array([1]))
    width, height, angle = gmm.ellipse(0, n_sigma=2)
    assert (width, height) == pytest.approx((8.0, 4.0)) and angle % 180 == pytest.approx(0.0)
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_size=2, hidden_size=16)).eval()
    grid = latent_manifold(model, n=20)
    assert grid.shape == (400, 1, 28, 28)
    corner = torch.tensor([[norm.ppf(0.05), norm.ppf(0.95)]], dtype=torch.float32)  # top-left: z2 high
    torch.testing.assert_close(grid[0], model.decode(corner)[0].detach())


def test_skimage_default_ssim_known_answers():
    from vaebook.gmm_vae import ssim_skimage_default

    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(ssim_skimage_default(x, x), 1.0)
    # a constant shift c changes only the luminance term: (2 mu (mu + c) + C1) / (mu^2 + (mu + c)^2 + C1)
    flat = torch.full((1, 1, 28, 28), 0.25)
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * 0.25 * 0.5 + c1) / (0.25 ** 2 + 0.5 ** 2 + c1)
    np.testing.assert_allclose(ssim_skimage_default(flat, flat + 0.25), expected, rtol=1e-6)


def test_labelled_holdout_is_seeded_and_balanced():
    labels = np.array([1, 4, 8] * 20)
    a, b = labelled_holdout(labels, 5, DIGITS, seed=7), labelled_holdout(labels, 5, DIGITS, seed=7)
    np.testing.assert_array_equal(a, b)
    assert np.bincount(labels[a], minlength=9)[[1, 4, 8]].tolist() == [5, 5, 5]




# --- the VAE as a job --------------------------------------------------------------------------------

def test_latent_codes_are_the_encoder_means_batch_by_batch():
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_size=3, hidden_size=16)).train()
    x = torch.rand(23, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    codes = latent_codes(model, x, batch_size=5)
    with torch.no_grad():
        expected = model.encoder(x)[0].numpy()   # independent: one pass, no batching
    np.testing.assert_allclose(codes, expected, atol=1e-6)
    assert codes.shape == (23, 3) and model.training   # the model's mode is restored


def test_train_vae_is_fit_with_the_same_checkpoint_name_history_and_weights(tmp_path):
    from vaebook.train import fit

    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    config = VAEConfig(latent_size=2, arch="mlp", hidden_size=16)
    settings = dict(epochs=2, batch_size=16, seed=3, device="cpu", name="t", data_key={"n": 64}, progress=False)
    ours = train_vae(x, config=config, cache=tmp_path / "job", **settings)
    direct = fit(lambda: VAE(config), x, cache=tmp_path / "fit", **settings)   # what train_vae did before jobs
    assert sorted(p.name for p in (tmp_path / "job").glob("*.pt")) == \
        sorted(p.name for p in (tmp_path / "fit").glob("*.pt"))
    pd.testing.assert_frame_equal(ours.history.drop(columns="seconds", errors="ignore"),
                                  direct.history.drop(columns="seconds", errors="ignore"))
    for key, value in direct.model.state_dict().items():
        torch.testing.assert_close(ours.model.state_dict()[key], value, rtol=0, atol=0)


def test_chapter_jobs_keep_the_checkpoint_names_the_notebook_had_when_it_called_fit(monkeypatch):
    """Known answer: executed with the smoke profile on a CPU, the chapter wrote the checkpoints
    gmm_vae-148-182bccdef919ff7d and gmm_vae-ten-2bfeb4c9bcd87371 before its models became jobs. Keys of
    format 2 add the thread count, precision and memory format; hashed as format 1, the jobs' model, data
    and training parts must still give those names."""
    from vaebook import train
    from vaebook.train import cache_key

    monkeypatch.setattr(train, "FORMAT_VERSION", 1)

    run = chapters.resolve("gmm_vae", "smoke", {"device": "cpu"})
    names = []
    for job in chapter.jobs(run):
        params = {"epochs": job.epochs, "batch_size": job.batch_size, "lr": job.lr, "seed": job.seed,
                  "binarize": job.binarize, "optimizer": "adam-fused", "data": job.data_key,
                  "extra": job.extra_key, "device_type": "cpu"}   # what vaebook.train.fit hashes
        names.append(f"{job.name}-{cache_key(job.model(), params)}")
    assert names[:2] == ["gmm_vae-148-182bccdef919ff7d", "gmm_vae-ten-2bfeb4c9bcd87371"]
    # then the robustness study's VAEs, seeds 1-4 (seed 0's is the chapter's own), each its own data key
    assert [n.rsplit("-", 1)[0] for n in names[2:]] == [f"gmm_vae-148-seed{s}" for s in range(1, 5)]
    jobs = chapter.jobs(run)
    assert [j.seed for j in jobs] == [0, 0, 1, 2, 3, 4]
    assert [j.data_key["seed"] for j in jobs[2:]] == [1, 2, 3, 4] and len(set(names)) == 6


def test_profiles_keep_the_notebooks_former_values_and_reject_bad_ones():
    import dataclasses

    from vaebook.config import ParameterError

    common = dict(batch_size=128, lr=1e-3, hidden_size=512, labelled_per_class=5, ten_latent_size=10, seed=0,
                  device="auto", precision="auto", threads=1, robust_pairs=5)
    expected = {
        "smoke": dict(epochs=1, train_subset=2000, test_subset=600, ten_epochs=1, ten_train_subset=2000,
                      ten_test_subset=1000),
        "default": dict(epochs=20, train_subset=None, test_subset=None, ten_epochs=15, ten_train_subset=None,
                        ten_test_subset=None),
        "full": dict(epochs=50, train_subset=None, test_subset=None, ten_epochs=50, ten_train_subset=None,
                     ten_test_subset=None),
    }
    for name, values in expected.items():
        assert dataclasses.asdict(chapter.PROFILES[name]) == {**common, **values}, name
    for bad, words in [({"labelled_per_class": 0}, "labelled_per_class must be an integer >= 1"),
                       ({"ten_train_subset": 0}, "ten_train_subset must be an integer >= 1"),
                       ({"ten_latent_size": 2.5}, "ten_latent_size must be an integer >= 1")]:
        with pytest.raises(ParameterError, match=words):
            chapters.resolve("gmm_vae", "smoke", bad)


# --- the chapter's tables and verdicts ----------------------------------------------------------------

def _labels(*y):
    from types import SimpleNamespace

    return SimpleNamespace(y=torch.tensor(y))


def test_split_counts_and_the_data_table_known_answer():
    table = split_counts({"a": _labels(1, 1, 4, 8, 8, 8), "b": _labels(4)}, DIGITS)
    assert table.index.tolist() == ["1", "4", "8", "all"] and table.index.name == "digit"
    assert table.to_dict("list") == {"a": [2, 1, 3, 6], "b": [0, 1, 0, 1]}
    d = chapter.ChapterData(_labels(1, 4), _labels(8), _labels(1, 1), None, None)
    table = chapter.data_table(d)
    assert table["source's training set"].tolist() == [5393, 4674, 4681, 14748]   # the source's own total
    assert table["training (labels unused)"].tolist() == [1, 1, 0, 2]


def test_mixture_table_known_answer():
    covariances = np.stack([np.diag([4.0, 1.0]), np.array([[2.0, 1.0], [1.0, 2.0]])])   # eigenvalues 4, 1 and 3, 1
    gmm = LatentGMM(np.array([0.25, 0.75]), np.array([[1.0, -2.0], [0.5, 3.25]]), covariances,
                    np.array([8, 1]), np.array([1, 8]))
    table = mixture_table(gmm)
    assert table.index.name == "cluster" and table["digit"].tolist() == [8, 1]
    assert table["weight π"].tolist() == [0.25, 0.75]
    assert table["mean m (z₁, z₂)"].tolist() == ["(1.00, -2.00)", "(0.50, 3.25)"]
    assert table["σ along the axes"].tolist() == ["2.00, 1.00", "1.73, 1.00"]


def test_classification_report_known_answer():
    labels = np.array([1, 1, 1, 4, 4, 8, 8, 8, 8, 1])
    predicted = np.array([1, 4, 4, 4, 8, 8, 8, 8, 1, 1])
    report = classification_report(labels, predicted, DIGITS)
    assert report.confusion.to_numpy().tolist() == [[2, 2, 0], [0, 1, 1], [1, 0, 3]]   # rows: true 1, 4, 8
    assert report.confusion.index.name == "true digit" and report.confusion.columns.name == "predicted"
    assert report.errors == 4 and report.scores["accuracy"] == pytest.approx(0.6)
    # per-digit F1 by hand: 1: P 2/3, R 2/4 -> 4/7; 4: P 1/3, R 1/2 -> 2/5; 8: P 3/4, R 3/4 -> 3/4
    assert report.scores["macro-F1"] == pytest.approx((4 / 7 + 2 / 5 + 3 / 4) / 3)
    assert report.most_common_confusion() == (1, 4, 2) and not report.target_met
    assert report.describe("smoke").splitlines() == [
        f"accuracy on all 10 MNIST test images of 1, 4 and 8: 60.00% (4 errors); macro-F1 "
        f"{(4 / 7 + 2 / 5 + 3 / 4) / 3:.4f}, micro-F1 0.6000",
        "target (full profile) accuracy >= 97%: NOT met in this run (profile 'smoke')",
        "most common confusion: true 1 predicted as 4 (2 of 4 errors)"]
    assert classification_report(labels, predicted, DIGITS, target=0.6).target_met   # ">=": 0.6 meets 0.6
    # ties go to the first in row order; without errors there is no confusion line
    tie = classification_report(np.array([1, 4, 8]), np.array([4, 8, 8]), DIGITS)
    assert tie.most_common_confusion() == (1, 4, 1)
    perfect = classification_report(labels, labels, DIGITS)
    assert perfect.most_common_confusion() is None and len(perfect.describe("full").splitlines()) == 2
    assert "accuracy >= 97%: met in this run" in perfect.describe("full")
    with pytest.raises(ValueError, match="one length"):
        classification_report(labels, predicted[:3], DIGITS)


def test_all_correct_bound_is_clopper_pearson():
    for n in (1, 15, 100):
        exact = binomtest(n, n).proportion_ci(0.95, method="exact").low
        assert all_correct_lower_bound(n) == pytest.approx(exact, rel=1e-9)
        assert all_correct_lower_bound(n) == pytest.approx(beta.ppf(0.025, n, 1), rel=1e-9)
    assert f"{all_correct_lower_bound(15):.1%}" == "78.2%"     # the chapter's "above about 78%"
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        all_correct_lower_bound(0)


def test_accuracy_margin_and_misclassified_known_answers():
    assert accuracy_margin(0.5, 100) == pytest.approx(0.098)          # 1.96 * sqrt(0.25 / 100)
    assert accuracy_margin(1.0, 10) == 0.0
    with pytest.raises(ValueError):
        accuracy_margin(1.5, 10)
    labels, predicted = [1, 4, 8, 1, 4], [1, 8, 8, 4, 4]
    assert misclassified(labels, predicted).tolist() == [1, 3]
    assert misclassified(labels, predicted, limit=1).tolist() == [1]
    assert misclassified(labels, labels).tolist() == []


def test_reconstruction_table_known_answer():
    """Black images reconstructed as flat grey c: 1 − MSE = 1 − c², and with no variance both SSIMs reduce
    to the luminance term C1 / (c² + C1), C1 = (0.01 · 1)²; the row "all" weights images, not digits."""
    x = torch.zeros(4, 1, 28, 28)
    c = torch.tensor([0.1, 0.2, 0.2, 0.2])
    table = reconstruction_table(x, c.view(4, 1, 1, 1).expand(4, 1, 28, 28).clone(), np.array([1, 4, 4, 4]))
    c1 = 1e-4
    lum = lambda v: c1 / (v ** 2 + c1)   # noqa: E731
    assert table.index.tolist() == [1, 4, "all"]
    np.testing.assert_allclose(table["1 − MSE"], [0.99, 0.96, (0.99 + 3 * 0.96) / 4], rtol=1e-5)
    for column in ("SSIM", "SSIM, scikit-image defaults"):
        np.testing.assert_allclose(table[column], [lum(0.1), lum(0.2), (lum(0.1) + 3 * lum(0.2)) / 4], rtol=1e-4)


def test_cluster_majorities_known_answer():
    clusters = [0, 0, 0, 1, 1, 2, 2, 3]
    labels = [5, 5, 6, 5, 5, 7, 7, 7]
    contingency, split, unclaimed = cluster_majorities(clusters, labels, classes=[5, 6, 7, 9])
    assert contingency.loc[0].tolist() == [2, 1, 0] and contingency.columns.tolist() == [5, 6, 7]
    assert split == [5, 7]          # 5 is the majority of clusters 0 and 1, 7 of clusters 2 and 3
    assert unclaimed == [6, 9]      # 6 is never a majority; 9 never appears


def test_compare_clusterings_on_separated_blobs_is_perfect():
    rng = np.random.default_rng(0)
    classes = np.array([0, 2, 5, 7])
    centres = 10 * np.eye(4)[:, :3] - 5

    def blobs(n):
        y = np.repeat(classes, n)
        return centres[np.searchsorted(classes, y)] + rng.normal(scale=0.3, size=(len(y), 3)), y

    (train_codes, train_y), (test_codes, test_y) = blobs(100), blobs(30)
    result = compare_clusterings(train_codes, train_y, test_codes, test_y, labelled_per_class=3, seed=0)
    assert isinstance(result, ClusteringComparison) and result.labelled == 12
    assert (result.unsupervised, result.seeded_hungarian, result.seeded) == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(result.matched_digits, test_y)
    assert result.split_digits == [] and result.unclaimed_digits == []
    assert np.array_equal(np.sort(result.contingency.to_numpy(), axis=1)[:, -1], [30] * 4)   # one digit a cluster


def test_ten_digit_table_and_cluster_captions_known_answer():
    from types import SimpleNamespace

    c = ClusteringComparison(unsupervised=0.5, seeded_hungarian=0.6, seeded=0.55, labelled=50,
                             clusters=np.zeros(1), matched_digits=np.zeros(1), contingency=pd.DataFrame(),
                             split_digits=[3, 8], unclaimed_digits=[])
    p = chapter.PROFILES["smoke"]
    table = chapter.ten_digit_table(c, p)
    assert table["test accuracy"].tolist() == [0.5, 0.6, 0.55, 0.9446, 0.843]   # VaDE and DEC as published
    assert table.index[0] == "VAE (d = 10) + GMM, unsupervised"
    assert table["labels used"].iloc[1] == "50 to start the means; map from test labels"
    order, captions = chapter.cluster_majority_captions(ClusteringComparison(
        0.5, 0.6, 0.55, 50, np.zeros(1), np.zeros(1), pd.DataFrame([[1, 9], [8, 2], [3, 3]], index=[0, 1, 2],
                                                                   columns=[3, 5]), [], []))
    # cluster 1 is mostly 3s (8 of 10), cluster 2 a tie (3 first), cluster 0 mostly 5s (9 of 10)
    assert order.tolist() == [1, 2, 0] and captions == ["3\n80%", "3\n50%", "5\n90%"]


def test_source_comparison_known_answer():
    from vaebook.data import Split

    train = Split(torch.zeros(6, 1, 28, 28), torch.tensor([1, 1, 4, 8, 8, 8]), "toy")
    recon = pd.DataFrame({"1 − MSE": [0.95], "SSIM": [0.5]}, index=["all"])
    table = chapter.source_comparison({"accuracy": 0.9, "mean of macro- and micro-F1": 0.85}, recon, train, 600)
    assert table["this book"].tolist() == ["0.9000", "0.8500", "0.9500 / 0.5000", "6 (2 / 1 / 3)",
                                           "Gaussian N(0, I)"]
    assert table["source"].tolist() == ["1.0", "not reported", "not reported", "14,748 (5,393 / 4,674 / 4,681)",
                                        "uniform (a bug)"]
    assert table.loc["classification accuracy", "this book measured on"] == "all 600 MNIST test images of 1, 4, 8"


def test_training_table_test_elbo_is_seeded_and_leaves_the_global_generator_alone():
    from types import SimpleNamespace

    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_size=2, hidden_size=16)).eval()
    x = torch.rand(30, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    result = SimpleNamespace(model=model, history=pd.DataFrame({"loss": [3.0, 2.0]}), seconds_per_epoch=0.123,
                             loaded=True)
    torch.manual_seed(11)
    state = torch.get_rng_state()
    first = chapter.training_table(result, x, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(12)
    second = chapter.training_table(result, x, seed=5)
    torch.manual_seed(5)
    expected = model.evaluate(x)["neg_elbo"]    # one z per image from the seeded global generator
    assert first["test −ELBO (nats)"].item() == second["test −ELBO (nats)"].item() == pytest.approx(expected)
    assert first.iloc[0][["epochs", "seconds per epoch (median)", "final training −ELBO (nats)"]].tolist() == \
        [2, 0.12, 2.0]


def test_draw_mixture_draws_ellipses_labels_and_labelled_stars():
    import matplotlib.pyplot as plt

    codes, labels = _three_blobs(n=50)
    val = np.r_[0:5, 50:55, 100:105]
    gmm = fit_latent_gmm(codes, codes[val], labels[val], DIGITS)
    fig, ax = plt.subplots()
    draw_mixture(gmm, ax, labelled=(codes[val], labels[val]))
    assert len(ax.patches) == 3 * 2 * 2          # 3 components x (1, 2 sigma) x (black outline, colour)
    assert [t.get_text() for t in ax.texts] == [f"cluster {k} = {d}" for k, d in enumerate(gmm.cluster_to_digit)]
    stars = [np.asarray(col.get_offsets()) for col in ax.collections]
    assert [len(s) for s in stars] == [5, 5, 5]
    np.testing.assert_allclose(stars[1], codes[val][labels[val] == 4])
    plt.close(fig)


# --- the errors, the robustness study ------------------------------------------------------------------

def test_error_pairs_ink_width_and_and_list_known_answers():
    confusion = pd.DataFrame([[5, 1, 3], [0, 4, 3], [0, 2, 6]], index=[1, 4, 8], columns=[1, 4, 8])
    pairs = error_pairs(confusion)
    assert pairs.to_dict() == {"1 → 8": 3, "4 → 8": 3, "8 → 4": 2, "1 → 4": 1}   # ties keep row order
    assert error_pairs(pd.DataFrame(np.eye(2, dtype=int), index=[1, 4], columns=[1, 4])).empty
    x = np.zeros((3, 1, 28, 28))
    x[0, 0, 10, 5], x[0, 0, 20, 12] = 1.0, 0.9         # ink from column 5 to 12: 8 columns
    x[1, 0, :, 7] = 0.4                                 # below the threshold: no ink
    x[2, 0, 3, 27] = 1.0
    assert ink_width(x).tolist() == [8, 0, 1]
    assert ink_width(torch.from_numpy(x), threshold=0.3).tolist() == [8, 1, 1]
    assert [and_list(["a"]), and_list(["a", "b"]), and_list([1, 4, 8])] == ["a", "a and b", "1, 4 and 8"]
    with pytest.raises(ValueError):
        and_list([])


def test_labelled_image_grid_captions_each_image():
    import matplotlib.pyplot as plt

    images = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    fig = labelled_image_grid(images, [f"true {i}" for i in range(5)], ncols=3, width=3.0, row_height=1.0)
    assert tuple(fig.get_size_inches()) == (3.0, 2.0) and len(fig.axes) == 6
    assert [t.get_text() for ax in fig.axes for t in ax.texts] == [f"true {i}" for i in range(5)]
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), 1 - images[1, 0].numpy(), rtol=1e-6)
    plt.close(fig)


def test_robustness_table_known_answer():
    study = pd.DataFrame({"seed": [0, 1], "old": [0.98254, 0.8716], "old_ll": [-2.9990, -3.08441],
                          "best_ll": [-2.9990, -2.99932], "new": [0.98317, 0.97767],
                          "new_best_map": [0.98317, 0.97767], "qda": [0.9851, 0.9812]}).set_index("seed")
    table = chapter.robustness_table(study)
    assert table.columns.tolist() == ["labelled start", "its log p", "best log p", "this method", "all labels"]
    assert table.loc[1].tolist() == [87.16, -3.084, -2.999, 97.77, 98.12]
    assert chapter.robust_seeds(chapter.PROFILES["default"]) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="one VAE per seed"):
        chapter.robustness_study([], chapter.PROFILES["default"])


def test_mixed_clusters_known_answer():
    table = pd.DataFrame([[49, 45, 6], [90, 5, 5], [0, 0, 0], [30, 30, 40]], index=[0, 1, 2, 3], columns=[4, 9, 3])
    # cluster 1 is 90% one digit, cluster 2 is empty; cluster 3's most common digit is 3 (40%), then 4 (first tie)
    assert mixed_clusters(table) == [(3, 3, 0.4, 4, 0.3), (0, 4, 0.49, 9, 0.45)]
    assert mixed_clusters(table, below=0.45) == [(3, 3, 0.4, 4, 0.3)]
