"""Run `corpus-audit` with the wall seconds of each fused Beam stage recorded.

    python benchmarks/stage_times.py TIMES.json audit --input ... (corpus-audit arguments)

The local runner executes one stage's bundles at a time (spread over its workers), so the
wall seconds of a stage are the sum of its bundles' and the stages add up to the pipeline's
run. The benchmarks use them to tell what one part of the pipeline costs.
"""
import json
import sys
import time
from collections import defaultdict


def main():
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    out, argv = sys.argv[1], sys.argv[2:]
    seconds = defaultdict(float)
    execute = fn_runner.FnApiRunner._execute_bundle

    def timed(self, context, bundle_manager, bundle_input):
        t0 = time.perf_counter()
        try:
            return execute(self, context, bundle_manager, bundle_input)
        finally:
            seconds[bundle_manager.stage.name] += time.perf_counter() - t0

    fn_runner.FnApiRunner._execute_bundle = timed
    from corpus_audit.pipelines.cli import main as cli_main

    code = cli_main(argv)
    with open(out, "w") as f:
        json.dump(dict(sorted(seconds.items(), key=lambda kv: -kv[1])), f, indent=1)
    return code


if __name__ == "__main__":
    sys.exit(main())
