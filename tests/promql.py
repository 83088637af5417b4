"""PromQL in tests: parsed by a real PromQL parser, and the metric names it selects."""

from __future__ import annotations

import re

import promql_parser

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def selected_metrics(expr: str) -> set[str]:
    """Every metric name ``expr`` selects; a ``ValueError`` when it is not PromQL. Grafana's
    interval variables are replaced as Grafana replaces them, with a duration."""
    for variable, duration in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, duration)
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    # the parser's view and a plain reading agree: no name hides in a string or a label
    assert names == set(re.findall(r"\bfleetbus_[a-z_]+", expr)), expr
    return names
