"""FaaS executor child: runs one task at a time for the Rust pool that started it.

Frames on the pipes are a 4-byte big-endian length and a UTF-8 JSON object. Request:
{"function_id", "format": "dill"|"source", "body"?: base64 pickle or source (sent only when this
child has not cached the function), "entrypoint"?, "args": base64 pickle of ((args), {kwargs})
for dill, {"args": [...], "kwargs": {...}} for source}. Reply: {"ok": bool, "result", "error"?:
{"type", "message", "traceback"}, "log": what the function printed}.
"""
import base64
import contextlib
import io
import json
import os
import struct
import sys
import traceback

# The frame pipes are taken off fds 0 and 1 first, so that a user's print (or a C library
# writing to fd 1) can never interleave with a frame: fd 1 becomes stderr, fd 0 /dev/null.
FRAMES_IN = os.fdopen(os.dup(0), "rb", buffering=0)
FRAMES_OUT = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)
sys.stdin = open(os.devnull)
sys.stdout = sys.stderr

try:
    import dill  # imported up front so the first dill task does not pay for it
except ImportError:
    dill = None

DILL_MISSING = (
    "the dill format needs the Python package 'dill' in the worker's interpreter ("
    + sys.executable
    + "): install it with `"
    + sys.executable
    + " -m pip install dill`, or point --python / FAAS_PYTHON at an interpreter that has it"
)
CACHE_LIMIT = 512
FUNCTIONS = {}


class TaskFailure(Exception):
    """A failure of the platform's own making, reported with a type name of its choosing."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def read_exact(n):
    chunks = []
    while n:
        chunk = FRAMES_IN.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def write_frame(obj):
    data = json.dumps(obj).encode()
    FRAMES_OUT.write(struct.pack(">I", len(data)) + data)
    FRAMES_OUT.flush()


def need_dill():
    if dill is None:
        raise TaskFailure("DillMissing", DILL_MISSING)
    return dill


def load_function(req):
    fid = req["function_id"]
    fn = FUNCTIONS.get(fid)
    if fn is not None:
        return fn
    if "body" not in req:
        raise TaskFailure("ProtocolError", "function body missing for an uncached function")
    if req["format"] == "dill":
        fn = need_dill().loads(base64.b64decode(req["body"]))
    else:
        namespace = {"__name__": "faas_function"}
        exec(compile(req["body"], "<function " + fid + ">", "exec"), namespace)
        name = req.get("entrypoint") or ""
        if name not in namespace:
            raise TaskFailure("EntrypointMissing", "the source does not define " + repr(name))
        fn = namespace[name]
    if not callable(fn):
        raise TaskFailure("NotCallable", "the registered object is a %s, not a function" % type(fn).__name__)
    if len(FUNCTIONS) >= CACHE_LIMIT:
        FUNCTIONS.clear()
    FUNCTIONS[fid] = fn
    return fn


def load_args(req):
    if req["format"] == "dill":
        value = need_dill().loads(base64.b64decode(req["args"]))
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            raise TaskFailure("BadArguments", "the payload must be a pickled ((args...), {kwargs}) pair")
        args, kwargs = value
    else:
        args, kwargs = req["args"].get("args", []), req["args"].get("kwargs", {})
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
        raise TaskFailure("BadArguments", "args must be a sequence and kwargs a mapping")
    return args, kwargs


def encode_result(fmt, value):
    if fmt == "dill":
        return base64.b64encode(need_dill().dumps(value)).decode()
    try:
        json.dumps(value)
    except (TypeError, ValueError) as e:
        raise TaskFailure("ResultNotSerializable", "the return value is not JSON: %s" % e)
    return value


def error_of(exc):
    kind = exc.kind if isinstance(exc, TaskFailure) else type(exc).__name__
    tb = "" if isinstance(exc, TaskFailure) else "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"type": kind, "message": str(exc), "traceback": tb}


def handle(req):
    fmt = req["format"]
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            fn = load_function(req)
            args, kwargs = load_args(req)
            value = fn(*args, **kwargs)
        return {"ok": True, "result": encode_result(fmt, value), "log": log.getvalue()}
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the child must live on
        result = None
        if fmt == "dill" and dill is not None and not isinstance(exc, TaskFailure):
            try:
                result = base64.b64encode(dill.dumps(exc)).decode()
            except Exception:
                result = None
        return {"ok": False, "result": result, "error": error_of(exc), "log": log.getvalue()}


def main():
    write_frame({"ready": True, "pid": os.getpid(), "dill": dill is not None})
    while True:
        header = read_exact(4)
        if header is None:
            return
        (length,) = struct.unpack(">I", header)
        body = read_exact(length)
        if body is None:
            return
        write_frame(handle(json.loads(body)))


main()
