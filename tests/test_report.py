"""The chapters' results files and glued numbers (vaebook.report)."""

import json
import math

import numpy as np
import pytest

from vaebook.config import ParameterError
from vaebook.chapters import resolve
from vaebook.report import Report, ResultsError, check_results, read_results


@pytest.fixture
def report():
    return Report(resolve("latent_size", "smoke", {}))


def test_results_file_follows_the_schema_and_round_trips(report, tmp_path):
    report.metric("psnr", [20.5, np.float32(21.25), float("nan")])
    report.metric("fid_gan", np.float64(12.5))
    path = report.write(tmp_path)
    assert path == tmp_path / "latent_size.json"
    record = read_results(path)
    assert record["chapter"] == "latent_size" and record["profile"] == "smoke"
    assert record["seeds"] == [0, 1]     # the smoke profile trains each latent size with seeds 0 and 1
    # JSON has no NaN: a value that could not be measured is written as null
    assert record["metrics"] == {"psnr": [20.5, 21.25, None], "fid_gan": 12.5}
    prov = record["provenance"]
    assert prov["device"] == "cpu" and prov["wall_seconds"] >= 0 and isinstance(prov["dirty"], bool)
    assert prov["versions"]["torch"] and prov["precision"] == report.run.params.precision
    json.loads(path.read_text())  # strict JSON


def test_glue_formats_once_and_metric_glues_lists(report):
    assert report.glue("gain", 1.234, "+.2f") == "+1.23"
    report.metric("psnr_by_size", [17.5, 20.08], ".1f")
    assert report.glued == {"gain": "+1.23", "psnr_by_size": "17.5 / 20.1"}


@pytest.mark.parametrize("bad", ["Gain", "1x", "a-b", ""])
def test_names_are_checked(report, bad):
    with pytest.raises(ParameterError, match="lower-case"):
        report.glue(bad, 1)
    with pytest.raises(ParameterError, match="lower-case"):
        report.metric(bad, 1)


def test_a_metric_must_be_numeric(report):
    with pytest.raises(ParameterError, match="must be a number"):
        report.metric("fid", "low")


@pytest.mark.parametrize("record, message", [
    ([], "expected a JSON object"),
    ({"chapter": "x"}, "missing"),
    ({"chapter": "x", "profile": "p", "seeds": [0], "metrics": {"a": "b"}, "provenance": {}}, "metric 'a'"),
    ({"chapter": "x", "profile": "p", "seeds": [0], "metrics": {}, "provenance": {"commit": "c"}}, "provenance"),
])
def test_schema_errors_say_what_is_wrong(record, message):
    with pytest.raises(ResultsError, match=message):
        check_results(record)


def test_a_broken_results_file_is_reported_not_half_read(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"chapter": "x", "metr')
    with pytest.raises(ResultsError, match="unreadable.*re-execute"):
        read_results(path)
    with pytest.raises(ResultsError, match="does not exist"):
        read_results(tmp_path / "missing.json")


def test_reference_table_puts_both_runs_side_by_side(report, tmp_path):
    report.metric("psnr", [20.5, 21.0])
    report.metric("fid", 3.0)
    reference = report.record()
    reference["profile"], reference["metrics"] = "full", {"psnr": [23.25, 23.5], "extra": 1.0}
    reference["provenance"]["commit"] = "0000000"  # not in this clone
    (tmp_path / "latent_size.json").write_text(json.dumps(reference))
    table = report.reference_table(tmp_path)
    assert list(table.columns) == ["this build", "reference run"]
    assert table.loc["profile"].tolist() == ["smoke", "full"]
    assert table.loc["psnr"].tolist() == ["20.5 / 21", "23.25 / 23.5"]
    assert table.loc["fid"].tolist() == ["3", "—"] and table.loc["extra"].tolist() == ["—", "1"]
    assert "not in this clone" in table.attrs["note"]
    alone = report.reference_table(tmp_path / "none")
    assert list(alone.columns) == ["this build"] and "no reference run" in alone.attrs["note"]
