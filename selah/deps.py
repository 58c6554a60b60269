"""Optional dependencies of the training stack, imported on first use with a clear message.

The service installs without the `training` extra; a training command that needs a missing
package fails at setup, before any work, saying what to install (style rule 11).
"""

import importlib
from types import ModuleType

INSTALL_HINT = "pip install 'selah[training]'"


class MissingDependency(ImportError):
    """A training dependency is not installed; the message says which and how to install it."""


def require(module: str, purpose: str) -> ModuleType:
    """Import `module` or raise `MissingDependency` naming `purpose` and the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"{module} is needed for {purpose} but is not installed ({exc}); run {INSTALL_HINT}"
        ) from exc
