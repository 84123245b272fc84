"""Building models from values that are already valid, without validating them again."""

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

new_model = object.__new__
# __dict__ and the three slots every pydantic model instance has, set through their
# descriptors: no attribute lookup by name per call.
SLOT_SETTERS: tuple[Any, ...] = tuple(vars(BaseModel)[name].__set__ for name in BaseModel.__slots__)
_set_dict, _set_fields, _set_extra, _set_private = SLOT_SETTERS


def trusted(cls: type[M], values: dict[str, Any]) -> M:
    """``cls`` from complete, correctly typed field values, without validation.

    For hot paths that build models from data they produced themselves (rows of our own
    tables, the facts reconstruction computed). What ``model_construct`` does, minus its
    per-field loop over defaults and aliases, which makes it slower than validating;
    this costs ~1 µs, and keeps nested lists and dicts as given instead of copying
    them. ``values`` must name every field with a value of its type: the model then
    equals a validated one (tests check that it does).
    """
    model = new_model(cls)
    _set_dict(model, values)
    _set_fields(model, set(values))
    _set_extra(model, None)
    _set_private(model, None)
    return model
