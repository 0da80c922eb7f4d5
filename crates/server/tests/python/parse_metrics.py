"""Parses an OpenMetrics scrape (stdin) with the Prometheus project's own Python client and
prints every sample as one JSON line: name, labels, value. A parse error fails the script, so
the server's text is held to the format Prometheus reads."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(json.dumps({"name": sample.name, "labels": sample.labels, "value": sample.value}))
