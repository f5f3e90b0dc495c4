"""The OpenAPI document: property-based requests generated from it (schemathesis) never get a 5xx, and the routes
document their errors with examples."""

import json

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import positive_data_acceptance

from dsocr.api.app import create_app
from dsocr.api.schemas import OcrResult
from dsocr.documents.record import SCHEMA_PATH
from tests.support.api_harness import api_server, client, settings

#: Generated requests per operation: enough to cover each parameter's edge cases, few enough for CI.
EXAMPLES = 25


@pytest.fixture(scope="module")
def api_url(triton_server, tmp_path_factory):
    with api_server(settings(triton_server.grpc_url, tmp_path_factory.mktemp("api"))) as url:
        yield url


# The document the app serves, built without starting it (the served one is the same: checked below).
schema = schemathesis.openapi.from_dict(create_app().openapi())


@schema.parametrize()
@hypothesis_settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_generated_requests_never_get_a_server_error_and_every_answer_is_documented(case, api_url):
    # Every check but one: a file the schema allows is still refused when it is no PDF or image.
    case.call_and_validate(base_url=api_url, excluded_checks=[positive_data_acceptance])


def test_the_served_openapi_document_is_the_one_tested(api_url):
    with client(api_url) as http:
        assert http.get("/openapi.json").json() == schema.raw_schema


def test_every_error_answer_is_documented_with_its_body_and_an_example():
    for path, operations in schema.raw_schema["paths"].items():
        for method, operation in operations.items():
            errors = {status: answer for status, answer in operation["responses"].items() if status >= "400"}
            if path.startswith("/ocr"):
                assert {"401", "422"} <= set(errors), (method, path)
            for status, answer in errors.items():
                body = answer["content"]["application/json"]
                assert "example" in body, (method, path, status)
                expected = "Ready" if path == "/health/ready" else "Error"
                assert body["schema"] == {"$ref": f"#/components/schemas/{expected}"}, (method, path, status)


def test_the_documented_result_example_is_a_valid_result():
    # The model's own example: FastAPI drops its null fields when it writes the OpenAPI document.
    [example] = OcrResult.model_config["json_schema_extra"]["examples"]
    OcrResult.model_validate(example)
    record = {key: value for key, value in example.items() if key != "markdown"}
    record["pages"] = [{key: value for key, value in page.items() if key != "latency_ms"} for page in example["pages"]]
    jsonschema.validate(record, json.loads(SCHEMA_PATH.read_text()))
