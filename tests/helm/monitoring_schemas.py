"""Hand-written structural JSON schemas for the two Prometheus Operator kinds
the chart can render (kubernetes-validate only knows built-in kinds, and the
tests fetch nothing but PyPI packages).

They are a strict subset of the monitoring.coreos.com/v1 CRDs: only the
fields the chart uses, with the CRDs' names, types, required fields and
duration syntax, and no other field allowed, so a misspelt or misplaced field
fails here as it would be pruned or refused by the API server.
"""

# Prometheus Operator's Duration type.
DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
DNS_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}

METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": DNS_NAME,
        "namespace": DNS_NAME,
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
    "additionalProperties": False,
}


def _kind(kind: str, spec: dict) -> dict:
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": spec,
        },
        "additionalProperties": False,
    }


SERVICE_MONITOR = _kind("ServiceMonitor", {
    "type": "object",
    "required": ["selector", "endpoints"],
    "properties": {
        "jobLabel": {"type": "string", "minLength": 1},
        "selector": {
            "type": "object",
            "properties": {"matchLabels": STRING_MAP},
            "additionalProperties": False,
        },
        "namespaceSelector": {
            "type": "object",
            "properties": {
                "any": {"type": "boolean"},
                "matchNames": {"type": "array", "items": DNS_NAME},
            },
            "additionalProperties": False,
        },
        "endpoints": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["port"],
                "properties": {
                    "port": {"type": "string", "minLength": 1},
                    "path": {"type": "string", "pattern": "^/"},
                    "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                    "interval": DURATION,
                    "scrapeTimeout": DURATION,
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
})

PROMETHEUS_RULE = _kind("PrometheusRule", {
    "type": "object",
    "required": ["groups"],
    "properties": {
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": DURATION,
                    "rules": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["expr"],
                            "properties": {
                                "alert": {"type": "string", "minLength": 1},
                                "record": {"type": "string", "minLength": 1},
                                "expr": {"type": ["string", "integer"]},
                                "for": DURATION,
                                "keep_firing_for": DURATION,
                                "labels": STRING_MAP,
                                "annotations": STRING_MAP,
                            },
                            "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                            "additionalProperties": False,
                        },
                    },
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
})

SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
}
