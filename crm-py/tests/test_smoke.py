import re

import pytest

import crm

SUBCLASSES = [
    "ValidationError",
    "NotFound",
    "InsufficientPoints",
    "Conflict",
    "ConfigError",
    "StoreError",
]


def test_import_and_version():
    assert isinstance(crm.__version__, str)
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:[-.+].*)?", crm.__version__)
    assert crm.__version__ == crm._crm.__version__


def test_all_names_exist():
    for name in crm.__all__:
        assert hasattr(crm, name), name


def test_base_exception():
    assert issubclass(crm.CrmError, Exception)


@pytest.mark.parametrize("name", SUBCLASSES)
def test_exception_hierarchy(name):
    exc = getattr(crm, name)
    assert issubclass(exc, crm.CrmError)
    assert exc is not crm.CrmError
    with pytest.raises(crm.CrmError, match="boom"):
        raise exc("boom")


def test_subclasses_are_distinct():
    classes = [getattr(crm, name) for name in SUBCLASSES]
    for a in classes:
        for b in classes:
            if a is not b:
                assert not issubclass(a, b)
