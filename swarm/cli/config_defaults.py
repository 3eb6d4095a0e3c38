"""Flag defaults read from the config dataclasses, so a default is written down once, where it is used."""

from __future__ import annotations

import dataclasses
from typing import Any

from swarm.shared.addresses import split_host_port


def default_of(config_class: Any, name: str) -> Any:
    """The default of config_class's field `name`; a field without one is a programming error."""
    for field in dataclasses.fields(config_class):
        if field.name == name:
            if field.default is not dataclasses.MISSING:
                return field.default
            if field.default_factory is not dataclasses.MISSING:
                return field.default_factory()
            raise TypeError(f"{config_class.__name__}.{name} has no default")
    raise TypeError(f"{config_class.__name__} has no field {name}")


def default_port(config_class: Any, name: str) -> int:
    """The port of a HOST:PORT field's default, for flags that take only a port."""
    return split_host_port(default_of(config_class, name))[1]
