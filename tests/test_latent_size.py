"""Tests for the latent-size chapter's helpers (vaebook.chapters.latent_size)."""

from __future__ import annotations

import pandas as pd

from vaebook.chapters.latent_size import last_epoch_change


def _h(values):
    return pd.DataFrame({"epoch": range(1, len(values) + 1), "test_neg_elbo": values})


def test_last_epoch_change_says_which_models_still_improve():
    text, falling = last_epoch_change({2: _h([160.0, 155.5, 155.25]), 16: _h([110.0, 106.0, 106.5])})
    assert falling == [2]
    assert text == ("Over the last of the 3 epochs the test negative ELBO changed by -0.25 nats for d = 2, "
                    "+0.50 nats for d = 16: only the models with d = 2 were still improving when training "
                    "stopped.")
    text, falling = last_epoch_change({4: _h([140.0, 139.0])})
    assert falling == [4] and "every model was still improving" in text and "-1.00 nats for d = 4" in text
    text, falling = last_epoch_change({4: _h([140.0, 141.0])})
    assert falling == [] and "no model was still improving" in text


def test_last_epoch_change_with_one_epoch():
    text, falling = last_epoch_change({2: _h([236.0]), 4: _h([241.0])})
    assert falling == [] and text == "With a single epoch there is no last-epoch change to report."
