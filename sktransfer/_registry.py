"""One registry type for backbones, fine-tuning strategies and adaptation methods."""


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
        return entry

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
