"""Structural JSON Schemas of the Kubernetes objects deploy/k8s uses, limited to the fields
used there (no cluster or published schema is reachable offline). Unknown fields are
refused, so a misspelt or misplaced key fails instead of being ignored by a test."""

from typing import Any

_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": _NAME, "labels": _LABELS},
    "additionalProperties": False,
}
_PORT_REF = {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, _NAME]}
_PROBE = {
    "type": "object",
    "oneOf": [
        {"required": ["httpGet"]},
        {"required": ["tcpSocket"]},
        {"required": ["grpc"]},
        {"required": ["exec"]},
    ],
    "properties": {
        "httpGet": {
            "type": "object",
            "required": ["path", "port"],
            "properties": {"path": {"type": "string", "pattern": "^/"}, "port": _PORT_REF},
            "additionalProperties": False,
        },
        "tcpSocket": {
            "type": "object",
            "required": ["port"],
            "properties": {"port": _PORT_REF},
            "additionalProperties": False,
        },
        "initialDelaySeconds": {"type": "integer", "minimum": 0},
        "periodSeconds": {"type": "integer", "minimum": 1},
        "failureThreshold": {"type": "integer", "minimum": 1},
    },
    "additionalProperties": False,
}
_ENV = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name"],
        "oneOf": [{"required": ["value"]}, {"required": ["valueFrom"]}],
        "properties": {
            "name": {"type": "string"},
            "value": {"type": "string"},
            "valueFrom": {
                "type": "object",
                "properties": {
                    "secretKeyRef": {
                        "type": "object",
                        "required": ["name", "key"],
                        "properties": {"name": _NAME, "key": {"type": "string"}},
                        "additionalProperties": False,
                    }
                },
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    },
}
_QUANTITIES = {"type": "object", "additionalProperties": {"type": "string"}}
_CONTAINER = {
    "type": "object",
    "required": ["name", "image"],
    "properties": {
        "name": _NAME,
        "image": {"type": "string"},
        "args": {"type": "array", "items": {"type": "string"}},
        "env": _ENV,
        "ports": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["containerPort"],
                "properties": {
                    "name": {"type": "string", "maxLength": 15},
                    "containerPort": {"type": "integer", "minimum": 1, "maximum": 65535},
                },
                "additionalProperties": False,
            },
        },
        "readinessProbe": _PROBE,
        "livenessProbe": _PROBE,
        "resources": {
            "type": "object",
            "properties": {"requests": _QUANTITIES, "limits": _QUANTITIES},
            "additionalProperties": False,
        },
        "volumeMounts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "mountPath"],
                "properties": {
                    "name": _NAME,
                    "mountPath": {"type": "string", "pattern": "^/"},
                    "readOnly": {"type": "boolean"},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
_POD_SPEC = {
    "type": "object",
    "required": ["containers"],
    "properties": {
        "containers": {"type": "array", "minItems": 1, "items": _CONTAINER},
        "restartPolicy": {"enum": ["Always", "OnFailure", "Never"]},
        "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
        "securityContext": {"type": "object"},
        "volumes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "oneOf": [{"required": ["emptyDir"]}, {"required": ["configMap"]}],
                "properties": {
                    "name": _NAME,
                    "emptyDir": {"type": "object"},
                    "configMap": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": _NAME},
                        "additionalProperties": False,
                    },
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
_TEMPLATE = {
    "type": "object",
    "required": ["metadata", "spec"],
    "properties": {
        "metadata": {
            "type": "object",
            "required": ["labels"],
            "properties": {"labels": _LABELS},
            "additionalProperties": False,
        },
        "spec": _POD_SPEC,
    },
    "additionalProperties": False,
}


def _kind(api_version: str, kind: str, spec: dict[str, Any] | None, **extra: Any) -> Any:
    properties: dict[str, Any] = {
        "apiVersion": {"const": api_version},
        "kind": {"const": kind},
        "metadata": _METADATA,
        **extra,
    }
    if spec is not None:
        properties["spec"] = spec
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", *(["spec"] if spec else [])],
        "properties": properties,
        "additionalProperties": False,
    }


SCHEMAS = {
    "Namespace": _kind("v1", "Namespace", None),
    "ConfigMap": _kind(
        "v1", "ConfigMap", None, data={"type": "object", "additionalProperties": {"type": "string"}}
    ),
    "Deployment": _kind(
        "apps/v1",
        "Deployment",
        {
            "type": "object",
            "required": ["selector", "template"],
            "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "strategy": {
                    "type": "object",
                    "properties": {"type": {"enum": ["Recreate", "RollingUpdate"]}},
                },
                "selector": {
                    "type": "object",
                    "required": ["matchLabels"],
                    "properties": {"matchLabels": _LABELS},
                    "additionalProperties": False,
                },
                "template": _TEMPLATE,
            },
            "additionalProperties": False,
        },
    ),
    "Job": _kind(
        "batch/v1",
        "Job",
        {
            "type": "object",
            "required": ["template"],
            "properties": {"backoffLimit": {"type": "integer"}, "template": _TEMPLATE},
            "additionalProperties": False,
        },
    ),
    "Service": _kind(
        "v1",
        "Service",
        {
            "type": "object",
            "required": ["selector", "ports"],
            "properties": {
                "selector": _LABELS,
                "ports": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "port", "targetPort"],
                        "properties": {
                            "name": _NAME,
                            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                            "targetPort": _PORT_REF,
                            "appProtocol": {"type": "string"},
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    ),
    "HorizontalPodAutoscaler": _kind(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        {
            "type": "object",
            "required": ["scaleTargetRef", "maxReplicas"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["apiVersion", "kind", "name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": _NAME,
                    },
                    "additionalProperties": False,
                },
                "minReplicas": {"type": "integer", "minimum": 1},
                "maxReplicas": {"type": "integer", "minimum": 1},
                "metrics": {"type": "array", "minItems": 1},
                "behavior": {"type": "object"},
            },
            "additionalProperties": False,
        },
    ),
}
