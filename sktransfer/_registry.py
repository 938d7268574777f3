"""One registry type for backbones, fine-tuning strategies and adaptation methods."""

import sys
import threading

import cloudpickle

#: cloudpickle's by-value setting is process-wide: one dump at a time changes it
_BY_VALUE_LOCK = threading.Lock()


def _module_of(entry):
    """The module that defines ``entry`` (a function, a class, an instance)."""
    return sys.modules.get(getattr(entry, "__module__", None) or "")


def _library_module(module):
    """sktransfer's own modules and the standard library: every process that
    loads an estimator imports them, so their entries go by reference."""
    top = module.__name__.partition(".")[0]
    return top == "sktransfer" or top in sys.stdlib_module_names


def dumps_entry(entry):
    """``entry`` serialised so that a process which cannot import its module
    still loads it, or None when it cannot be serialised at all.

    cloudpickle (like pickle) writes a function or class of an importable
    module as a reference, ``module.name``: a Dask or Ray worker on another
    machine, or a worker started before a notebook's folder joined
    ``sys.path``, cannot import that module. Entries from modules other than
    sktransfer's and the standard library are therefore written by value (the
    code itself, as cloudpickle does for ``__main__``); by reference when
    that fails (a module-level object cloudpickle cannot copy).
    """
    module = _module_of(entry)
    if module is not None and module.__name__ != "__main__":
        if not _library_module(module):
            with _BY_VALUE_LOCK:
                by_value = cloudpickle.list_registry_pickle_by_value()
                registered = module.__name__ in by_value
                try:
                    if not registered:
                        cloudpickle.register_pickle_by_value(module)
                    return cloudpickle.dumps(entry)
                except Exception:
                    pass
                finally:
                    if not registered:
                        cloudpickle.unregister_pickle_by_value(module)
    try:
        return cloudpickle.dumps(entry)
    except Exception:
        return None


class Registry:
    """Named entries, kept in registration order.

    Parameters
    ----------
    kind : str
        What the entries are, for messages ("backbone", "adaptation method").
    parameter : str
        The estimator parameter that takes the names (``backbone``, ``method``).
    register_hint : str
        The public function that adds entries, named in error messages.
    alternatives : str, default=""
        What else the parameter accepts, for messages ("pass a module").
    """

    def __init__(self, kind, parameter, register_hint, alternatives=""):
        self.kind = kind
        self.parameter = parameter
        self.register_hint = register_hint
        self.alternatives = alternatives
        self.entries = {}
        #: names whose entry came with a pickle (replaced by the next pickle's)
        self.carried = set()

    def add(self, name, entry, overwrite=False):
        """Add ``entry`` under ``name``; an existing name needs ``overwrite``."""
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"A {self.kind} name must be a non-empty str; got {name!r}."
            )
        if name in self.entries and not overwrite:
            raise ValueError(
                f"A {self.kind} named {name!r} is already registered; pass "
                "overwrite=True to replace it."
            )
        self.entries[name] = entry
        self.carried.discard(name)
        return entry

    def receive(self, name, blob):
        """Register the entry ``blob`` (from :func:`dumps_entry`) under
        ``name`` unless this process registered that name itself.

        An entry that came with an earlier pickle is replaced: a long-lived
        Dask or Ray worker then fits with the factory the client registered
        last (``overwrite=True``), not with the first one it saw.
        """
        if name in self.entries and name not in self.carried:
            return
        self.entries[name] = cloudpickle.loads(blob)
        self.carried.add(name)

    def add_named(self, obj, base, overwrite=False):
        """Add an instance of ``base`` (or of a ``base`` subclass passed as a
        class) under its ``name`` attribute; return ``obj`` unchanged."""
        instance = obj() if isinstance(obj, type) else obj
        if not isinstance(instance, base) or not getattr(instance, "name", None):
            raise TypeError(
                f"Expected a {base.__name__} subclass or instance with a non-empty "
                f"name; got {obj!r}."
            )
        self.add(instance.name, instance, overwrite)
        return obj

    def names(self):
        """The registered names, in registration order."""
        return list(self.entries)

    def get(self, name):
        """The entry called ``name``; a ValueError lists the registered names."""
        try:
            return self.entries[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"{self.parameter}={name!r} is not a registered {self.kind}. Use one "
                f"of {self.names()}{self.alternatives}, or register your own with "
                f"{self.register_hint}."
            ) from None
