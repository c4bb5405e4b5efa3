from app.main import all_routes
from app.openapi import build_document, openapi_path


def test_every_served_route_is_documented_and_nothing_else():
    document = build_document(all_routes())
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    served = {(route.method, openapi_path(route.path)) for route in all_routes()}
    assert documented == served


def test_every_schema_reference_resolves():
    document = build_document(all_routes())
    schemas = document["components"]["schemas"]

    def refs(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(document):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas


def test_routes_needing_a_token_declare_bearer_security():
    document = build_document(all_routes())
    for route in all_routes():
        operation = document["paths"][openapi_path(route.path)][route.method.lower()]
        assert ("security" in operation) == (not route.public), route.path
