"""A shuffle that loses values fails the run before anything is committed."""
import apache_beam as beam

from conftest import write_jsonl
from corpus_audit.pipelines.cli import main
from corpus_audit.transforms.audit import shuffle_check


def test_unbalanced_names_each_shuffle_that_lost_or_gained_values():
    counters = {"GroupBySource.sent": 10, "GroupBySource.received": 7,
                "GroupByNode.sent": 4, "GroupByNode.received": 4,
                "GroupByRoot.sent": 2, "GroupByRoot.received": 3,
                "SpreadShards.sent": 5}
    assert shuffle_check.totals(counters)["SpreadShards"] == [5, 0]
    assert shuffle_check.unbalanced(counters) == [
        "GroupByRoot: 2 in, 3 out", "GroupBySource: 10 in, 7 out", "SpreadShards: 5 in, 0 out"]
    assert shuffle_check.unbalanced({"GroupByNode.sent": 4, "GroupByNode.received": 4}) == []


def _drop_last_value(kv):
    key, values = kv
    values = list(values)
    return key, values[:-1] if len(values) > 1 else values


class _LossyGroupByKey(beam.PTransform):
    """What a faulty runner does: groups arrive without one of their values."""

    def expand(self, pcoll):
        return pcoll | beam.GroupByKey() | beam.Map(_drop_last_value)


def test_a_run_whose_runner_loses_shuffled_values_is_not_committed(tmp_path, real_texts, monkeypatch, capsys):
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(real_texts[:40])]
    rows += [{"id": f"copy{i}", "text": t} for i, t in enumerate(real_texts[:10])]
    write_jsonl(tmp_path / "a.jsonl", rows[:25])
    write_jsonl(tmp_path / "b.jsonl", rows[25:])
    args = ["audit", "--input", str(tmp_path / "*.jsonl"), "--output", str(tmp_path / "out"),
            "--run-id", "r", "--quiet", "--no-detectors"]
    assert main(args) == 0  # the in-process runner: the same code with an honest shuffle

    monkeypatch.setattr(shuffle_check, "_GROUP", _LossyGroupByKey)
    assert main(args + ["--overwrite"]) == 3
    err = capsys.readouterr().err
    assert "lost data in a shuffle" in err and "GroupById:" in err
    run_dir = tmp_path / "out" / "r"
    assert not (run_dir / "_SUCCESS").exists() and not (run_dir / "_staging").exists()


def test_runner_input_streams_keep_what_is_written_while_a_flush_waits_for_the_send_queue():
    import time

    from apache_beam.runners.worker import data_plane

    from corpus_audit.pipelines.local_runner import fix_data_stream_flush_race

    fix_data_stream_flush_race()
    delivered = []

    def send(data):  # a send queue that stays full for a moment
        delivered.append(len(data))
        time.sleep(0.03)

    stream = data_plane.TimeBasedBufferingClosableOutputStream(send, flush_callback=send, time_flush_threshold_ms=50)
    written, start = 0, time.monotonic()
    while time.monotonic() - start < 0.6:
        stream.write(b"x" * 10_000)
        written += 10_000
        time.sleep(0.001)
    stream.close()
    assert len(delivered) > 3 and sum(delivered) == written
