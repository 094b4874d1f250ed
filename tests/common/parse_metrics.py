"""Parses a /metrics answer with the Prometheus Python client's own parsers and prints what it found as JSON.

    parse_metrics.py openmetrics|prometheus < exposition

The OpenMetrics parser is strict: counters end in _total, histogram buckets are cumulative and end at +Inf, units
match the name's suffix, the text ends with # EOF. Any violation raises, and this script exits 1.
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as prometheus


def main():
    fmt = sys.argv[1]
    text = sys.stdin.read()
    parse = openmetrics if fmt == "openmetrics" else prometheus
    families = {}
    for family in parse(text):
        if family.name in families:
            raise ValueError(f"family {family.name} appears twice")
        families[family.name] = {
            "type": family.type,
            "unit": family.unit,
            "help": family.documentation,
            "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
        }
    json.dump(families, sys.stdout)


if __name__ == "__main__":
    main()
