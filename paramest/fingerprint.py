"""What a compiled model depends on besides its arguments, as a key and as a watch list.

Numba compiles the values a function reads from module scope (numbers, arrays, tuples), from
its closure and from its helpers' code into the machine code, and its on-disk cache checks
only the timestamp of the function's own file. A model that reads a global rate constant
would therefore keep computing with the value it had when it was first compiled, even in a
later process, and a helper edited in another file would keep its old code.

:func:`model_dependencies` walks the function, its nested functions and every compiled
helper it calls, and hashes the code and the values they read into a short key. The key is
part of the name under which the model is compiled and cached, so a changed value compiles
(or loads) a different version. It also returns the places it read, so that a solve can
check, for the cost of an identity comparison per value, that nothing was rebound or (for
arrays) overwritten since the model was compiled. Values that cannot be hashed reliably are
refused with a message that says to pass them through ``p``.
"""

import builtins
import dis
import enum
import hashlib
import sys
import types

import numpy as np

from paramest.errors import ModelError

__all__ = ["ModelDependencies", "first_change", "model_dependencies"]

#: Packages whose functions and constants are keyed by name and version, not walked:
#: their code does not change under a user between two runs of one installation.
_LIBRARY_PACKAGES = frozenset({
    "builtins", "math", "cmath", "numpy", "numba", "llvmlite", "scipy", "paramest",
    "operator", "functools", "itertools", "collections", "random", "typing",
})

_MISSING = object()
_SCALAR_TYPES = (bool, int, float, complex, str, bytes, type(None))
_LOAD_GLOBAL = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_LOAD_ATTRIBUTE = frozenset({"LOAD_ATTR", "LOAD_METHOD"})


def _package_of(obj):
    module = getattr(obj, "__module__", None) or ""
    if not isinstance(module, str):
        return ""
    return module.partition(".")[0]


def _library_version(package):
    module = sys.modules.get(package)
    version = str(getattr(module, "__version__", sys.version_info[:2]))
    if package == "paramest":
        # A model may call paramest's kernels (the networks of paramest.neural do): their
        # code is inlined into the model's compiled version, so that version must change
        # with the kernel sources, not only with the release number.
        from paramest.kernels.cache_stamp import _STAMP

        version += "+" + _STAMP
    return version


def _python_function_of(value):
    """The Python function behind a Numba dispatcher (``py_func``) or ``cfunc``
    (``_pyfunc``), or None."""
    for attribute in ("py_func", "_pyfunc"):
        func = getattr(value, attribute, None)
        if isinstance(func, types.FunctionType):
            return func
    return None


class ModelDependencies:
    """The result of :func:`model_dependencies`.

    Attributes
    ----------
    key : str
        A short hexadecimal digest of the code and the values the function reads.
    names : tuple of str
        The global and closure names whose values went into the key (for messages).
    watches : tuple
        ``(kind, container, name, value, snapshot)`` per value read, checked by
        :meth:`changed`.
    """

    __slots__ = ("key", "names", "watches")

    def __init__(self, key, names, watches):
        self.key = key
        self.names = names
        self.watches = watches

    def changed(self):
        """A sentence describing the first value that differs from what was compiled, or
        None when everything is as it was."""
        return first_change(self.watches)


def first_change(watches):
    """A sentence describing the first of ``watches`` (as in ``ModelDependencies``) whose
    value differs from the one compiled, or None."""
    for kind, container, name, value, snapshot in watches:
        if kind == "cell":
            try:
                current = container.cell_contents
            except ValueError:
                current = _MISSING
        else:
            current = container.get(name, _MISSING)
        if current is not value:
            return f"`{name}` was rebound to a new value"
        if snapshot is not None and value.tobytes() != snapshot:
            return f"the contents of the array `{name}` were changed in place"
    return None


class _Walker:
    def __init__(self, root_name):
        self.root_name = root_name
        self.digest = hashlib.blake2b(digest_size=10)
        self.seen = set()
        self.names = []
        self.watches = []

    def feed(self, *parts):
        for part in parts:
            self.digest.update(repr(part).encode())
            self.digest.update(b"\x00")

    def code(self, code):
        self.feed(
            code.co_name, code.co_argcount, code.co_kwonlyargcount, code.co_code,
            code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
        )
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.code(const)
            else:
                self.feed(type(const).__name__, const)

    def function(self, func, label):
        if id(func) in self.seen:
            self.feed("seen", func.__qualname__)
            return
        self.seen.add(id(func))
        code = func.__code__
        self.feed("function", func.__module__, func.__qualname__)
        self.code(code)
        globals_ = func.__globals__
        global_names, attribute_names = _names_read(code)
        for name in sorted(global_names):
            value = globals_.get(name, _MISSING)
            if value is _MISSING:
                # a builtin (len, range, min) unless the module defines the name later
                self.feed("builtin", name, hasattr(builtins, name))
                self.watches.append(("dict", globals_, name, _MISSING, None))
                continue
            self.feed("global", name)
            self.value(value, name, label)
            self.watch("dict", globals_, name, value)
            if isinstance(value, types.ModuleType):
                self.module_attributes(value, name, attribute_names, label)
        for index, cell in enumerate(func.__closure__ or ()):
            name = code.co_freevars[index]
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell (a nested function defined later)
                continue
            self.feed("closure", name)
            self.value(value, name, label)
            self.watch("cell", cell, name, value)
        for value in func.__defaults__ or ():
            self.value(value, "a default argument", label)
        for name, value in sorted((func.__kwdefaults__ or {}).items()):
            self.value(value, name, label)

    def watch(self, kind, container, name, value):
        if isinstance(value, types.ModuleType) and _package_of_module(value) in _LIBRARY_PACKAGES:
            return  # numpy, math, ... are not rebound between solves in any sane program
        snapshot = value.tobytes() if isinstance(value, np.ndarray) else None
        self.names.append(name)
        self.watches.append((kind, container, name, value, snapshot))

    def module_attributes(self, module, module_name, attribute_names, label):
        package = _package_of_module(module)
        if package in _LIBRARY_PACKAGES:
            self.feed("library module", module.__name__, _library_version(package))
            return
        # A user's own module: ``constants.K_OUT`` is frozen like a global.
        namespace = vars(module)
        for attribute in sorted(attribute_names):
            if attribute not in namespace:
                continue
            value = namespace[attribute]
            qualified = f"{module_name}.{attribute}"
            self.feed("attribute", qualified)
            self.value(value, qualified, label, strict=False)
            self.watch("dict", namespace, attribute, value)

    def value(self, value, name, label, strict=True):
        if isinstance(value, _SCALAR_TYPES):
            self.feed(type(value).__name__, value)
        elif isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                self._refuse(value, name, label)
            self.feed("ndarray", value.dtype.str, value.shape)
            self.digest.update(np.ascontiguousarray(value).tobytes())
        elif isinstance(value, np.generic):
            self.feed("numpy scalar", value.dtype.str, value.tobytes())
        elif isinstance(value, tuple):
            self.feed("tuple", len(value))
            for item in value:
                self.value(item, name, label, strict)
        elif isinstance(value, enum.Enum):
            self.feed("enum", type(value).__qualname__, repr(value))
        elif isinstance(value, types.ModuleType):
            self.feed("module", value.__name__)
        elif isinstance(value, type):
            self.feed("type", value.__module__, value.__qualname__)
        elif isinstance(value, types.FunctionType) or _python_function_of(value) is not None:
            func = value if isinstance(value, types.FunctionType) else _python_function_of(value)
            package = _package_of(func)
            if package in _LIBRARY_PACKAGES:
                self.feed("library function", func.__module__, func.__qualname__,
                          _library_version(package))
            else:
                options = getattr(value, "targetoptions", None)
                self.feed("helper", sorted((options or {}).items(), key=repr))
                self.function(func, label)
        elif isinstance(value, (types.BuiltinFunctionType, np.ufunc)) or _package_of(
            value
        ) in _LIBRARY_PACKAGES:
            # np.exp, math.sqrt, numba types, ...: identified by their name and library
            self.feed("library object", type(value).__qualname__, getattr(
                value, "__qualname__", getattr(value, "__name__", repr(value))
            ), _library_version(_package_of(value) or "builtins"))
        elif strict:
            self._refuse(value, name, label)
        else:
            self.feed("object", type(value).__qualname__, id(value))

    def _refuse(self, value, name, label):
        raise ModelError(
            f"`{label}` reads `{name}`, a {type(value).__name__}, from outside the function. "
            "Numba freezes such values into the compiled code, and paramest can only tell "
            "whether they changed for numbers, strings, NumPy arrays, tuples of these and "
            "Numba-compiled helper functions. Pass the value through the parameter vector "
            "`p` (or store it in a NumPy array or a number)."
        )


def _package_of_module(module):
    return module.__name__.partition(".")[0]


def _names_read(code):
    """Global names loaded by ``code`` (and the functions defined inside it), and the
    attribute names it looks up."""
    global_names = set()
    attribute_names = set()
    stack = [code]
    while stack:
        current = stack.pop()
        for instruction in dis.get_instructions(current):
            if instruction.opname in _LOAD_GLOBAL:
                global_names.add(instruction.argval)
            elif instruction.opname in _LOAD_ATTRIBUTE:
                attribute_names.add(instruction.argval)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return global_names, attribute_names


def model_dependencies(py_func, label="fun"):
    """Hash ``py_func``'s code and the values it (and its helpers) read from outside.

    Parameters
    ----------
    py_func : function
        A plain Python function.
    label : str
        The argument name used in error messages (``"fun"``, ``"jac"``).

    Returns
    -------
    ModelDependencies

    Raises
    ------
    paramest.ModelError
        The function reads a value whose changes cannot be detected (a dict, a list, an
        instance of a class).

    Examples
    --------
    >>> K = 0.5
    >>> def decay(t, y, p, dydt):
    ...     dydt[0] = -K * y[0]
    >>> first = model_dependencies(decay).key
    >>> K = 2.0
    >>> model_dependencies(decay).key == first
    False
    """
    walker = _Walker(label)
    walker.function(py_func, label)
    return ModelDependencies(
        walker.digest.hexdigest(), tuple(dict.fromkeys(walker.names)), tuple(walker.watches)
    )
