"""The book's findings page: each claim of the five source studies, what this book measured (this build and
the committed reference run, read from their results files), and a verdict.

A verdict is computed, never typed: :class:`Claim` names the metrics it reads and a test of them. It is
"holds" or "does not hold" only when the run measured the claim over at least :data:`MIN_SEEDS` seeds (or,
for a claim about a method's robustness, over the draws it names); otherwise "untested here", with the
reason. The reference run's verdict is preferred when there is one, since it is the larger run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .report import REFERENCE_DIR, ResultsError, read_results
from .sample_analysis import COVERAGE_RANGE, MIN_GAN_PRECISION

MIN_SEEDS = 3
HOLDS, FAILS, UNTESTED = "holds", "does not hold", "untested here"


def _fmt(values, unit: str = "", digits: int = 1) -> str:
    values = values if isinstance(values, list) else [values]
    return " / ".join("—" if v is None else f"{v:.{digits}f}" for v in values) + (f" {unit}" if unit else "")


@dataclass(frozen=True)
class Claim:
    """One claim of a source study and how a results file settles it.

    ``metrics``: the names the test reads. ``test(m)`` gets those metrics and returns (what was measured,
    True if the claim holds / False if not / None if the numbers cannot settle it, why not).
    ``per_seed``: the claim compares models, so it needs :data:`MIN_SEEDS` seeds to be settled.
    """

    study: str
    claim: str
    chapter: str
    section: str
    metrics: tuple[str, ...]
    test: Callable[[dict], tuple[str, bool | None, str]]
    per_seed: bool = True

    def judge(self, record: dict | str | None) -> tuple[str, str]:
        """(what the run measured, verdict) for one results record (None: not executed; a string: why its
        file could not be read)."""
        if record is None:
            return "not run", UNTESTED + ": not run"
        if isinstance(record, str):
            return record, UNTESTED + ": results file unreadable"
        m = record["metrics"]
        missing = [k for k in self.metrics if k not in m]
        if missing:
            return "not measured", f"{UNTESTED}: the run did not measure {', '.join(missing)}"
        measured, holds, why = self.test({k: m[k] for k in self.metrics})
        if holds is None:
            return measured, f"{UNTESTED}: {why}"
        if self.per_seed and len(record["seeds"]) < MIN_SEEDS:
            n = len(record["seeds"])
            return measured, f"{UNTESTED}: {n} seed{'s' if n != 1 else ''} (a verdict needs {MIN_SEEDS})"
        return measured, HOLDS if holds else FAILS


def _latent_size(m):
    # test_psnr: per latent size, the mean over the seeds; test_psnr_min_step: the smallest PSNR step up over
    # every seed and consecutive pair of sizes, so the claim holds only if the PSNR rose at every step on every seed
    psnr, step = m["test_psnr"], m["test_psnr_min_step"]
    if step is None:
        return f"mean test PSNR {_fmt(psnr, 'dB')} over the seeds", None, "no step up in d was measured"
    return (f"mean test PSNR {_fmt(psnr, 'dB')} over the seeds; smallest step up {step:+.2f} dB", step > 0, "")


def _gk_recovery(m):
    errs = [m[f"lm_median_abs_err_{p}"] for p in "abgk"]
    return (f"median absolute error of A, B, g, k at the largest n: {_fmt(errs, digits=3)}",
            all(e is not None and e < 0.05 for e in errs), "")


def _flows(m):
    # per seed: the test NLL of the plain VAE and of the planar model with the most layers (trained with every
    # seed, scored on the same test images); the claim holds only if the planar model's is lower on every seed
    vae, planar = _as_list(m["nll_vae_seeds"]), _as_list(m["nll_planar_seeds"])
    shown = [_fmt(v, "nats", 2) if v else "none" for v in (vae, planar)]
    measured = f"test NLL per seed: plain VAE {shown[0]}, planar flow {shown[1]}"
    if not vae or not planar:
        return measured, None, "no planar model was compared with the VAE across seeds"
    if len(vae) != len(planar) or any(v is None for v in vae + planar):
        return measured, None, "an NLL is missing on some seed"
    return measured, all(p < v for v, p in zip(vae, planar)), ""


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _pct(values) -> str:
    return " / ".join("—" if v is None else f"{v:.1%}" for v in values)


def _gan(m):
    # trained on every seed: recognisable digits of every class (the FID comparison is the claim itself, so
    # not a condition); the claim holds only if the GAN's FID is lower on every seed
    low, high = _as_list(m["min_digit_share_gan"]), _as_list(m["max_digit_share_gan"])
    precision, precision_vae = _as_list(m["precision_gan"]), _as_list(m["precision_vae"])
    fid_gan, fid_vae = _as_list(m["fid_gan"]), _as_list(m["fid_vae"])
    values = low + high + precision + fid_gan + fid_vae
    # the VAE's precision is shown, not judged: the claim is about FID, and a reader should see where the
    # VAE is ahead
    measured = (f"FID GAN {_fmt(fid_gan)} vs VAE {_fmt(fid_vae)}, precision GAN {_fmt(precision, digits=2)} vs "
                f"VAE {_fmt(precision_vae, digits=2)}, GAN's rarest digit {_pct(low)}, commonest {_pct(high)} "
                f"of its samples")
    if any(v is None for v in values):
        return measured, None, "a score is missing"
    (share_lo, share_hi), min_p = COVERAGE_RANGE, MIN_GAN_PRECISION
    trained = [lo >= share_lo and hi <= share_hi and p >= min_p for lo, hi, p in zip(low, high, precision)]
    if not all(trained):
        return measured, None, (f"the GAN trained on {sum(trained)} of {len(trained)} seeds (digit shares "
                                f"{share_lo:.0%}–{share_hi:.0%} and precision at least {min_p:g} needed on each)")
    # as on the chapter page, a comparison also needs a VAE that passed its own checks on every seed
    vae_ok = [v == 1 for v in _as_list(m["vae_trained"])]
    if not all(vae_ok):
        return measured, None, (f"the GAN trained on every seed, but the VAE passed its own checks on "
                                f"{sum(vae_ok)} of {len(vae_ok)} seeds, and a comparison needs both trained")
    return measured, all(g < v for g, v in zip(fid_gan, fid_vae)), ""


def _beta_drop(m):
    # psnr_source_beta: per latent size, the test PSNR at the source's β with the chapter's own seed;
    # psnr_source_beta_drop_15_20: per seed, PSNR(d = 15) − PSNR(d = 20) (empty when either size was not run);
    # the claim holds only if the PSNR dropped (a positive drop) on every seed
    psnr, drops = _as_list(m["psnr_source_beta"]), _as_list(m["psnr_source_beta_drop_15_20"])
    shown = (" / ".join("—" if v is None else f"{v:+.2f}".replace("-", "−") for v in drops) + " dB"
             if drops else "none")
    measured = (f"test PSNR at the source's β per latent size {_fmt(psnr, 'dB')} (own seed); "
                f"PSNR(d = 15) − PSNR(d = 20) per seed {shown}")
    if not drops:
        return measured, None, "d = 15 and d = 20 were not both run at the source's β"
    if any(v is None for v in drops):
        return measured, None, "a drop is missing on some seed"
    return measured, all(v > 0 for v in drops), ""


def _gmm(m):
    acc = [a for a in m["accuracy_148"] if a is not None]
    if not acc:
        return "no accuracy", None, "no draw was scored"
    return (f"test accuracy over {len(acc)} (seed, draw) pairs: {min(acc):.1%} – {max(acc):.1%}",
            min(acc) >= 0.999, "")


CLAIMS: tuple[Claim, ...] = (
    Claim("latent size", "Reconstructions get better as the latent space grows from 2 to 4 to 16 dimensions.",
          "latent_size", "Across seeds", ("test_psnr", "test_psnr_min_step"), _latent_size),
    Claim("flow-VAE", "Levenberg–Marquardt on quantiles recovers a g-and-k's parameters (here: median "
          "absolute error below 0.05 for each at the largest sample size).", "gk_distribution",
          "How well are known parameters recovered?",
          ("lm_median_abs_err_a", "lm_median_abs_err_b", "lm_median_abs_err_g", "lm_median_abs_err_k"),
          _gk_recovery, per_seed=False),  # a simulation study: its own seeds are the samples
    Claim("flow-VAE", "Normalizing flows in the posterior improve the VAE's test likelihood.", "flow_vae",
          "Across seeds", ("nll_vae_seeds", "nll_planar_seeds"), _flows),
    Claim("GAN vs VAE", "The GAN draws better digits than the VAE (lower FID).", "gan_vs_vae", "Across seeds",
          ("fid_gan", "fid_vae", "precision_gan", "precision_vae", "min_digit_share_gan", "max_digit_share_gan",
           "vae_trained"),
          _gan),
    Claim("β-VAE", "Reconstruction quality drops from d = 15 to d = 20 (source: 20.77 → 18.88 dB PSNR).",
          "beta_vae", "Across seeds", ("psnr_source_beta", "psnr_source_beta_drop_15_20"), _beta_drop),
    Claim("GMM-VAE", "A Gaussian mixture on a 2-D VAE latent classifies digits 1, 4 and 8 perfectly (source: "
          "accuracy 1.0).", "gmm_vae", "Is the classifier robust?", ("accuracy_148",), _gmm, per_seed=False),
)


def _read(path: Path) -> dict | str | None:
    if not path.exists():
        return None
    try:
        return read_results(path)
    except ResultsError as exc:
        return f"unreadable results file ({exc})".replace("|", "/")


def findings_markdown(results_dir: Path, reference_dir: Path = REFERENCE_DIR) -> str:
    """The findings page (MyST Markdown): one row per claim, this build and the reference run side by side."""
    lines = ["# Findings", "",
             "Each row is a claim of one of the five source studies, what this book measured in this build "
             "and in the committed reference run (`book/reference/`, a larger profile), and the verdict. "
             "Numbers and verdicts are read from the chapters' results files (`book/generated/results/`), "
             f"so they change with every build. A claim that compares models is settled only over at least "
             f"{MIN_SEEDS} seeds; until then it is *{UNTESTED}*, with the measured numbers shown.", "",
             "| claim (source study, where) | this build | reference run | verdict |", "|---|---|---|---|"]
    for claim in CLAIMS:
        build = _read(results_dir / f"{claim.chapter}.json")
        reference = _read(reference_dir / f"{claim.chapter}.json")
        b_measured, b_verdict = claim.judge(build)
        r_measured, r_verdict = claim.judge(reference) if reference is not None else ("no reference run", "")
        verdict = (f"{r_verdict} (reference run)" if reference is not None and not r_verdict.startswith(UNTESTED)
                   else f"{b_verdict} (this build)")
        lines.append(f"| {claim.claim} ({claim.study}; {{doc}}`{claim.chapter}`, *{claim.section}*) | {b_measured} | "
                     f"{r_measured} | {verdict} |")
    return "\n".join(lines) + "\n"
