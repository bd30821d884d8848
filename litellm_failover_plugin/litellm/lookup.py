"""Finding a hooked LiteLLM attribute as Python finds it, and checking it takes what the plugin passes.

A method that moved to a base class is the same hook; so is one that LiteLLM 1.108+'s `Router`
facade serves from its core class (the facade's metaclass hands out the core's members, and its
instances hand their calls to a core object). A signature that gained a keyword-only parameter
with a default still takes what the plugin passes. Neither is a break; a missing attribute, an
async method turned sync, or a call the signature cannot bind is.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

MISSING = object()


def attribute(cls: type, name: str) -> tuple[type | None, Any]:
    """(the class that defines `name`, the attribute as defined there) for an instance of `cls`:
    the first class of its MRO that has it in its namespace (no descriptor is run), else what the
    class serves through its metaclass (then the defining class is found from the function's
    qualified name, and its MRO searched the same way). (None, MISSING) when there is none."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass, vars(klass)[name]
    try:
        served = getattr(cls, name)
    except AttributeError:
        return None, MISSING
    owner = defining_class(served)
    if owner is not None and owner is not cls:
        found = attribute(owner, name)
        if found[0] is not None:
            return found
    return None, served


def defining_class(fn: Any) -> type | None:
    """The class a function was defined in, from its module and qualified name (None if unknown)."""
    fn = getattr(fn, "__func__", fn)
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    parts = str(getattr(fn, "__qualname__", "")).split(".")[:-1]
    obj: Any = module
    for part in parts:
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, type) and parts else None


def function(cls: type, name: str) -> Any:
    """The plain function behind `cls.name` (static and class methods and wrappers undone), or None."""
    _, fn = attribute(cls, name)
    if isinstance(fn, (staticmethod, classmethod)):
        fn = fn.__func__
    if fn is MISSING or not callable(fn):
        return None
    return inspect.unwrap(fn)


def shadowable(cls: type, name: str) -> bool:
    """Whether an instance attribute named `name` wins over the class's on an instance of `cls`:
    the class attribute is a plain function (no data descriptor) and instances have a __dict__."""
    owner, fn = attribute(cls, name)
    if owner is None or not inspect.isfunction(fn):
        return False
    if any(name in getattr(k, "__slots__", ()) for k in cls.__mro__):
        return False
    return any("__slots__" not in vars(k) or "__dict__" in vars(k)["__slots__"] for k in cls.__mro__ if k is not object)


def accepts(fn: Any, *args: Any, **kwargs: Any) -> bool:
    """Whether calling `fn(*args, **kwargs)` binds: the parameters the plugin passes exist, and
    every one it does not pass has a default. (For a method, pass a stand-in for self.)"""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return False
    return True
