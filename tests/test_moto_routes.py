"""The check that tells botocore/moto protocol drift apart from a bug of ours."""

from __future__ import annotations

from botocore.model import ServiceModel

from tests.conftest import moto_route_gap


def _athena_model(protocol: str, uri: str) -> ServiceModel:
    return ServiceModel(
        {
            "metadata": {
                "protocol": protocol,
                "protocols": [protocol],
                "serviceId": "Athena",
                "endpointPrefix": "athena",
                "apiVersion": "2017-05-18",
            },
            "operations": {
                "GetQueryExecution": {
                    "name": "GetQueryExecution",
                    "http": {"method": "POST", "requestUri": uri},
                }
            },
            "shapes": {},
        },
        service_name="athena",
    )


def test_a_json_protocol_service_posted_to_the_root_is_routed():
    assert moto_route_gap("athena", ["GetQueryExecution"], _athena_model("json", "/")) is None


def test_a_rest_json_path_moto_does_not_route_is_named_with_both_versions():
    gap = moto_route_gap(
        "athena",
        ["GetQueryExecution"],
        _athena_model("rest-json", "/queryexecution/{QueryExecutionId}"),
    )
    assert gap is not None
    assert "rest-json POST /queryexecution/x" in gap
    assert "botocore " in gap and "moto " in gap and "404" in gap
