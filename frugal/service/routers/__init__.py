"""One router per resource: health, decisions, rules, pipelines, sources, sql, report, metrics."""
