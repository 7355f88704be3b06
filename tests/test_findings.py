"""The findings page: verdicts computed from results files, settled only over enough seeds."""

import json

from vaebook import findings
from vaebook.findings import CLAIMS, FAILS, HOLDS, UNTESTED, findings_markdown


def _record(chapter, metrics, seeds=(0, 1, 2)):
    return {"chapter": chapter, "profile": "default", "seeds": list(seeds), "metrics": metrics,
            "provenance": {k: "x" for k in ("commit", "dirty", "started", "wall_seconds", "device", "threads",
                                            "precision", "versions")}}


def _claim(chapter):
    return next(c for c in CLAIMS if c.chapter == chapter)


def test_a_comparison_needs_three_seeds():
    claim = _claim("latent_size")
    rising = {"test_psnr": [14.0, 16.0, 20.0], "test_psnr_min_step": 0.53}
    measured, verdict = claim.judge(_record("latent_size", rising))
    assert verdict == HOLDS
    assert measured == "mean test PSNR 14.0 / 16.0 / 20.0 dB over the seeds; smallest step up +0.53 dB"
    # the means rise, but on some seed one step did not: the claim does not hold
    assert claim.judge(_record("latent_size", {**rising, "test_psnr_min_step": -0.2}))[1] == FAILS
    assert claim.judge(_record("latent_size", {**rising, "test_psnr_min_step": 0.0}))[1] == FAILS
    # one latent size: no step, not settled
    assert claim.judge(_record("latent_size", {"test_psnr": [14.0], "test_psnr_min_step": None}))[1].startswith(UNTESTED)
    # the old results file (no step) is not guessed from the means
    assert "did not measure test_psnr_min_step" in claim.judge(_record("latent_size", {"test_psnr": [14.0, 16.0]}))[1]
    measured, verdict = claim.judge(_record("latent_size", rising, seeds=[0]))
    assert "+0.53 dB" in measured and verdict.startswith(UNTESTED) and "1 seed" in verdict


def test_missing_metrics_and_runs_are_untested_not_guessed():
    claim = _claim("flow_vae")
    assert claim.judge(None)[1] == f"{UNTESTED}: not run"
    # a results file from before the seeds: its one-seed NLLs do not settle the claim
    old = _record("flow_vae", {"nll_vae": 90.0, "nll_best_flow": 89.0})
    assert claim.judge(old) == ("not measured", f"{UNTESTED}: the run did not measure nll_vae_seeds, nll_planar_seeds")


def test_the_gan_claim_is_untested_while_the_gan_has_not_trained():
    claim = _claim("gan_vs_vae")
    failed = {"fid_gan": 230.0, "fid_vae": 240.0, "precision_gan": 0.35, "precision_vae": 0.8,
              "min_digit_share_gan": 0.02, "max_digit_share_gan": 0.33, "vae_trained": 1.0}
    assert "did not train" not in claim.judge(_record("gan_vs_vae", failed))[1]
    assert "trained on 0 of 1 seeds" in claim.judge(_record("gan_vs_vae", failed))[1]
    trained = {**failed, "precision_gan": 0.7, "min_digit_share_gan": 0.07, "max_digit_share_gan": 0.13}
    assert claim.judge(_record("gan_vs_vae", trained))[1] == HOLDS
    assert claim.judge(_record("gan_vs_vae", {**trained, "fid_gan": 250.0}))[1] == FAILS


def test_the_gan_claim_needs_every_seed_trained_and_better():
    claim = _claim("gan_vs_vae")
    per_seed = {"fid_gan": [90.0, 95.0, 100.0], "fid_vae": [230.0, 235.0, 240.0],
                "precision_gan": [0.65, 0.7, 0.62], "precision_vae": [0.8, 0.85, 0.79],
                "min_digit_share_gan": [0.06, 0.07, 0.05],
                "max_digit_share_gan": [0.14, 0.13, 0.15], "vae_trained": [1.0, 1.0, 1.0]}
    measured, verdict = claim.judge(_record("gan_vs_vae", per_seed))
    assert verdict == HOLDS and "90.0 / 95.0 / 100.0" in measured
    assert "precision GAN 0.65 / 0.70 / 0.62 vs VAE 0.80 / 0.85 / 0.79" in measured
    # one seed's GAN below the precision target: the claim is not settled, and the page says on how many it trained
    one_failed = {**per_seed, "precision_gan": [0.65, 0.41, 0.62]}
    assert "trained on 2 of 3 seeds" in claim.judge(_record("gan_vs_vae", one_failed))[1]
    # trained everywhere but worse on one seed: does not hold
    assert claim.judge(_record("gan_vs_vae", {**per_seed, "fid_gan": [90.0, 250.0, 100.0]}))[1] == FAILS
    # a GAN trained on every seed against a VAE that failed its own checks on one: not settled either
    weak_vae = claim.judge(_record("gan_vs_vae", {**per_seed, "vae_trained": [1.0, 0.0, 1.0]}))[1]
    assert "the VAE passed its own checks on 2 of 3 seeds" in weak_vae


def test_the_page_prefers_the_reference_run_and_reports_a_broken_file(tmp_path):
    build, ref = tmp_path / "build", tmp_path / "ref"
    build.mkdir(), ref.mkdir()
    (build / "latent_size.json").write_text(json.dumps(_record("latent_size", {"test_psnr": [14.0, 16.0, 20.0],
                                                                            "test_psnr_min_step": 1.5}, [0])))
    (ref / "latent_size.json").write_text(json.dumps(_record("latent_size", {"test_psnr": [15.0, 17.0, 22.0],
                                                                        "test_psnr_min_step": 1.2})))
    (build / "gmm_vae.json").write_text("{broken")
    page = findings_markdown(build, ref)
    row = next(line for line in page.splitlines() if "latent space grows" in line)
    assert "14.0 / 16.0 / 20.0 dB" in row and "15.0 / 17.0 / 22.0 dB" in row and f"{HOLDS} (reference run)" in row
    gmm = next(line for line in page.splitlines() if "1, 4 and 8" in line)
    assert "unreadable results file" in gmm and "results file unreadable (this build)" in gmm
    assert page.count("\n|") == len(CLAIMS) + 2  # header, rule, one row per claim: no stray pipes


def test_the_flow_claim_needs_the_planar_flow_better_on_every_seed():
    claim = _claim("flow_vae")
    assert claim.section == "Across seeds" and claim.per_seed
    per_seed = {"nll_vae_seeds": [98.31, 98.5, 98.2], "nll_planar_seeds": [97.33, 97.9, 98.0]}
    measured, verdict = claim.judge(_record("flow_vae", per_seed))
    assert verdict == HOLDS
    assert measured == "test NLL per seed: plain VAE 98.31 / 98.50 / 98.20 nats, planar flow 97.33 / 97.90 / 98.00 nats"
    # better on two seeds, worse (or equal) on one: does not hold
    assert claim.judge(_record("flow_vae", {**per_seed, "nll_planar_seeds": [97.33, 98.6, 98.0]}))[1] == FAILS
    assert claim.judge(_record("flow_vae", {**per_seed, "nll_planar_seeds": [97.33, 98.5, 98.0]}))[1] == FAILS
    # two seeds: measured, not settled
    measured, verdict = claim.judge(_record("flow_vae", per_seed, seeds=[0, 1]))
    assert "97.33" in measured and verdict == f"{UNTESTED}: 2 seeds (a verdict needs 3)"
    # no planar model (planar_ks empty): untested, and the page says why
    measured, verdict = claim.judge(_record("flow_vae", {"nll_vae_seeds": [98.31], "nll_planar_seeds": []}))
    assert measured == "test NLL per seed: plain VAE 98.31 nats, planar flow none"
    assert verdict == f"{UNTESTED}: no planar model was compared with the VAE across seeds"
    # a missing value on one seed is not read as a win or a loss
    missing = {**per_seed, "nll_planar_seeds": [97.33, None, 98.0]}
    assert claim.judge(_record("flow_vae", missing))[1] == f"{UNTESTED}: an NLL is missing on some seed"


def test_the_beta_vae_drop_needs_a_drop_on_every_seed():
    claim = _claim("beta_vae")
    assert claim.section == "Across seeds" and claim.per_seed
    assert claim.metrics == ("psnr_source_beta", "psnr_source_beta_drop_15_20")
    per_seed = {"psnr_source_beta": [16.5, 19.0, 20.4, 20.1], "psnr_source_beta_drop_15_20": [0.31, 0.12, 0.4]}
    measured, verdict = claim.judge(_record("beta_vae", per_seed))
    assert verdict == HOLDS
    assert measured == ("test PSNR at the source's β per latent size 16.5 / 19.0 / 20.4 / 20.1 dB (own seed); "
                        "PSNR(d = 15) − PSNR(d = 20) per seed +0.31 / +0.12 / +0.40 dB")
    # a rise (or no change) on one seed: does not hold, although the means drop
    rise = claim.judge(_record("beta_vae", {**per_seed, "psnr_source_beta_drop_15_20": [0.31, -0.05, 0.4]}))
    assert rise[1] == FAILS and rise[0].endswith("+0.31 / −0.05 / +0.40 dB")
    assert claim.judge(_record("beta_vae", {**per_seed, "psnr_source_beta_drop_15_20": [0.31, 0.0, 0.4]}))[1] == FAILS
    # two seeds: measured, not settled
    measured, verdict = claim.judge(_record("beta_vae", per_seed, seeds=[0, 1]))
    assert "+0.31" in measured and verdict == f"{UNTESTED}: 2 seeds (a verdict needs 3)"
    # d = 15 or 20 not run (the smoke profile): no drops, untested, and the page says why
    measured, verdict = claim.judge(_record("beta_vae", {"psnr_source_beta": [14.0, 15.0],
                                                         "psnr_source_beta_drop_15_20": []}))
    assert measured.endswith("per seed none")
    assert verdict == f"{UNTESTED}: d = 15 and d = 20 were not both run at the source's β"
    missing = {**per_seed, "psnr_source_beta_drop_15_20": [0.31, None, 0.4]}
    assert claim.judge(_record("beta_vae", missing))[1] == f"{UNTESTED}: a drop is missing on some seed"
    # a results file from before the seeds (one run's PSNRs only) is not read as a verdict
    old = _record("beta_vae", {"psnr_source_beta": [16.5, 19.0, 20.4, 20.1]})
    assert claim.judge(old) == ("not measured", f"{UNTESTED}: the run did not measure psnr_source_beta_drop_15_20")
