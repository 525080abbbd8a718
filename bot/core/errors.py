"""The one base class of expected bad-input errors (config, data files, model files, arguments).

Raised at the source with the problem, where it is and the fix in its message; the CLI
entry point prints ``str(exc)`` and exits 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserInputError(Exception):
    """Input the user can fix; ``str(exc)`` names the source, the problem and the fix."""
