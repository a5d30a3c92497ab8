"""The stand-in's device array, ufuncs and functions: NumPy underneath, CuPy's rules on top.

`ndarray` keeps its "device memory" in a private NumPy array. Every way out of the device is either explicit
and counted (`.get()`, `asnumpy`, `.item()`, `.tolist()`, `float/int/bool`, printing) or refused with CuPy's
TypeError (`numpy.asarray(x)`, `__array__`, the buffer protocol, NumPy arrays as operands). Ways in: `asarray`,
`array` and `.set()` of host data, and NumPy arrays inside an index or assigned into a slice (CuPy copies those
to the device), are counted as uploads.
"""
from __future__ import annotations

import collections
import numbers

import numpy

from .api import API, check_call

COUNTS: collections.Counter = collections.Counter()
SYNC_KINDS = ("get", "asnumpy", "item", "tolist", "bool", "int", "float", "complex", "repr")
IMPLICIT_CONVERSION = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a "
                       "NumPy array explicitly.")
UPLOAD_FUNCTIONS = ("array", "asarray", "asanyarray", "ascontiguousarray")
HOST_SCALARS = (numbers.Number, numpy.generic)


def sync_count() -> int:
    """Device-to-host synchronisations counted so far."""
    return sum(COUNTS[kind] for kind in SYNC_KINDS)


def _sync(kind: str) -> None:
    COUNTS[kind] += 1


# ---- moving between the wrapped and the raw worlds ---------------------------------------------------------------
def wrap(value):
    """NumPy results become device arrays (0-d for NumPy scalars: CuPy reductions return arrays)."""
    if isinstance(value, numpy.ndarray):
        return ndarray(value)
    if isinstance(value, numpy.generic):
        return ndarray(numpy.asarray(value))
    if isinstance(value, tuple):
        return tuple(wrap(v) for v in value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value


def unwrap(value, where: str):
    """Device arrays (also inside lists and tuples) to their memory; a NumPy array is CuPy's TypeError."""
    if isinstance(value, ndarray):
        return value._memory
    if isinstance(value, numpy.ndarray):
        raise TypeError(f"Unsupported type {type(value)} (in {where}: CuPy does not take NumPy arrays; "
                        "copy them with cupy.asarray)")
    if isinstance(value, (list, tuple)):
        return type(value)(unwrap(v, where) for v in value)
    return value


def _unwrap_index(index):
    """Device arrays in an index are used in place; NumPy arrays and lists are uploaded first, as CuPy does."""
    if isinstance(index, tuple):
        return tuple(_unwrap_index(part) for part in index)
    if isinstance(index, ndarray):
        return index._memory
    if isinstance(index, numpy.ndarray):
        COUNTS["upload"] += 1
        return index
    if isinstance(index, list):
        COUNTS["upload"] += 1
        return numpy.asarray(unwrap(index, "an index"))
    return index


def _wrap_around(shape: tuple, index):
    """CuPy reads integer-array indices modulo the axis length (no bounds check on the GPU): an out-of-range id
    gives a wrong row silently, not an IndexError. Integer arrays in a plain tuple of index arrays and slices are
    wrapped the same way here."""
    parts = index if isinstance(index, tuple) else (index,)
    if any(part is Ellipsis or part is None for part in parts):
        return index
    wrapped = tuple(numpy.mod(part, shape[axis]) if isinstance(part, numpy.ndarray) and part.dtype.kind in "iu"
                    else part for axis, part in enumerate(parts))
    return wrapped if isinstance(index, tuple) else wrapped[0]


def take_along_axis(a, indices, axis):
    """`cupy.take_along_axis`: like NumPy's, but out-of-range indices wrap around as in CuPy's indexing."""
    check_call("cupy", "take_along_axis", (a, indices, axis), {})
    memory, raw = unwrap(a, "take_along_axis"), unwrap(indices, "take_along_axis")
    return wrap(numpy.take_along_axis(memory, numpy.mod(raw, memory.shape[axis]), axis=axis))


# ---- the device array -----------------------------------------------------------------------------------------------
class _Flags:
    """CuPy's `ndarray.flags`: contiguity and ownership only (no `writeable`)."""

    def __init__(self, memory: numpy.ndarray):
        self.c_contiguous = memory.flags.c_contiguous
        self.f_contiguous = memory.flags.f_contiguous
        self.owndata = memory.flags.owndata


class _MemoryPointer:
    """`ndarray.data`: the device address (here the host address of the wrapped memory)."""

    def __init__(self, memory: numpy.ndarray):
        self.ptr = memory.ctypes.data


class _Device:
    def __init__(self, device_id: int = 0):
        self.id = device_id


class ndarray:  # noqa: N801 - CuPy's name
    """A CuPy array on the stand-in's one "GPU"."""

    __slots__ = ("_memory", "__weakref__")
    __array_priority__ = 100  # CuPy's value: Tensor (1000) wins `cupy_array * tensor`

    def __init__(self, memory):
        if not isinstance(memory, numpy.ndarray):
            raise TypeError("the stand-in's ndarray wraps a NumPy array; create arrays with cupy.asarray")
        self._memory = memory

    # -- what cannot leave the device implicitly
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT_CONVERSION)

    def __array_function__(self, func, types, args, kwargs):
        """`numpy.f(device_array)` runs the stand-in's `cupy.f`, or fails when CuPy has no such function."""
        module = "cupy.linalg" if func.__module__ == "numpy.linalg" else "cupy"
        implementation = FUNCTIONS.get(module, {}).get(func.__name__)
        if implementation is None:
            return NotImplemented
        return implementation(*args, **kwargs)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """`numpy.exp(device_array)` runs the stand-in's `cupy.exp` (NumPy operands stay refused)."""
        mine = FUNCTIONS["cupy"].get(ufunc.__name__)
        if not isinstance(mine, ufunc_):
            return NotImplemented
        return mine(*inputs, **kwargs) if method == "__call__" else getattr(mine, method)(*inputs, **kwargs)

    # -- facts
    shape = property(lambda self: self._memory.shape)
    dtype = property(lambda self: self._memory.dtype)
    ndim = property(lambda self: self._memory.ndim)
    size = property(lambda self: self._memory.size)
    itemsize = property(lambda self: self._memory.itemsize)
    nbytes = property(lambda self: self._memory.nbytes)
    strides = property(lambda self: self._memory.strides)
    flags = property(lambda self: _Flags(self._memory))
    data = property(lambda self: _MemoryPointer(self._memory))
    device = property(lambda self: _Device())
    base = property(lambda self: None if self._memory.base is None else ndarray(numpy.asarray(self._memory.base)))
    T = property(lambda self: ndarray(self._memory.T))
    mT = property(lambda self: ndarray(numpy.swapaxes(self._memory, -1, -2)))  # noqa: N815 - CuPy's name
    real = property(lambda self: ndarray(self._memory.real))
    imag = property(lambda self: ndarray(self._memory.imag))

    def __len__(self):
        return len(self._memory)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (ndarray(self._memory[i]) for i in range(len(self._memory)))

    __hash__ = None

    # -- explicit, counted ways to the host
    def get(self, stream=None, order="C", out=None, blocking=True):
        _sync("get")
        return numpy.array(self._memory, order=order)

    def item(self):
        _sync("item")
        return self._memory.item()

    def tolist(self):
        _sync("tolist")
        return self._memory.tolist()

    def __bool__(self):
        _sync("bool")
        return bool(self._memory)

    def __int__(self):
        _sync("int")
        return int(self._memory)

    def __float__(self):
        _sync("float")
        return float(self._memory)

    def __complex__(self):
        _sync("complex")
        return complex(self._memory)

    def __repr__(self):
        _sync("repr")
        return repr(self._memory)

    def __str__(self):
        _sync("repr")
        return str(self._memory)

    def set(self, arr, stream=None):
        """Copy host data into this array (an upload)."""
        if not isinstance(arr, numpy.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        COUNTS["upload"] += 1
        self._memory[...] = arr

    # -- indexing
    def __getitem__(self, index):
        return wrap(self._memory[_wrap_around(self._memory.shape, _unwrap_index(index))])

    def __setitem__(self, index, value):
        if isinstance(value, numpy.ndarray):
            COUNTS["upload"] += 1
        else:
            value = unwrap(value, "__setitem__")
        self._memory[_unwrap_index(index)] = value

    def scatter_add(self, slices, value):
        numpy.add.at(self._memory, _unwrap_index(slices), unwrap(value, "scatter_add"))


def _method(name: str):
    """A CuPy ndarray method: bind CuPy's signature, run NumPy's method of the same name, wrap the result."""

    def method(self, *args, **kwargs):
        check_call("cupy.ndarray", name, (self, *args), kwargs)
        result = getattr(self._memory, name)(*unwrap(args, f"ndarray.{name}"),
                                             **{k: unwrap(v, f"ndarray.{name}") for k, v in kwargs.items()})
        return wrap(result)

    method.__name__ = name
    return method


for _name in API["cupy.ndarray"]["methods"]:
    if not _name.startswith("_") and not hasattr(ndarray, _name) and hasattr(numpy.ndarray, _name):
        setattr(ndarray, _name, _method(_name))


# ---- operators: Python scalars and NumPy scalars are fine, NumPy arrays are not --------------------------------------
def _operand(value):
    """The raw operand, or NotImplemented for types another class should handle (a Tensor's __rmul__)."""
    if isinstance(value, ndarray):
        return value._memory
    if isinstance(value, HOST_SCALARS):
        return value
    if isinstance(value, (numpy.ndarray, list, tuple)):
        raise TypeError(f"Unsupported type {type(value)}")
    return NotImplemented


def _binary(numpy_operator: str, reflected: bool = False):
    def operator(self, other):
        raw = _operand(other)
        if raw is NotImplemented:
            return NotImplemented
        left, right = (raw, self._memory) if reflected else (self._memory, raw)
        return wrap(getattr(numpy, numpy_operator)(left, right))

    return operator


def _in_place(numpy_operator: str):
    def operator(self, other):
        raw = _operand(other)
        if raw is NotImplemented:
            return NotImplemented
        getattr(numpy, numpy_operator)(self._memory, raw, out=self._memory)
        return self

    return operator


_OPERATORS = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "true_divide",
              "floordiv": "floor_divide", "mod": "remainder", "pow": "power", "matmul": "matmul",
              "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor", "lshift": "left_shift",
              "rshift": "right_shift"}
for _python_name, _numpy_name in _OPERATORS.items():
    setattr(ndarray, f"__{_python_name}__", _binary(_numpy_name))
    setattr(ndarray, f"__r{_python_name}__", _binary(_numpy_name, reflected=True))
    setattr(ndarray, f"__i{_python_name}__", _in_place(_numpy_name))
for _python_name, _numpy_name in {"eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal",
                                  "gt": "greater", "ge": "greater_equal"}.items():
    setattr(ndarray, f"__{_python_name}__", _binary(_numpy_name))
for _python_name, _numpy_name in {"neg": "negative", "pos": "positive", "abs": "absolute",
                                  "invert": "invert"}.items():
    setattr(ndarray, f"__{_python_name}__", lambda self, _f=_numpy_name: wrap(getattr(numpy, _f)(self._memory)))


# ---- ufuncs and functions --------------------------------------------------------------------------------------------
class ufunc_:  # noqa: N801 - `cupy.ufunc`
    """A CuPy ufunc: NumPy's of the same name, with CuPy's operand rules and its methods (`at`, `reduce`, ...)."""

    def __init__(self, name: str):
        self.name = self.__name__ = name
        self._numpy = getattr(numpy, name)
        self.nin, self.nout = API["cupy"]["ufuncs"][name]
        self.nargs = self.nin + self.nout

    def __call__(self, *args, **kwargs):
        raw = [unwrap(a, f"cupy.{self.name}") for a in args]
        return wrap(self._numpy(*raw, **{k: unwrap(v, f"cupy.{self.name}") for k, v in kwargs.items()}))

    def __repr__(self):
        return f"<ufunc '{self.name}'>"

    def at(self, a, indices, b=None):
        check_call("cupy.ufunc", "at", (self, a, indices, b), {})
        raw_b = () if b is None else (unwrap(b, f"cupy.{self.name}.at"),)
        self._numpy.at(unwrap(a, f"cupy.{self.name}.at"), _unwrap_index(indices), *raw_b)

def _ufunc_method(name: str):
    """`cupy.<ufunc>.reduce` and friends: CuPy's signature, NumPy's work."""

    def method(self, *args, **kwargs):
        check_call("cupy.ufunc", name, (self, *args), kwargs)
        raw = [unwrap(a, f"cupy.{self.name}.{name}") for a in args]
        return wrap(getattr(self._numpy, name)(*raw, **{k: unwrap(v, name) for k, v in kwargs.items()}))

    method.__name__ = name
    return method


for _name in ("reduce", "accumulate", "reduceat", "outer"):
    setattr(ufunc_, _name, _ufunc_method(_name))


def _function(section: str, name: str, numpy_function):
    """`cupy.<name>`: bind CuPy's signature, refuse NumPy arrays (upload functions take them), run NumPy's."""
    uploads = section == "cupy" and name in UPLOAD_FUNCTIONS

    def function(*args, **kwargs):
        check_call(section, name, args, kwargs)
        if uploads:
            return _upload(numpy_function, args, kwargs)
        raw = unwrap(args, f"{section}.{name}")
        return wrap(numpy_function(*raw, **{k: unwrap(v, f"{section}.{name}") for k, v in kwargs.items()}))

    function.__name__ = name
    return function


def _upload(numpy_function, args, kwargs):
    """`cupy.asarray(data)`: host data is copied to the device (counted); device arrays pass through."""
    data, rest = args[0], args[1:]
    if isinstance(data, ndarray):
        return wrap(numpy_function(data._memory, *rest, **kwargs))
    COUNTS["upload"] += 1
    kwargs.pop("blocking", None)
    return ndarray(numpy.array(unwrap_host(data), *rest, **kwargs))


def unwrap_host(data):
    """Host data for an upload: lists of device arrays are read back as CuPy does (each one a sync)."""
    if isinstance(data, (list, tuple)):
        return [unwrap_host(d) for d in data]
    if isinstance(data, ndarray):
        return data.get()
    return data


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """A host copy of a device array (counted); host arrays are returned as they are."""
    if isinstance(a, ndarray):
        _sync("asnumpy")
        return numpy.array(a._memory, order=order)
    return numpy.asarray(a, order=order)


def get_array_module(*args):
    import sys

    return sys.modules["cupy"] if any(isinstance(a, ndarray) for a in args) else numpy


FUNCTIONS: dict[str, dict] = {}
SPECIAL = {"asnumpy": asnumpy, "get_array_module": get_array_module, "take_along_axis": take_along_axis}


def namespace(section: str) -> dict:
    """The stand-in's objects for one CuPy module: functions, ufuncs, classes and constants CuPy publishes."""
    if section in FUNCTIONS:
        return dict(FUNCTIONS[section])
    numpy_module = numpy.linalg if section == "cupy.linalg" else numpy
    entry, names = API[section], {}
    for name in entry["functions"]:
        if name in SPECIAL:
            names[name] = SPECIAL[name]
        elif callable(getattr(numpy_module, name, None)):
            names[name] = _function(section, name, getattr(numpy_module, name))
    for name in entry["ufuncs"]:
        if hasattr(numpy, name):
            names[name] = ufunc_(name)
    for name in entry["classes"] + entry["constants"]:
        if hasattr(numpy_module, name):
            names[name] = getattr(numpy_module, name)
    if section == "cupy":
        names.update(ndarray=ndarray, ufunc=ufunc_)
    FUNCTIONS[section] = names
    return dict(names)
