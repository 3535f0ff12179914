"""The error answers every operation of API v1 can give, added to the OpenAPI schema.

drf-spectacular documents the success answer an operation's serializer makes; the errors come from DRF
and accesscontrol.api.exceptions, the same for every operation, so they are described once here, by
what an operation can meet: bad input (a body, a query), no or bad credentials, no permission, an id that
does not name a visible object (or a page past the end), an object still in use.
"""

ERROR = {
    "type": "object",
    "description": "What went wrong, in words.",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
FIELD_ERRORS = {
    "type": "object",
    "description": "Field errors: each field named with its messages (a list), nested lists by item index; "
    "errors of no one field under non_field_errors.",
    "additionalProperties": True,
}
IN_USE = {
    "type": "object",
    "description": "The object is still referred to and cannot be deleted.",
    "properties": {"detail": {"type": "string"}, "used_by": {"type": "array", "items": {"type": "string"}}},
    "required": ["detail", "used_by"],
}

COMPONENTS = {"Error": ERROR, "FieldErrors": FIELD_ERRORS, "InUse": IN_USE}


def _answer(component: str, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
    }


def _with_field_errors(answer: dict) -> dict:
    """An operation documenting its own 400 (e.g. a hotel error) can still answer one with field errors."""
    content = answer.get("content", {}).get("application/json")
    if content is None:
        return _answer("FieldErrors", "Bad input: field errors.")
    schema = content["schema"]
    if "anyOf" not in schema:
        content["schema"] = {"anyOf": [schema, {"$ref": "#/components/schemas/FieldErrors"}]}
    return answer


# DRF writes a time of day as HH:MM[:SS[.ffffff]] without an offset; JSON Schema's "time" format
# (RFC 3339) requires one, so a validator would refuse every time the API serves or takes.
TIME_OF_DAY = {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"}


def _times_of_day(node):
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("format") == "time":
            del node["format"]
            node.update(TIME_OF_DAY)
        for value in node.values():
            _times_of_day(value)
    elif isinstance(node, list):
        for value in node:
            _times_of_day(value)


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS POSTPROCESSING_HOOKS)."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(COMPONENTS)
    _times_of_day(result)
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            takes_input = "requestBody" in operation or any(p.get("in") == "query" for p in parameters)
            if takes_input:
                responses["400"] = (
                    _with_field_errors(responses["400"])
                    if "400" in responses
                    else _answer("FieldErrors", "Bad input: field errors.")
                )
            if "requestBody" in operation:
                responses.setdefault("415", _answer("Error", "A body in a media type the operation does not read."))
            if operation.get("security") != [{}]:
                responses.setdefault("401", _answer("Error", "No credentials, or bad ones."))
                responses.setdefault("403", _answer("Error", "The operator may not do this (here)."))
            paginated = any(p.get("name") == "page" and p.get("in") == "query" for p in parameters)
            if any(p.get("in") == "path" for p in parameters) or paginated:
                responses.setdefault(
                    "404", _answer("Error", "No such object visible to the operator, or no such page.")
                )
            if method == "delete":
                responses.setdefault("409", _answer("InUse", "Still in use."))
    return result
