"""Instances of the OCA OCPP JSON schemas that ship with PyPI's `ocpp` package, for the
Rust types' conformance test (tests/e2e/ocpp_schemas.rs).

usage: schema_instances.py generate VERSION NAME...   -> JSON {name: {"valid": [...], "invalid": [...]}}
       schema_instances.py validate VERSION FILE      -> checks {name: [instances]} against the schemas

"valid" holds, per schema: every property filled (the first enum value), only the required
properties, and one instance per value of each enum. "invalid" holds one instance per required
property, without it. The schemas are read from the installed package, never copied.
"""
import copy
import json
import os
import sys

import jsonschema
import ocpp

ROOT = os.path.dirname(ocpp.__file__)
DIRS = {"v16": os.path.join(ROOT, "v16", "schemas"), "v201": os.path.join(ROOT, "v201", "schemas")}


def load(version, name):
    with open(os.path.join(DIRS[version], name + ".json")) as f:
        return json.load(f)


def resolve(schema, root):
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/definitions/"), ref
        return resolve(root["definitions"][ref.split("/")[-1]], root)
    return schema


def sample(schema, root, full):
    schema = resolve(schema, root)
    if "enum" in schema:
        return schema["enum"][0]
    t = schema.get("type")
    if t == "object":
        props = schema.get("properties", {})
        keys = props.keys() if full else schema.get("required", [])
        return {k: sample(props[k], root, full) for k in keys}
    if t == "array":
        return [sample(schema["items"], root, full)]
    if t == "string":
        if schema.get("format") == "date-time":
            return "2026-01-02T03:04:05.678Z"
        n = min(schema.get("maxLength", 8), 8)
        return "abcdefgh"[:max(n, 1)]
    if t == "integer":
        return 1
    if t == "number":
        return 6.5
    if t == "boolean":
        return True
    raise ValueError(f"no sample for {schema}")


def enum_paths(schema, root, path=()):
    """(path, values) of every enum, following the full instance's shape."""
    schema = resolve(schema, root)
    if "enum" in schema:
        yield path, schema["enum"]
        return
    t = schema.get("type")
    if t == "object":
        for k, p in schema.get("properties", {}).items():
            yield from enum_paths(p, root, path + (k,))
    elif t == "array":
        yield from enum_paths(schema["items"], root, path + (0,))


def put(instance, path, value):
    target = instance
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value


def generate(version, names):
    out = {}
    for name in names:
        schema = load(version, name)
        full = sample(schema, schema, True)
        valid = [full, sample(schema, schema, False)]
        for path, values in enum_paths(schema, schema):
            for v in values:
                inst = copy.deepcopy(full)
                put(inst, path, v)
                valid.append(inst)
        invalid = []
        for k in schema.get("required", []):
            inst = copy.deepcopy(full)
            del inst[k]
            invalid.append(inst)
        for inst in valid:
            jsonschema.validate(inst, schema)
        out[name] = {"valid": valid, "invalid": invalid}
    json.dump(out, sys.stdout)


def validate(version, path):
    with open(path) as f:
        given = json.load(f)
    failures = []
    for name, instances in given.items():
        schema = load(version, name)
        for inst in instances:
            errors = list(jsonschema.Draft4Validator(schema).iter_errors(inst))
            if errors:
                failures.append(f"{name}: {errors[0].message} in {json.dumps(inst)[:300]}")
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print(f"{sum(len(v) for v in given.values())} instances of {len(given)} schemas valid")


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(sys.argv[2], sys.argv[3:])
    else:
        validate(sys.argv[2], sys.argv[3])
