#!/usr/bin/env python3
"""Validates FHIR R4 JSON resources with an implementation independent of Ward.

Usage: validate.py PATH... (files, or folders whose *.json files are read), or `-` for stdin.
Every resource is parsed into the `fhir.resources` model of its resourceType; unknown elements,
wrong types, bad codes and missing required elements fail. Exits 1 if any resource is invalid,
2 on a usage problem (no file found, wrong package version), 0 otherwise.

Needs fhir.resources 6.1.0 (the last release whose models are R4, 4.0.1; later ones are R4B/R5)
on pydantic 1: `pip install -r tests/fhir/requirements.txt`.
"""

import json
import pathlib
import sys

EXPECTED_FHIR_VERSION = "4.0.1"


def load_sources(args):
    """Yields (name, text) for every argument: `-` is stdin, a folder gives its *.json files."""
    for arg in args:
        if arg == "-":
            yield "<stdin>", sys.stdin.read()
            continue
        path = pathlib.Path(arg)
        if path.is_dir():
            for child in sorted(path.glob("*.json")):
                yield str(child), child.read_text(encoding="utf-8")
        else:
            yield str(path), path.read_text(encoding="utf-8")


def accept_relative_urls():
    """Lets `url` elements be relative references, as R4 allows (Attachment.url: "Urls may be
    relative references"; the spec's own Patient f201 has `Binary/f006`). fhir.resources 6.1.0
    checks them as absolute URLs only; everything else about a `url` is still checked."""
    import re

    from fhir.resources import fhirtypes

    relative_reference = re.compile(r"^[^\s:/?#][^\s:]*$")
    absolute_validate = fhirtypes.Url.validate

    def validate_url(value, field, config):
        if isinstance(value, str) and relative_reference.match(value):
            return value
        return absolute_validate(value, field, config)

    fhirtypes.Url.validate = validate_url


def validate(text):
    """Returns None when the text is one valid FHIR R4 resource, else what is wrong."""
    from fhir.resources import construct_fhir_element

    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return f"not JSON: {error}"
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        return "not a FHIR resource (no resourceType)"
    try:
        construct_fhir_element(data["resourceType"], data)
    except Exception as error:  # pydantic's ValidationError, or an unknown resourceType
        return str(error)
    return None


def main(args):
    try:
        import fhir.resources
    except ImportError:
        print("fhir.resources is not installed (see tests/fhir/requirements.txt)", file=sys.stderr)
        return 2
    if fhir.resources.__fhir_version__ != EXPECTED_FHIR_VERSION:
        print(
            f"fhir.resources {fhir.resources.__version__} validates FHIR "
            f"{fhir.resources.__fhir_version__}, not {EXPECTED_FHIR_VERSION}",
            file=sys.stderr,
        )
        return 2
    accept_relative_urls()
    sources = list(load_sources(args))
    if not sources:
        print("no FHIR resources to validate", file=sys.stderr)
        return 2
    num_invalid = 0
    for name, text in sources:
        problem = validate(text)
        if problem is None:
            print(f"valid   {name}")
        else:
            num_invalid += 1
            print(f"INVALID {name}\n{problem}")
    print(f"fhir: {len(sources) - num_invalid} valid, {num_invalid} invalid")
    return 1 if num_invalid else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["-"]))
