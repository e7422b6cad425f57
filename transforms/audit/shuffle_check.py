"""Count the elements that go into every shuffle and the values that come out of it, so a run
in which the runner drops data fails instead of committing clusters or matches with holes.

Beam promises that a shuffle delivers what it was given, but Beam 2.77's local runner lost part
of a stage's input at the million-document scale without an error (the cause, and its fix, are
in `pipelines/local_runner.py`). The counts are Beam metrics, which travel with the bundle
results rather than with the data, and are compared once the pipeline has finished (`check`).
"""
import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

NAMESPACE = "corpus_audit.shuffle"
_GROUP = beam.GroupByKey
_COGROUP = beam.CoGroupByKey


class ShuffleLost(RuntimeError):
    """The runner delivered fewer (or more) values out of a shuffle than went in."""


def _sent(element, name):
    Metrics.counter(NAMESPACE, name + ".sent").inc()
    return element


def _received(element, name):
    key, values = element
    values = list(values)
    Metrics.counter(NAMESPACE, name + ".received").inc(len(values))
    return key, values


def _cogroup_received(element, name):
    key, tagged = element
    Metrics.counter(NAMESPACE, name + ".received").inc(sum(len(v) for v in tagged.values()))
    return element


class CountedGroupByKey(beam.PTransform):
    """GroupByKey that counts elements in and values out. Values come out as a list: the joins
    read a group once per tag (edges, then signatures), and re-iterating a large group makes a
    portable runner send it again."""

    def __init__(self, name=None):
        super().__init__()
        self.name = name

    def expand(self, pcoll):
        name = self.name or self.label
        return (pcoll
                | "CountSent" >> beam.Map(_sent, name)
                | "Group" >> _GROUP()
                | "CountReceived" >> beam.Map(_received, name))


class CountedCoGroupByKey(beam.PTransform):
    """CoGroupByKey over a dict of PCollections, counted like CountedGroupByKey."""

    def expand(self, inputs):
        name = self.label
        counted = {tag: pcoll | f"CountSent[{tag}]" >> beam.Map(_sent, name) for tag, pcoll in inputs.items()}
        return (counted
                | "Group" >> _COGROUP()
                | "CountReceived" >> beam.Map(_cogroup_received, name))


class CountedReshuffle(beam.PTransform):
    """Spread (key, value) pairs over the workers through a counted shuffle (a fusion break)."""

    def expand(self, pcoll):
        return (pcoll
                | "Group" >> CountedGroupByKey(self.label)
                | "Ungroup" >> beam.FlatMap(lambda kv: [(kv[0], v) for v in kv[1]]))


def totals(counters):
    """{shuffle: [sent, received]} from {metric name: value}."""
    out = {}
    for metric, value in counters.items():
        name, side = metric.rsplit(".", 1)
        out.setdefault(name, [0, 0])[side == "received"] += value
    return out


def unbalanced(counters):
    """The shuffles whose counts differ, as readable lines (empty when all balance)."""
    return [f"{name}: {sent} in, {received} out" for name, (sent, received) in sorted(totals(counters).items())
            if sent != received]


def counters_of(result):
    """{metric name: committed (else attempted) value} of this module's counters, or None when
    the runner reports no metrics."""
    try:
        found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except (NotImplementedError, AttributeError, KeyError):
        return None
    counters = {}
    for r in found:
        value = r.committed if r.committed is not None else r.attempted
        counters[r.key.metric.name] = counters.get(r.key.metric.name, 0) + (value or 0)
    return counters or None


def check(result):
    """Raise ShuffleLost if any shuffle of the finished pipeline lost or gained values; return
    a summary for audit.json (None when the runner reports no metrics)."""
    counters = counters_of(result)
    if counters is None:
        return None
    problems = unbalanced(counters)
    if problems:
        raise ShuffleLost("the runner lost data in a shuffle, so nothing was committed ("
                          + "; ".join(problems) + "). This is a runner fault, not bad input: "
                          "run again, and report it with the runner and its version")
    t = totals(counters)
    return {"checked": len(t), "values": sum(s for s, _ in t.values())}
